package apiauth

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

var fixedMessages = map[string]bool{
	errNoAuthorization.Error():                                                     true,
	errHeaderTooLarge.Error():                                                      true,
	errMalformed.Error() + ": more than one Authorization header":                  true,
	errMalformed.Error() + `: want "Bearer <token>"`:                               true,
	errMalformed.Error() + ": empty bearer token":                                  true,
	errMalformed.Error() + ": bearer token longer than 128 bytes":                  true,
	errMalformed.Error() + ": bearer token has a space, control or non-ASCII byte": true,
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		"", "Bearer", "Bearer ", "Bearer eacs_abc", "bearer  eacs_abc", "Basic dXNlcjpwYXNz",
		"Bearer a b", "Bearer \x00", "Bearer é", "Bearer " + strings.Repeat("a", fleet.MaxTokenSecret),
		"Bearer " + strings.Repeat("a", fleet.MaxTokenSecret+1), strings.Repeat("B", MaxAuthorizationHeader+1),
	} {
		f.Add(s, "", false)
	}
	f.Add("Bearer x", "Bearer y", true)
	f.Fuzz(func(t *testing.T, a, b string, two bool) {
		values := []string{a}
		if two {
			values = append(values, b)
		}
		secret, err := parseAuthorization(values)
		if len(a)+len(b) > MaxAuthorizationHeader && two || len(a) > MaxAuthorizationHeader {
			if !errors.Is(err, errHeaderTooLarge) {
				t.Fatalf("%d-byte header: err %v, want errHeaderTooLarge", len(a)+len(b), err)
			}
		}
		if err != nil {
			if secret != "" {
				t.Fatalf("secret %q returned with error %v", secret, err)
			}
			// A fixed message never quotes the header, which may hold a secret.
			if !fixedMessages[err.Error()] {
				t.Fatalf("error %q is not one of the fixed messages", err)
			}
			return
		}
		if two {
			t.Fatal("accepted two headers")
		}
		if len(a) > MaxAuthorizationHeader || secret == "" || len(secret) > fleet.MaxTokenSecret {
			t.Fatalf("accepted header of %d bytes, secret of %d", len(a), len(secret))
		}
		for i := 0; i < len(secret); i++ {
			if secret[i] <= ' ' || secret[i] > '~' {
				t.Fatalf("accepted byte %#x", secret[i])
			}
		}
		if !strings.EqualFold(a[:7], "Bearer ") || !strings.HasSuffix(a, secret) || strings.TrimLeft(a[7:], " ") != secret {
			t.Fatalf("secret %q is not the token of %q", secret, a)
		}
	})
}

package fleet

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTokenExpiry(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"720h", now.Add(720 * time.Hour).UTC()},
		{"90m", now.Add(90 * time.Minute).UTC()},
		{"2026-04-01T00:00:00Z", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-04-01T02:00:00+02:00", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := ParseTokenExpiry(c.in, now)
		if err != nil || !got.Equal(c.want) || (!got.IsZero() && got.Location() != time.UTC) {
			t.Errorf("ParseTokenExpiry(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"0s", "-1h", "soon", "2026-03-01T11:00:00Z", "2026-03-01", "1d"} {
		if _, err := ParseTokenExpiry(in, now); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "expires") {
			t.Errorf("ParseTokenExpiry(%q): %v, want ErrBadToken naming expires", in, err)
		}
	}
}

func TestParseTokenRequest(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	name, scope, exp, err := ParseTokenRequest([]byte(`{"name":"ci.bot-1","scope":"write","expires":"24h"}`), now)
	if err != nil || name != "ci.bot-1" || scope != ScopeWrite || !exp.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("good request: %q %q %v %v", name, scope, exp, err)
	}
	for _, c := range []struct{ body, want string }{
		{`{"name":"a b","scope":"read"}`, "name"},
		{`{"scope":"read"}`, "name"},
		{`{"name":"x"}`, "scope is required"},
		{`{"name":"x","scope":"Read"}`, "scope"},
		{`{"name":"x","scope":"read","expires":"-5m"}`, "expires"},
		{`{"name":"x","scope":"read","hash":"00"}`, "unknown field"},
		{`{"name":"x","scope":"read","name":"y"}`, "duplicate"},
		{`{"name":"x","scope":"read"} {}`, "trailing"},
		{`[]`, "JSON"},
	} {
		if _, _, _, err := ParseTokenRequest([]byte(c.body), now); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadToken naming %q", c.body, err, c.want)
		}
	}
}

func TestNewToken(t *testing.T) {
	now := time.Now()
	secret, tok, err := NewToken("ci", ScopeRead, time.Time{}, now)
	if err != nil || !strings.HasPrefix(secret, TokenPrefix) || len(secret) > MaxTokenSecret || tok.Hash != HashToken(secret) || tok.Name != "ci" || !tok.Created.Equal(now) {
		t.Fatalf("NewToken: %q %+v %v", secret, tok, err)
	}
	if s2, _, _ := NewToken("ci", ScopeRead, time.Time{}, now); s2 == secret {
		t.Fatal("two tokens share a secret")
	}
	if _, _, err := NewToken("bad name", ScopeRead, time.Time{}, now); !errors.Is(err, ErrBadToken) {
		t.Fatalf("bad name: %v", err)
	}
}

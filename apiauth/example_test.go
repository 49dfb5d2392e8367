package apiauth_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/fleet"
)

func ExampleAuthenticator_Wrap() {
	tokens := &apiauth.MapStore{}
	secret, _ := fleet.NewTokenSecret()
	_ = tokens.Put(fleet.Token{Name: "ops", Scope: fleet.ScopeRead, Hash: fleet.HashToken(secret)})

	mux := apiauth.NewMux()
	mux.HandleFunc("GET /api/v1/devices", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := apiauth.FromContext(r.Context())
		fmt.Fprintln(w, "devices for", tok.Name)
	})
	auth := apiauth.New(apiauth.Config{
		Store:  tokens,
		Policy: apiauth.DefaultPolicy(false),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	h := auth.Wrap(mux)

	for _, header := range []string{"", "Bearer " + secret} {
		r := httptest.NewRequest("GET", "/api/v1/devices", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		b, _ := io.ReadAll(w.Body)
		fmt.Print(w.Code, " ", string(b))
	}
	// Output:
	// 401 {"error":"missing Authorization header: want \"Authorization: Bearer <token>\""}
	// 200 devices for ops
}

package apiauth

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func tok(name string, scope fleet.Scope, secret string) fleet.Token {
	return fleet.Token{Name: name, Scope: scope, Hash: fleet.HashToken(secret), Created: t0}
}

func TestMapStore(t *testing.T) {
	var s MapStore
	if _, ok := s.TokenByHash(fleet.HashToken("a")); ok {
		t.Fatal("empty store found a token")
	}
	if s.Delete("nobody") {
		t.Fatal("deleted from an empty store")
	}
	for _, bad := range []fleet.Token{
		{Name: "", Scope: fleet.ScopeRead, Hash: fleet.HashToken("x")},
		{Name: "a b", Scope: fleet.ScopeRead, Hash: fleet.HashToken("x")},
		{Name: "a", Scope: "root", Hash: fleet.HashToken("x")},
		{Name: "a", Scope: fleet.ScopeRead, Hash: "x"},
	} {
		if err := s.Put(bad); !errors.Is(err, fleet.ErrBadToken) {
			t.Errorf("Put(%+v) = %v, want ErrBadToken", bad, err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Put(tok("b", fleet.ScopeRead, "s1")))
	must(s.Put(tok("a", fleet.ScopeWrite, "s2")))
	if got, ok := s.TokenByHash(fleet.HashToken("s1")); !ok || got.Name != "b" {
		t.Fatalf("lookup s1: %v %v", got, ok)
	}
	// A secret names one token.
	if err := s.Put(tok("c", fleet.ScopeAdmin, "s1")); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("second name for a secret: %v", err)
	}
	// Replacing a token by name drops its old secret.
	must(s.Put(tok("b", fleet.ScopeAdmin, "s3")))
	if _, ok := s.TokenByHash(fleet.HashToken("s1")); ok {
		t.Fatal("old secret still valid after replacement")
	}
	if got, _ := s.TokenByHash(fleet.HashToken("s3")); got.Scope != fleet.ScopeAdmin {
		t.Fatalf("replaced token %v", got)
	}
	list := s.List()
	if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Fatalf("List() = %v", list)
	}
	if !s.Delete("a") || s.Delete("a") {
		t.Fatal("Delete reports wrong")
	}
	if _, ok := s.TokenByHash(fleet.HashToken("s2")); ok {
		t.Fatal("deleted token still found")
	}
}

func TestMapStoreConcurrent(t *testing.T) {
	var s MapStore
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 300 {
				name := fmt.Sprintf("t%d-%d", g, i%10)
				secret := fmt.Sprintf("s%d-%d", g, i)
				if err := s.Put(tok(name, fleet.ScopeRead, secret)); err != nil {
					t.Error(err)
					return
				}
				s.TokenByHash(fleet.HashToken(secret))
				if i%7 == 0 {
					s.Delete(name)
				}
				_ = s.List()
			}
		})
	}
	wg.Wait()
	for _, tk := range s.List() {
		if got, ok := s.TokenByHash(tk.Hash); !ok || got.Name != tk.Name {
			t.Fatalf("index out of step for %s", tk.Name)
		}
	}
}

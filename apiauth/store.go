package apiauth

import (
	"fmt"
	"sort"
	"sync"

	"github.com/edgeacs/edgeacs/fleet"
)

// Store finds API tokens by the hash of their secret. The core's is its
// replicated token table; an edge's is the copy synced down to it.
type Store interface {
	// TokenByHash returns the token whose Hash is hash (fleet.HashToken
	// of its secret), or false if there is none, as after a revocation.
	TokenByHash(hash string) (fleet.Token, bool)
}

// MapStore is a Store in memory, safe for concurrent use: for tests, and
// for an edge that runs without a core. The zero value is empty and ready.
type MapStore struct {
	mu     sync.RWMutex
	byHash map[string]fleet.Token
	byName map[string]string // name -> hash
}

var _ Store = (*MapStore)(nil)

// Put adds t, replacing any token of the same name. It refuses a token
// that does not validate, and a hash that already belongs to another name:
// one secret names one token, or an audit line could not say who did what.
func (s *MapStore) Put(t fleet.Token) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byHash == nil {
		s.byHash = make(map[string]fleet.Token)
		s.byName = make(map[string]string)
	}
	if other, ok := s.byHash[t.Hash]; ok && other.Name != t.Name {
		return fmt.Errorf("put token %s: %w: its secret already belongs to token %s", t.Name, fleet.ErrBadToken, other.Name)
	}
	if old, ok := s.byName[t.Name]; ok {
		delete(s.byHash, old)
	}
	s.byHash[t.Hash] = t
	s.byName[t.Name] = t.Hash
	return nil
}

// Delete revokes the token called name, reporting whether there was one.
func (s *MapStore) Delete(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.byName[name]
	if !ok {
		return false
	}
	delete(s.byName, name)
	delete(s.byHash, h)
	return true
}

// TokenByHash implements Store.
func (s *MapStore) TokenByHash(hash string) (fleet.Token, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.byHash[hash]
	return t, ok
}

// List returns every token, sorted by name.
func (s *MapStore) List() []fleet.Token {
	s.mu.RLock()
	out := make([]fleet.Token, 0, len(s.byHash))
	for _, t := range s.byHash {
		out = append(out, t)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

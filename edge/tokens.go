package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
	"github.com/edgeacs/edgeacs/internal/tokenfile"
)

// API tokens on an edge. An edge synced to a core holds the fleet's
// tokens, which arrive on the shared downlink (DownToken, DownTokenRevoke;
// see inbox.go), so its local API accepts them with the backhaul down. A
// standalone edge manages its own through its API; they are marked local,
// and an edge that starts synced to a core drops them (DropLocalTokens):
// once the core manages tokens, none it cannot revoke may stay valid.
// Either way they live under k/<name>, and an in-memory index by hash,
// loaded at open and refreshed from the DB after every commit that
// touches a token, answers the per-request lookup.

// pToken is the token prefix: k/<name> → tokenRec (CBOR).
const pToken = "k/"

// tokenRec is a stored token: the token as the core sent it or the edge
// made it (hash included), and whether the edge made it.
type tokenRec struct {
	Token fleet.Token `cbor:"1,keyasint"`
	Local bool        `cbor:"2,keyasint,omitempty"`
}

// ErrTokenExists means a token by that name (or, for the bootstrap admin
// token, any token) exists already (the API answers 409).
var ErrTokenExists = httpapi.Mark(errors.New("edge: token exists"), httpapi.ErrConflict)

// ErrTokensAtCore means this edge takes its tokens from the core: they are
// created and revoked there (the API answers 409).
var ErrTokensAtCore = httpapi.Mark(errors.New("edge: API tokens are managed at the core"), httpapi.ErrConflict)

// tokenIndex mirrors the stored tokens by hash.
type tokenIndex struct {
	mu     sync.RWMutex
	byHash map[string]fleet.Token
	hashOf map[string]string // name → hash
}

// loadTokens builds the index from the DB (OpenCache).
func (c *Cache) loadTokens() error {
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	c.tokens.byHash, c.tokens.hashOf = map[string]fleet.Token{}, map[string]string{}
	return c.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pToken)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r tokenRec
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &r) }); err != nil {
				return fmt.Errorf("load token %s: %w", it.Item().Key(), err)
			}
			c.tokens.setLocked(r.Token.Name, &r.Token)
		}
		return nil
	})
}

// setLocked makes the index hold tok under name (nil: nothing).
func (x *tokenIndex) setLocked(name string, tok *fleet.Token) {
	if h, ok := x.hashOf[name]; ok {
		if cur, ok := x.byHash[h]; ok && cur.Name == name {
			delete(x.byHash, h)
		}
		delete(x.hashOf, name)
	}
	if tok != nil {
		x.byHash[tok.Hash] = *tok
		x.hashOf[name] = tok.Hash
	}
}

// refreshTokens re-reads the named tokens from the DB into the index
// after a commit. Reading what is stored, under the index's lock, keeps
// the index equal to the DB whatever order concurrent commits and
// refreshes run in.
func (c *Cache) refreshTokens(names []string) {
	if len(names) == 0 {
		return
	}
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	err := c.db.View(func(txn *badger.Txn) error {
		for _, name := range names {
			var r tokenRec
			switch err := getCBOR(txn, pToken+name, &r); {
			case errors.Is(err, ErrNotFound):
				c.tokens.setLocked(name, nil)
			case err != nil:
				return err
			default:
				c.tokens.setLocked(name, &r.Token)
			}
		}
		return nil
	})
	if err != nil {
		// The DB is what counts; a token the index misses is refused,
		// one it still holds was revoked a moment ago. Loudly, then.
		c.log.Error("token index: cannot re-read tokens after a commit", "tokens", names, "err", err)
	}
}

// TokenByHash returns the token whose secret hashes (fleet.HashToken) to
// hash. An expired token is returned too: the caller checks Expired.
func (c *Cache) TokenByHash(hash string) (fleet.Token, bool) {
	c.tokens.mu.RLock()
	defer c.tokens.mu.RUnlock()
	t, ok := c.tokens.byHash[hash]
	return t, ok
}

// Tokens lists the tokens by name.
func (c *Cache) Tokens() []fleet.Token {
	c.tokens.mu.RLock()
	out := make([]fleet.Token, 0, len(c.tokens.byHash))
	for _, t := range c.tokens.byHash {
		out = append(out, t)
	}
	c.tokens.mu.RUnlock()
	slices.SortFunc(out, func(a, b fleet.Token) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// HasTokens reports whether any token is stored.
func (c *Cache) HasTokens() bool {
	c.tokens.mu.RLock()
	defer c.tokens.mu.RUnlock()
	return len(c.tokens.byHash) > 0
}

// PutToken stores a new local token (a standalone edge's; see
// DropLocalTokens). A name in use,
// another token's hash, or with ifNone any token at all, is
// ErrTokenExists. It returns once the token is durable.
func (c *Cache) PutToken(tok fleet.Token, ifNone bool) error {
	if err := tok.Validate(); err != nil {
		return err
	}
	err := c.update(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pToken)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if ifNone {
				return fmt.Errorf("%w: tokens exist already", ErrTokenExists)
			}
			var r tokenRec
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &r) }); err != nil {
				return fmt.Errorf("read token %s: %w", it.Item().Key(), err)
			}
			if r.Token.Name == tok.Name {
				return fmt.Errorf("%w: %s", ErrTokenExists, tok.Name)
			}
			if r.Token.Hash == tok.Hash {
				return fmt.Errorf("%w: %s has the same secret", ErrTokenExists, r.Token.Name)
			}
		}
		return setCBOR(txn, pToken+tok.Name, &tokenRec{Token: tok, Local: true})
	})
	if err != nil {
		return fmt.Errorf("put token %s: %w", tok.Name, err)
	}
	c.refreshTokens([]string{tok.Name})
	return c.durable()
}

// RevokeToken deletes a local token (ErrNotFound if there is none by that
// name). It returns once the deletion is durable.
func (c *Cache) RevokeToken(name string) error {
	if !fleet.ValidTokenName(name) {
		return fleet.TokenNameError(name)
	}
	err := c.update(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(pToken + name)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("token %s: %w", name, ErrNotFound)
		} else if err != nil {
			return err
		}
		return txn.Delete([]byte(pToken + name))
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	c.refreshTokens([]string{name})
	return c.durable()
}

// DropLocalTokens deletes the tokens this edge made itself (when it ran
// standalone) and returns their names: an edge synced to a core accepts
// only the core's tokens, which the core can revoke.
func (c *Cache) DropLocalTokens() ([]string, error) {
	var names []string
	err := c.update(func(txn *badger.Txn) error {
		names = names[:0]
		var keys [][]byte
		err := func() error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(pToken)
			// Closed before the deletes: Badger forbids writes under an
			// open iterator.
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var r tokenRec
				if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &r) }); err != nil {
					return fmt.Errorf("read token %s: %w", it.Item().Key(), err)
				}
				if r.Local {
					keys = append(keys, it.Item().KeyCopy(nil))
					names = append(names, r.Token.Name)
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("drop local tokens: %w", err)
	}
	c.refreshTokens(names)
	return names, c.durable()
}

// adminTokenName names the bootstrap admin token.
const adminTokenName = "admin"

// ensureAdminToken gives a standalone edge its first token: when the
// store holds none, an admin token whose secret goes to path (0600,
// written atomically), logged by path, never by secret. A store with
// tokens, or an existing file, is left alone. The secret is staged on
// disk before the token is stored, so a crash in between is completed on
// the next start instead of leaving a token nobody holds.
func ensureAdminToken(c *Cache, path string, log *slog.Logger) error {
	if tokenfile.Exists(path) {
		return nil
	}
	secret, staged := tokenfile.Pending(path)
	if staged {
		if _, ok := c.TokenByHash(fleet.HashToken(secret)); ok {
			return commitAdminToken(path, log)
		}
	}
	if c.HasTokens() {
		tokenfile.Discard(path)
		return nil
	}
	if !staged {
		var err error
		if secret, err = tokenfile.Stage(path); err != nil {
			return err
		}
	}
	tok := fleet.Token{Name: adminTokenName, Scope: fleet.ScopeAdmin, Hash: fleet.HashToken(secret), Created: time.Now().UTC()}
	if err := c.PutToken(tok, true); err != nil {
		return fmt.Errorf("create the admin token: %w", err)
	}
	return commitAdminToken(path, log)
}

func commitAdminToken(path string, log *slog.Logger) error {
	if err := tokenfile.Commit(path); err != nil {
		return err
	}
	log.Info("admin token written", "path", path)
	return nil
}

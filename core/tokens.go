package core

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/tokenfile"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// API tokens are replicated state: created and revoked through the log
// (OpPutToken, OpRevokeToken), stored under tk/<name>, and each change is
// appended to the fleet-wide downlink so every edge, including one that
// connects later, holds the same tokens. A token holds only its secret's
// hash; the secret is made on the node that serves the request and shown
// to the caller once.

// pToken is the FSM's token prefix: tk/<name> → fleet.Token (a core record).
const pToken = "tk/"

// tokenIndex mirrors the stored tokens in memory, by hash, for the API's
// per-request lookup. The apply path updates it after each commit and
// Restore rebuilds it, so it never holds what the DB does not.
type tokenIndex struct {
	mu     sync.RWMutex
	byHash map[string]fleet.Token
	hashOf map[string]string // name → hash
}

func newTokenIndex() *tokenIndex {
	return &tokenIndex{byHash: map[string]fleet.Token{}, hashOf: map[string]string{}}
}

// tokenChange is one committed change: a put (tok set) or a revoke (name).
type tokenChange struct {
	name string
	tok  *fleet.Token
}

func (x *tokenIndex) apply(changes []tokenChange) {
	if len(changes) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range changes {
		if h, ok := x.hashOf[c.name]; ok {
			delete(x.byHash, h)
			delete(x.hashOf, c.name)
		}
		if c.tok != nil {
			x.byHash[c.tok.Hash] = *c.tok
			x.hashOf[c.name] = c.tok.Hash
		}
	}
}

// load replaces the index with the tokens stored in db.
func (x *tokenIndex) load(db *badger.DB) error {
	byHash, hashOf := map[string]fleet.Token{}, map[string]string{}
	err := db.View(func(txn *badger.Txn) error {
		return scan(txn, []byte(pToken), nil, func(k, v []byte) (bool, error) {
			var t fleet.Token
			if err := decodeRecord(v, &t); err != nil {
				return false, fmt.Errorf("token %s: %w", k[len(pToken):], err)
			}
			byHash[t.Hash] = t
			hashOf[t.Name] = t.Hash
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("load tokens: %w", err)
	}
	x.mu.Lock()
	x.byHash, x.hashOf = byHash, hashOf
	x.mu.Unlock()
	return nil
}

func (x *tokenIndex) get(hash string) (fleet.Token, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t, ok := x.byHash[hash]
	return t, ok
}

func (x *tokenIndex) list() []fleet.Token {
	x.mu.RLock()
	out := make([]fleet.Token, 0, len(x.byHash))
	for _, t := range x.byHash {
		out = append(out, t)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b fleet.Token) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (x *tokenIndex) empty() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byHash) == 0
}

// putToken applies OpPutToken. Every check comes before the first write.
func (p processor) putToken(w *wtx, c *Command) error {
	if c.Token == nil {
		return fmt.Errorf("%w: PutToken without a token", ErrBadRequest)
	}
	tok := *c.Token
	if err := tok.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if tok.Created.IsZero() {
		tok.Created = c.Time
	}
	var clash error
	err := p.eachToken(w, func(t *fleet.Token) bool {
		switch {
		case c.IfNone:
			clash = fmt.Errorf("token %s: %w: tokens exist already", tok.Name, ErrConflict)
		case t.Name == tok.Name:
			clash = fmt.Errorf("token %s: %w: the name is taken", tok.Name, ErrConflict)
		case t.Hash == tok.Hash:
			// Only a replayed or forged command can carry another token's
			// hash; the index is by hash, so it must stay unique.
			clash = fmt.Errorf("token %s: %w: token %s has the same secret", tok.Name, ErrConflict, t.Name)
		}
		return clash == nil
	})
	if err != nil {
		return storageError{err}
	}
	if clash != nil {
		return clash
	}
	if err := p.putRecord(w, key(pToken, tok.Name), &tok); err != nil {
		return err
	}
	w.tokens = append(w.tokens, tokenChange{name: tok.Name, tok: &tok})
	return p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownToken, Token: &tok})
}

// revokeToken applies OpRevokeToken: an unknown name is ErrNotFound and
// changes nothing, so a replay of a revocation is harmless.
func (p processor) revokeToken(w *wtx, c *Command) error {
	if !fleet.ValidTokenName(c.Name) {
		return fmt.Errorf("%w: %w", ErrBadRequest, fleet.TokenNameError(c.Name))
	}
	if err := p.deleteExisting(w, key(pToken, c.Name), "token "+c.Name); err != nil {
		return err
	}
	w.tokens = append(w.tokens, tokenChange{name: c.Name})
	return p.appendShared(w, c, fleet.DownRecord{Kind: fleet.DownTokenRevoke, Name: c.Name})
}

// eachToken calls fn with every stored token (this transaction's writes
// included) until it returns false. Tokens are few: a scan is cheap.
func (p processor) eachToken(w *wtx, fn func(*fleet.Token) bool) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(pToken)
	it := w.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(opts.Prefix); it.ValidForPrefix(opts.Prefix); it.Next() {
		var t fleet.Token
		if err := it.Item().Value(func(v []byte) error { return decodeRecord(v, &t) }); err != nil {
			return err
		}
		if !fn(&t) {
			return nil
		}
	}
	return nil
}

// TokenByHash returns the token whose secret hashes (fleet.HashToken) to
// hash. An expired token is returned too: the caller checks Expired.
func (f *FSM) TokenByHash(hash string) (fleet.Token, bool) { return f.tokens.get(hash) }

// Tokens lists the tokens by name.
func (f *FSM) Tokens() []fleet.Token { return f.tokens.list() }

// HasTokens reports whether any token exists.
func (f *FSM) HasTokens() bool { return !f.tokens.empty() }

// TokenByHash returns the token whose secret hashes to hash, from this
// node's replicated state (an in-memory index: cheap enough per request).
func (n *Node) TokenByHash(hash string) (fleet.Token, bool) { return n.fsm.TokenByHash(hash) }

// Tokens lists the tokens by name; their hashes are not in their JSON.
func (n *Node) Tokens() []fleet.Token { return n.fsm.Tokens() }

// CreateToken makes a token with a fresh secret and proposes it (only its
// hash) through the log; it returns the secret, which nothing keeps. It
// must run on the leader (ErrNotLeader otherwise: the API forwards the
// request there). A bad name, scope or expiry is ErrBadRequest (and
// fleet.ErrBadToken), a name in use ErrConflict.
func (n *Node) CreateToken(ctx context.Context, name string, scope fleet.Scope, expires time.Time) (string, fleet.Token, error) {
	now := time.Now().UTC()
	if !expires.IsZero() && !expires.After(now) {
		return "", fleet.Token{}, fmt.Errorf("%w: %w: expiry %s is not in the future", ErrBadRequest, fleet.ErrBadToken, expires.Format(time.RFC3339))
	}
	secret, tok, err := fleet.NewToken(name, scope, expires, now)
	if err != nil {
		return "", fleet.Token{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if r := n.Apply(ctx, Command{Op: OpPutToken, Token: &tok, Time: now}); r.Err != nil {
		return "", fleet.Token{}, fmt.Errorf("create token %s: %w", name, r.Err)
	}
	return secret, tok, nil
}

// RevokeToken deletes a token through the log (ErrNotFound if there is
// none by that name). It must run on the leader.
func (n *Node) RevokeToken(ctx context.Context, name string) error {
	if !fleet.ValidTokenName(name) {
		// Nothing by that name can exist: no need to go through the log.
		return fmt.Errorf("%w: %w", ErrBadRequest, fleet.TokenNameError(name))
	}
	if r := n.Apply(ctx, Command{Op: OpRevokeToken, Name: name}); r.Err != nil {
		return fmt.Errorf("revoke token %s: %w", name, r.Err)
	}
	return nil
}

// AdminTokenPath is where a founding node writes the bootstrap admin
// token's secret (see adminTokenLoop).
func (n *Node) AdminTokenPath() string { return filepath.Join(n.cfg.DataDir, tokenfile.Name) }

// defaultPresets are the presets a fresh cluster gets (preset.Defaults,
// connection-request credentials included).
func defaultPresets() []*fleet.Preset {
	ds := preset.Defaults(true)
	out := make([]*fleet.Preset, len(ds))
	for i := range ds {
		out[i] = &ds[i]
	}
	return out
}

// adminTokenName names the bootstrap admin token.
const adminTokenName = "admin"

// adminTokenPoll bounds the wait between two looks at the cluster while
// no leader is known, or another node leads, and no token exists yet.
const adminTokenPoll = 250 * time.Millisecond

// adminTokenMaxFailures bounds the proposals adminTokenLoop makes as
// leader that fail for want of a commit (lost leadership, a timeout).
const adminTokenMaxFailures = 20

// adminTokenLoop runs on a node configured to found a cluster (Bootstrap
// or BootstrapExpect): once the cluster has no token at all and this node
// leads, it stores the default presets (OpSeedPresets, once in the
// cluster's life), then proposes the admin token with IfNone, and the founder whose
// proposal commits writes the secret to AdminTokenPath. Every other
// founder, and any start that finds tokens (a restart), does nothing; a
// node whose file exists never overwrites it. The secret is staged on disk
// before it is proposed (internal/tokenfile), and the loop settles by what
// the log holds, not by a proposal's answer, so a proposal whose outcome
// was lost is still resolved correctly, here or after a restart.
func (n *Node) adminTokenLoop(ctx context.Context) {
	path := n.AdminTokenPath()
	if tokenfile.Exists(path) {
		return
	}
	secret, staged := tokenfile.Pending(path)
	hash := ""
	if staged {
		hash = fleet.HashToken(secret)
	}
	delay, failures := 50*time.Millisecond, 0
	for ctx.Err() == nil {
		if _, ok := n.fsm.TokenByHash(hash); ok && hash != "" {
			if err := tokenfile.Commit(path); err != nil {
				n.log.Error("admin token: it is in the cluster, but its file could not be moved into place; the secret is in the staged file", "path", path, "staged", path+".tmp", "err", err)
				return
			}
			n.log.Info("admin token written", "path", path)
			return
		}
		if n.fsm.HasTokens() {
			tokenfile.Discard(path)
			return
		}
		if _, leader := n.raft.LeaderWithID(); leader == "" {
			sleepCtx(ctx, delay)
			delay = min(delay*2, adminTokenPoll)
			continue
		}
		if !n.fsm.PresetsSeeded() {
			// The cluster's default presets first, in the same founding
			// step: an edge that has the admin token has them too (one
			// ordered fleet-wide log carries both).
			err := n.applyAnywhere(ctx, Command{Op: OpSeedPresets, Presets: defaultPresets()})
			if err != nil {
				if failures++; failures >= adminTokenMaxFailures {
					n.log.Error("default presets: giving up; restart this node to try again", "attempts", failures, "err", err)
					return
				}
				sleepCtx(ctx, delay)
				delay = min(delay*2, adminTokenPoll)
			}
			continue
		}
		if hash == "" {
			s, err := tokenfile.Stage(path)
			if err != nil {
				n.log.Error("admin token: cannot stage its file; none is made", "path", path, "err", err)
				return
			}
			hash = fleet.HashToken(s)
		}
		tok := fleet.Token{Name: adminTokenName, Scope: fleet.ScopeAdmin, Hash: hash, Created: time.Now().UTC()}
		// Through the leader, wherever it is: the founder may have lost
		// the lead (an election while the others joined) before it made
		// the token, and no other node would make it.
		err := n.applyAnywhere(ctx, Command{Op: OpPutToken, Token: &tok, IfNone: true})
		if err == nil || errors.Is(err, ErrConflict) {
			// Committed: once this node's FSM has applied it, the top of
			// the loop sees whether this proposal, or another, made the
			// first token.
			if !n.fsm.HasTokens() {
				sleepCtx(ctx, 10*time.Millisecond)
			}
			continue
		}
		if failures++; failures >= adminTokenMaxFailures {
			n.log.Error("admin token: giving up; restart this node to try again", "attempts", failures, "err", err)
			return
		}
		sleepCtx(ctx, delay)
		delay = min(delay*2, adminTokenPoll)
	}
}

package fleet

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Scope is what an API token may do. Scopes nest: admin includes write,
// write includes read.
type Scope string

// API token scopes.
const (
	// ScopeRead allows GET (and HEAD) on every resource but tokens.
	ScopeRead Scope = "read"
	// ScopeWrite adds changes to devices, tasks, presets, provisions and files.
	ScopeWrite Scope = "write"
	// ScopeAdmin adds tokens, cluster membership and edges.
	ScopeAdmin Scope = "admin"
)

// ErrBadToken means a token, its name or its scope is malformed.
var ErrBadToken = errors.New("bad token")

// ParseScope reads a scope by its name.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeRead, ScopeWrite, ScopeAdmin:
		return Scope(s), nil
	}
	return "", fmt.Errorf("%w: unknown scope %q (want read, write or admin)", ErrBadToken, s)
}

func (s Scope) rank() int {
	switch s {
	case ScopeRead:
		return 1
	case ScopeWrite:
		return 2
	case ScopeAdmin:
		return 3
	}
	return 0
}

// Allows reports whether a token of scope s may do what needs scope need.
// An unknown scope allows nothing.
func (s Scope) Allows(need Scope) bool {
	return s.rank() > 0 && need.rank() > 0 && s.rank() >= need.rank()
}

// Token is an API token as every node stores it: the secret itself is never
// kept, only its SHA-256 (see HashToken). Revoking a token deletes it.
type Token struct {
	Name  string `json:"name" cbor:"1,keyasint"`
	Scope Scope  `json:"scope" cbor:"2,keyasint"`
	// Hash is HashToken of the secret, in hex. Never shown by an API.
	Hash    string    `json:"-" cbor:"3,keyasint"`
	Created time.Time `json:"created" cbor:"4,keyasint"`
	// Expires is zero for a token that does not expire.
	Expires time.Time `json:"expires,omitzero" cbor:"5,keyasint,omitzero"`
}

// MaxTokenName bounds a token's name.
const MaxTokenName = 64

// ValidTokenName reports whether name can name a token: 1 to MaxTokenName
// letters, digits, '-', '_' or '.', so it is safe in paths and logs.
func ValidTokenName(name string) bool {
	if name == "" || len(name) > MaxTokenName {
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return false
		}
	}
	return true
}

// TokenNameError is the error for a name ValidTokenName refuses; it wraps
// ErrBadToken and says what a name may hold.
func TokenNameError(name string) error {
	return fmt.Errorf("%w: name %q: want 1 to %d letters, digits, '-', '_' or '.'", ErrBadToken, name, MaxTokenName)
}

// Validate checks a token before it is stored.
func (t *Token) Validate() error {
	if !ValidTokenName(t.Name) {
		return TokenNameError(t.Name)
	}
	if _, err := ParseScope(string(t.Scope)); err != nil {
		return err
	}
	if len(t.Hash) != 2*sha256.Size {
		return fmt.Errorf("%w: token %s: hash is not a hex SHA-256", ErrBadToken, t.Name)
	}
	if _, err := hex.DecodeString(t.Hash); err != nil {
		return fmt.Errorf("%w: token %s: hash is not a hex SHA-256", ErrBadToken, t.Name)
	}
	return nil
}

// Expired reports whether the token has expired at now.
func (t *Token) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

// TokenPrefix starts every secret edgeacs makes, so a leaked one is easy to
// recognise (secret scanners, logs).
const TokenPrefix = "eacs_"

// MaxTokenSecret bounds what is worth hashing: a presented secret longer
// than this is refused before any work.
const MaxTokenSecret = 128

// NewTokenSecret returns a fresh random secret: TokenPrefix and 256 bits of
// randomness in lower-case base32.
func NewTokenSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token secret: %w", err)
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	return TokenPrefix + strings.ToLower(enc.EncodeToString(b[:])), nil
}

// HashToken is the hex SHA-256 of a secret, the only form stored. A secret
// has 256 bits of randomness, so a plain hash needs no salt or stretching.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

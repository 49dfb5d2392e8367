package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The token routes of the core's and the edge's APIs share these shapes
// and checks, so the two cannot disagree on what a request means.

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name  string `json:"name"`
	Scope string `json:"scope"`
	// Expires is a Go duration from now ("720h") or an RFC 3339 time;
	// empty means the token does not expire.
	Expires string `json:"expires,omitempty"`
}

// TokenCreated answers POST /api/v1/tokens. It is the only time the
// secret (Token) is ever shown: nodes keep only its hash.
type TokenCreated struct {
	Name    string    `json:"name"`
	Scope   Scope     `json:"scope"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires,omitzero"`
}

// MaxTokenRequest bounds the body of POST /api/v1/tokens.
const MaxTokenRequest = 4 << 10

// ParseTokenExpiry reads a TokenRequest's Expires at now: a positive Go
// duration from now, or an RFC 3339 time after now; "" is no expiry (the
// zero time). Errors wrap ErrBadToken.
func ParseTokenExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%w: expires %q: a duration must be positive", ErrBadToken, s)
		}
		return now.Add(d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: expires %q: want a Go duration such as 720h or an RFC 3339 time", ErrBadToken, s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("%w: expires %q is not in the future", ErrBadToken, s)
	}
	return t.UTC(), nil
}

// ParseTokenRequest decodes and checks a POST /api/v1/tokens body at now:
// strict JSON (no unknown fields, no duplicate keys, nothing trailing), a
// valid name, a scope, and an expiry. Errors wrap ErrBadToken and name
// the problem.
func ParseTokenRequest(body []byte, now time.Time) (name string, scope Scope, expires time.Time, err error) {
	if err := RejectDuplicateKeys(body); err != nil {
		return "", "", time.Time{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	var req TokenRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", "", time.Time{}, fmt.Errorf("%w: bad JSON: %v", ErrBadToken, err)
	}
	if dec.More() {
		return "", "", time.Time{}, fmt.Errorf("%w: trailing data after the JSON value", ErrBadToken)
	}
	if !ValidTokenName(req.Name) {
		return "", "", time.Time{}, TokenNameError(req.Name)
	}
	if req.Scope == "" {
		return "", "", time.Time{}, fmt.Errorf("%w: scope is required (read, write or admin)", ErrBadToken)
	}
	if scope, err = ParseScope(req.Scope); err != nil {
		return "", "", time.Time{}, err
	}
	if expires, err = ParseTokenExpiry(req.Expires, now); err != nil {
		return "", "", time.Time{}, err
	}
	return req.Name, scope, expires, nil
}

// NewToken makes a token named name with a fresh secret (NewTokenSecret),
// created at now, and returns the secret with it; the token holds only
// the secret's hash.
func NewToken(name string, scope Scope, expires, now time.Time) (string, Token, error) {
	secret, err := NewTokenSecret()
	if err != nil {
		return "", Token{}, err
	}
	tok := Token{Name: name, Scope: scope, Hash: HashToken(secret), Created: now.UTC(), Expires: expires}
	if err := tok.Validate(); err != nil {
		return "", Token{}, err
	}
	return secret, tok, nil
}

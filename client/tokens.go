package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// TokenInfo is a token as the API lists it: never its secret or hash.
type TokenInfo struct {
	Name    string    `json:"name"`
	Scope   string    `json:"scope"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

// NewToken is the answer to creating a token: the only time its secret is
// shown.
type NewToken struct {
	Name    string    `json:"name"`
	Scope   string    `json:"scope"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires,omitzero"`
}

// CreateToken asks for a new token. expires is a duration ("720h") or an
// RFC 3339 time; empty means it never expires.
func (c *Client) CreateToken(ctx context.Context, name, scope, expires string) (NewToken, error) {
	body := map[string]string{"name": name, "scope": scope}
	if expires != "" {
		body["expires"] = expires
	}
	var out NewToken
	err := c.Do(ctx, http.MethodPost, "/api/v1/tokens", body, &out)
	return out, err
}

// Tokens lists the tokens.
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var out []TokenInfo
	err := c.Do(ctx, http.MethodGet, "/api/v1/tokens", nil, &out)
	return out, err
}

// RevokeToken deletes the token called name, everywhere.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name), nil, nil)
}

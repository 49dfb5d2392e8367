// Package client is the Go client of edgeacs's management REST API (the
// core's, or a standalone edge's): the fleet CLI's only way to the data.
// It knows the API's conventions (bearer tokens, JSON errors, the
// X-Next-Cursor paging header) and nothing of storage.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Sentinel errors callers branch on; an *APIError wraps the one that fits
// its status.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrBadRequest   = errors.New("bad request")
	ErrUnavailable  = errors.New("unavailable")
)

// APIError is an error answer of the API.
type APIError struct {
	Method, Path string
	Status       int
	// Message is the API's {"error": ...}, or the body's text.
	Message string
	// Field, Line and Column say where in what was sent the API found the
	// error, when it says: the field of a preset, and the line and column
	// (from 1) of a precondition or a provision script.
	Field        string
	Line, Column int
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Message)
}

// Unwrap maps the status to a sentinel error.
func (e *APIError) Unwrap() error {
	switch {
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.Status == http.StatusForbidden:
		return ErrForbidden
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Status == http.StatusConflict:
		return ErrConflict
	case e.Status == http.StatusServiceUnavailable, e.Status == http.StatusTooManyRequests:
		return ErrUnavailable
	case e.Status/100 == 4:
		return ErrBadRequest
	}
	return nil
}

// maxAnswer bounds an answer the client reads into memory.
const maxAnswer = 64 << 20

// Client talks to one API base URL with one token.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
	// xfer carries file contents: no bound on the whole exchange (the
	// caller's context is), only on the wait for the answer.
	xfer *http.Client
}

// Options configure a Client. Zero values are sensible.
type Options struct {
	// Token is the bearer token sent with every request.
	Token string
	// CAFile, if set, is a PEM bundle trusted for an https base URL
	// instead of the system roots.
	CAFile string
	// Timeout bounds each request (default 30 s); a context deadline
	// shorter than it wins.
	Timeout time.Duration
	// Transport, if set, carries every request instead of a network
	// transport (CAFile is then ignored): the web console calls its own
	// node's API in-process through it, with the same authentication.
	Transport http.RoundTripper
}

// New returns a client of the API at base ("host:port" means http://).
func New(base string, o Options) (*Client, error) {
	if base == "" {
		return nil, fmt.Errorf("%w: empty API URL", ErrBadRequest)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: API URL %q: want http(s)://host:port", ErrBadRequest, base)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if strings.ContainsAny(o.Token, " \t\r\n") {
		return nil, fmt.Errorf("%w: token contains white space", ErrBadRequest)
	}
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else { // a program (or test) replaced it
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read API CA: %w", err)
		}
		// Trust the system's roots too: the file may hold only a
		// self-signed API certificate.
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: API CA %s holds no PEM certificate", ErrBadRequest, o.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if o.Transport != nil {
		return &Client{base: u, token: o.Token, hc: &http.Client{Transport: o.Transport, Timeout: timeout}, xfer: &http.Client{Transport: o.Transport}}, nil
	}
	xtr := tr.Clone()
	xtr.ResponseHeaderTimeout = timeout
	return &Client{base: u, token: o.Token, hc: &http.Client{Transport: tr, Timeout: timeout}, xfer: &http.Client{Transport: xtr}}, nil
}

// Base is the API's base URL.
func (c *Client) Base() string { return c.base.String() }

// Do sends one request: body (if not nil) as JSON, the answer decoded into
// out (if not nil). A non-2xx answer is an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	_, err := c.DoHeader(ctx, method, path, body, out)
	return err
}

// DoHeader is Do that also returns the answer's headers (paging cursors,
// totals).
func (c *Client) DoHeader(ctx context.Context, method, path string, body, out any) (http.Header, error) {
	var rd io.Reader
	h := http.Header{}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
		h.Set("Content-Type", "application/json")
	}
	resp, err := c.send(ctx, c.hc, method, path, rd, -1, h)
	if err != nil {
		return nil, err
	}
	return resp.Header, finish(resp, method, path, out)
}

// Upload sends r as the raw body (a file's content) with extra headers,
// bounded as UploadFile is.
func (c *Client) Upload(ctx context.Context, method, path string, r io.Reader, header http.Header, out any) error {
	return c.stream(ctx, method, path, r, -1, header, out)
}

// raw sends a small raw body (a script) under the request timeout.
func (c *Client) raw(ctx context.Context, method, path string, r io.Reader, header http.Header, out any) error {
	resp, err := c.send(ctx, c.hc, method, path, r, -1, header)
	if err != nil {
		return err
	}
	return finish(resp, method, path, out)
}

// stream sends a body of size bytes (-1: unknown) that may take longer to
// send than any request timeout.
func (c *Client) stream(ctx context.Context, method, path string, r io.Reader, size int64, header http.Header, out any) error {
	resp, err := c.send(ctx, c.xfer, method, path, r, size, header)
	if err != nil {
		return err
	}
	return finish(resp, method, path, out)
}

// finish reads an answer: an error status is an *APIError, a success's
// JSON body is decoded into out (if not nil).
func finish(resp *http.Response, method, path string, out any) error {
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return apiError(method, path, resp.StatusCode, raw)
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, body io.Reader, size int64, header http.Header) (*http.Response, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%w: path %q does not start with /", ErrBadRequest, path)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		// The *url.Error repeats the method and URL; the cause is enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach the API at %s: %w", c.base, err)
	}
	return resp, nil
}

func apiError(method, path string, status int, raw []byte) error {
	var e struct {
		Error        string `json:"error"`
		Field        string `json:"field"`
		Line, Column int
	}
	msg := ""
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		msg = e.Error
	} else {
		msg = strings.TrimSpace(string(raw))
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
	}
	return &APIError{Method: method, Path: path, Status: status, Message: msg, Field: e.Field, Line: e.Line, Column: e.Column}
}

package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The fleet-wide resources: files, presets, provisions and edges. Their
// types mirror the API's JSON (the schemas of the same names in the core's
// openapi.json; a test keeps the keys equal).

// FileMeta is a stored file's metadata (its content is fetched apart).
type FileMeta struct {
	Name     string `json:"name"`
	FileType string `json:"fileType"`
	// OUI, ProductClass and Version say which devices the file is for; the
	// API stores them and a Download task passes them on.
	OUI          string    `json:"oui,omitempty"`
	ProductClass string    `json:"productClass,omitempty"`
	Version      string    `json:"version,omitempty"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	Uploaded     time.Time `json:"uploaded"`
}

// FileUpload describes a file to upload; Name and FileType are required.
type FileUpload struct {
	Name string
	// FileType is the TR-069 file type, e.g. "1 Firmware Upgrade Image".
	FileType                   string
	OUI, ProductClass, Version string
	// Size is the content's length, sent as Content-Length so the API can
	// refuse a file over its limit before it is sent; -1 if unknown.
	Size int64
	// Progress, if set, is called with the bytes sent so far as the body
	// is read (from the request's goroutine; keep it quick).
	Progress func(sent int64)
}

// UploadFile streams r to the API as the content of u.Name and returns the
// stored metadata. The request is bounded by ctx, not by Options.Timeout,
// which bounds only the wait for the answer once the last byte is sent: a
// large file on a slow link may take longer than any request should.
func (c *Client) UploadFile(ctx context.Context, r io.Reader, u FileUpload) (FileMeta, error) {
	var out FileMeta
	if u.Name == "" || u.FileType == "" {
		return out, fmt.Errorf("%w: a file upload needs a name and a file type", ErrBadRequest)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	for k, v := range map[string]string{"fileType": u.FileType, "oui": u.OUI, "productClass": u.ProductClass, "version": u.Version} {
		if v != "" {
			h.Set(k, v)
		}
	}
	if u.Progress != nil {
		r = &progressReader{r: r, fn: u.Progress}
	}
	size := u.Size
	if size < 0 {
		size = -1
	}
	err := c.stream(ctx, http.MethodPut, "/api/v1/files/"+url.PathEscape(u.Name), r, size, h, &out)
	return out, err
}

// progressReader reports the bytes read so far after each read.
type progressReader struct {
	r    io.Reader
	n    int64
	fn   func(int64)
	last int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n != p.last {
		p.last = p.n
		p.fn(p.n)
	}
	return n, err
}

// Files lists the stored files.
func (c *Client) Files(ctx context.Context) ([]FileMeta, error) {
	out := []FileMeta{}
	err := c.Do(ctx, http.MethodGet, "/api/v1/files", nil, &out)
	return out, err
}

// File reads one file's metadata.
func (c *Client) File(ctx context.Context, name string) (FileMeta, error) {
	var out FileMeta
	err := c.Do(ctx, http.MethodGet, "/api/v1/files/"+url.PathEscape(name), nil, &out)
	return out, err
}

// DeleteFile deletes a file everywhere (the core, then every edge).
func (c *Client) DeleteFile(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/files/"+url.PathEscape(name), nil, nil)
}

// Preset is a provisioning rule in GenieACS's preset shape.
type Preset struct {
	Name         string          `json:"_id,omitempty"`
	Weight       int             `json:"weight"`
	Channel      string          `json:"channel"`
	Events       map[string]bool `json:"events,omitempty"`
	Precondition string          `json:"precondition,omitempty"`
	// Provisions are [name, args...] lists: built-ins or provision scripts.
	Provisions [][]any `json:"provisions"`
	Schedule   string  `json:"schedule,omitempty"`
	// History names parameters whose values the edges record per device
	// (exact paths, or "*" for one segment); see Client.DeviceHistory.
	History []string `json:"history,omitempty"`
}

// Presets lists the presets.
func (c *Client) Presets(ctx context.Context) ([]Preset, error) {
	out := []Preset{}
	err := c.Do(ctx, http.MethodGet, "/api/v1/presets", nil, &out)
	return out, err
}

// Preset reads one preset.
func (c *Client) Preset(ctx context.Context, name string) (Preset, error) {
	var out Preset
	err := c.Do(ctx, http.MethodGet, "/api/v1/presets/"+url.PathEscape(name), nil, &out)
	return out, err
}

// PutPreset creates or replaces the preset called p.Name. The API checks
// it first: a bad precondition is an *APIError with its Line and Column.
func (c *Client) PutPreset(ctx context.Context, p Preset) (Preset, error) {
	var out Preset
	if p.Name == "" {
		return out, fmt.Errorf("%w: a preset needs a name", ErrBadRequest)
	}
	err := c.Do(ctx, http.MethodPut, "/api/v1/presets/"+url.PathEscape(p.Name), p, &out)
	return out, err
}

// DeletePreset deletes a preset.
func (c *Client) DeletePreset(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/presets/"+url.PathEscape(name), nil, nil)
}

// Provision is a provision script in GenieACS's provisions shape.
type Provision struct {
	Name   string `json:"_id"`
	Script string `json:"script"`
}

// Provisions lists the provision scripts.
func (c *Client) Provisions(ctx context.Context) ([]Provision, error) {
	out := []Provision{}
	err := c.Do(ctx, http.MethodGet, "/api/v1/provisions", nil, &out)
	return out, err
}

// Provision reads one provision script.
func (c *Client) Provision(ctx context.Context, name string) (Provision, error) {
	var out Provision
	err := c.Do(ctx, http.MethodGet, "/api/v1/provisions/"+url.PathEscape(name), nil, &out)
	return out, err
}

// PutProvision creates or replaces a provision script (JavaScript source,
// sent as it is). The API compiles it first: a syntax error is an
// *APIError with its Line and Column.
func (c *Client) PutProvision(ctx context.Context, name, script string) (Provision, error) {
	var out Provision
	h := http.Header{}
	h.Set("Content-Type", "application/javascript")
	err := c.raw(ctx, http.MethodPut, "/api/v1/provisions/"+url.PathEscape(name), strings.NewReader(script), h, &out)
	return out, err
}

// DeleteProvision deletes a provision script.
func (c *Client) DeleteProvision(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/provisions/"+url.PathEscape(name), nil, nil)
}

// Edge is one edge as the core lists it: its replicated record and what
// the node holding its sync link (the leader) knows of the link.
type Edge struct {
	ID string `json:"id"`
	// Addr is the address the edge's sync link last came from.
	Addr      string    `json:"addr,omitempty"`
	FirstSeen time.Time `json:"firstSeen,omitzero"`
	// LastSeen is when the core last applied something from the edge.
	LastSeen      time.Time `json:"lastSeen,omitzero"`
	UplinkAcked   uint64    `json:"uplinkAcked"`
	DownlinkAcked uint64    `json:"downlinkAcked"`
	SharedAcked   uint64    `json:"sharedAcked"`
	Rejected      uint64    `json:"rejected"`
	Revoked       time.Time `json:"revoked,omitzero"`
	// Status is online, offline or revoked.
	Status    string      `json:"status"`
	Connected bool        `json:"connected"`
	Health    *EdgeHealth `json:"health,omitempty"`
	// HealthUpdated is when the link was last heard from (a heartbeat,
	// or its close).
	HealthUpdated time.Time `json:"healthUpdated,omitzero"`
}

// Heard is when the core last heard from the edge, by either clock: an
// idle edge's heartbeats move HealthUpdated but not LastSeen.
func (e Edge) Heard() time.Time {
	if e.HealthUpdated.After(e.LastSeen) {
		return e.HealthUpdated
	}
	return e.LastSeen
}

// EdgeHealth is what an edge last reported over its sync link.
type EdgeHealth struct {
	SessionsPerSec float64 `json:"sessionsPerSec"`
	// OutboxLen counts records the edge has not yet sent to the core.
	OutboxLen int64 `json:"outboxLen"`
	// Devices is how many devices the edge holds.
	Devices int64 `json:"devices"`
	// OldestUnsent is the age of the oldest record in the outbox.
	OldestUnsent time.Duration `json:"oldestUnsentNs,omitempty"`
}

// Edges lists the edges the core knows.
func (c *Client) Edges(ctx context.Context) ([]Edge, error) {
	out := []Edge{}
	err := c.Do(ctx, http.MethodGet, "/api/v1/edges", nil, &out)
	return out, err
}

// RevokeEdge refuses the edge's certificate from now on, on every core
// node, and returns its record.
func (c *Client) RevokeEdge(ctx context.Context, id string) (Edge, error) {
	var out Edge
	err := c.Do(ctx, http.MethodPost, "/api/v1/edges/"+url.PathEscape(id)+"/revoke", nil, &out)
	return out, err
}

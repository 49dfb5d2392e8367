package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Firmware rollouts. The types mirror the core's openapi.json schemas of
// the same names (RolloutView as Rollout); a test keeps the keys equal.

// RolloutRequest starts a rollout (POST /api/v1/rollouts).
type RolloutRequest struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Filter string `json:"filter"`
	// Waves are cumulative percents, increasing, the last 100.
	Waves        []RolloutWaveSpec   `json:"waves,omitempty"`
	MaxFaultRate float64             `json:"maxFaultRate"`
	MinWaveSize  int                 `json:"minWaveSize,omitempty"`
	Soak         string              `json:"soak,omitempty"`
	Window       string              `json:"window,omitempty"`
	Concurrency  *RolloutConcurrency `json:"concurrency,omitempty"`
	Mode         string              `json:"mode,omitempty"`
	Timeout      string              `json:"timeout,omitempty"`
}

// RolloutWaveSpec is one wave of a request.
type RolloutWaveSpec struct {
	Percent float64 `json:"percent"`
}

// RolloutConcurrency caps downloads at once per edge (0: no cap).
type RolloutConcurrency struct {
	PerEdge int `json:"perEdge"`
}

// RolloutCounts counts devices by rollout state.
type RolloutCounts struct {
	Total       int `json:"total"`
	Pending     int `json:"pending"`
	Downloading int `json:"downloading"`
	NotBack     int `json:"notBack"`
	Done        int `json:"done"`
	Faulted     int `json:"faulted"`
	Cancelled   int `json:"cancelled"`
}

// RolloutWave is one wave of a rollout's status.
type RolloutWave struct {
	Wave        int       `json:"wave"`
	Percent     float64   `json:"percent"`
	State       string    `json:"state"`
	Started     time.Time `json:"started,omitzero"`
	Finished    time.Time `json:"finished,omitzero"`
	FaultRate   float64   `json:"faultRate"`
	Tolerated   int       `json:"tolerated,omitempty"`
	Total       int       `json:"total"`
	Pending     int       `json:"pending"`
	Downloading int       `json:"downloading"`
	NotBack     int       `json:"notBack"`
	Done        int       `json:"done"`
	Faulted     int       `json:"faulted"`
	Cancelled   int       `json:"cancelled"`
}

// RolloutDevice is one device of a rollout.
type RolloutDevice struct {
	Device      string    `json:"device"`
	Wave        int       `json:"wave"`
	Edge        string    `json:"edge,omitempty"`
	State       string    `json:"state"`
	From        string    `json:"from,omitempty"`
	Task        string    `json:"task,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	Dispatched  time.Time `json:"dispatched,omitzero"`
	Transferred time.Time `json:"transferred,omitzero"`
	Fault       string    `json:"fault,omitempty"`
	Message     string    `json:"message,omitempty"`
	Updated     time.Time `json:"updated,omitzero"`
}

// Rollout is a rollout's status (the API's RolloutView).
type Rollout struct {
	Name         string                      `json:"name"`
	File         string                      `json:"file"`
	Version      string                      `json:"version"`
	Filter       string                      `json:"filter"`
	State        string                      `json:"state"`
	Reason       string                      `json:"reason,omitempty"`
	Mode         string                      `json:"mode"`
	Window       string                      `json:"window,omitempty"`
	Soak         string                      `json:"soak"`
	Timeout      string                      `json:"timeout"`
	MaxFaultRate float64                     `json:"maxFaultRate"`
	MinWaveSize  int                         `json:"minWaveSize"`
	PerEdge      int                         `json:"perEdge"`
	Created      time.Time                   `json:"created"`
	Updated      time.Time                   `json:"updated"`
	Wave         int                         `json:"wave"`
	Skipped      int                         `json:"skipped"`
	Total        int                         `json:"total"`
	Pending      int                         `json:"pending"`
	Downloading  int                         `json:"downloading"`
	NotBack      int                         `json:"notBack"`
	Done         int                         `json:"done"`
	Faulted      int                         `json:"faulted"`
	Cancelled    int                         `json:"cancelled"`
	Waves        []RolloutWave               `json:"waves"`
	Edges        map[string]RolloutCounts    `json:"edges"`
	Faults       map[string]int              `json:"faults"`
	Devices      map[string][]*RolloutDevice `json:"devices,omitempty"`
}

// Finished reports whether the rollout will not change by itself any
// more: done or aborted.
func (r Rollout) Finished() bool { return r.State == "done" || r.State == "aborted" }

// CreateRollout starts a rollout.
func (c *Client) CreateRollout(ctx context.Context, req RolloutRequest) (Rollout, error) {
	var out Rollout
	err := c.Do(ctx, http.MethodPost, "/api/v1/rollouts", req, &out)
	return out, err
}

// Rollouts lists the rollouts (without their devices).
func (c *Client) Rollouts(ctx context.Context) ([]Rollout, error) {
	out := []Rollout{}
	err := c.Do(ctx, http.MethodGet, "/api/v1/rollouts", nil, &out)
	return out, err
}

// Rollout reads one rollout's status, with its devices by state.
func (c *Client) Rollout(ctx context.Context, name string) (Rollout, error) {
	var out Rollout
	err := c.Do(ctx, http.MethodGet, "/api/v1/rollouts/"+url.PathEscape(name), nil, &out)
	return out, err
}

// RolloutAction applies "pause", "resume", "abort" or "retry" to a rollout.
func (c *Client) RolloutAction(ctx context.Context, name, action string) (Rollout, error) {
	var out Rollout
	err := c.Do(ctx, http.MethodPost, "/api/v1/rollouts/"+url.PathEscape(name)+"/"+url.PathEscape(action), nil, &out)
	return out, err
}

package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/edgeacs/edgeacs/fleet"
)

// Firmware rollouts. The shapes are package fleet's, which the core
// answers with; the client names them rather than copying them.
type (
	// RolloutRequest starts a rollout (POST /api/v1/rollouts).
	RolloutRequest = fleet.RolloutRequest
	// RolloutWaveSpec is one wave of a request.
	RolloutWaveSpec = fleet.RolloutWaveSpec
	// RolloutConcurrency caps downloads at once per edge (0: no cap).
	RolloutConcurrency = fleet.RolloutConcurrency
	// RolloutCounts counts devices by rollout state.
	RolloutCounts = fleet.RolloutCounts
	// RolloutWave is one wave of a rollout's status.
	RolloutWave = fleet.RolloutWaveView
	// RolloutDevice is one device of a rollout.
	RolloutDevice = fleet.RolloutDevice
	// Rollout is a rollout's status (the API's RolloutView); Finished
	// reports whether it will change by itself any more.
	Rollout = fleet.RolloutView
)

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

// DeleteRollout removes a done or aborted rollout.
func (c *Client) DeleteRollout(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/rollouts/"+url.PathEscape(name), nil, nil)
}

package apiauth

import (
	"net/http/httptest"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

func TestDefaultPolicy(t *testing.T) {
	pub := Access{Public: true}
	read, write, admin := Access{Scope: fleet.ScopeRead}, Access{Scope: fleet.ScopeWrite}, Access{Scope: fleet.ScopeAdmin}
	cases := []struct {
		method, target string
		metrics        bool
		want           Access
	}{
		{"GET", "/healthz", false, pub},
		{"HEAD", "/readyz", false, pub},
		{"POST", "/healthz", false, write},
		{"GET", "/healthz/", false, read}, // public only as spelled
		{"GET", "/healthz?verbose=1", false, pub},
		{"GET", "/metrics", false, read},
		{"GET", "/metrics", true, pub},
		{"DELETE", "/metrics", true, write},
		{"GET", "/api/v1/devices", false, read},
		{"HEAD", "/api/v1/devices/x", false, read},
		{"POST", "/api/v1/devices/x/tasks", false, write},
		{"PUT", "/api/v1/files/f", false, write},
		{"DELETE", "/tasks/x", false, write},
		{"OPTIONS", "/api/v1/devices", false, write},
		{"TRACE", "/api/v1/devices", false, write},
		{"BREW", "/", false, write},
		{"GET", "/api/v1/tokens", false, admin},
		{"GET", "/api/v1/tokens/", false, admin},
		{"HEAD", "/api/v1/tokens/x", false, admin},
		{"POST", "/api/v1/tokens", false, admin},
		{"GET", "/api/v1/tokensx", false, read},
		{"GET", "/api/v1/x/../tokens", false, admin},
		{"GET", "/api/v1//tokens", false, admin},
		{"GET", "/api/v1/tokens/../devices", false, admin},
		{"GET", "/api/v1/%74okens", false, admin},
		{"GET", "/api/v1/cluster", false, read},
		{"GET", "/api/v1/cluster/peer", false, read},
		{"POST", "/api/v1/cluster/join", false, admin},
		{"PUT", "/api/v1/cluster", false, admin},
		{"PATCH", "/api/v1/cluster/x", false, admin},
		{"DELETE", "/api/v1/edges/e1", false, admin},
		{"POST", "/api/v1/edges/e1/revoke", false, admin},
		{"POST", "/api/v1/edgesx", false, write},
		{"OPTIONS", "/api/v1/edges", false, write},
		{"GET", "/api/v1/edges", false, read},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.target, nil)
		if got := DefaultPolicy(c.metrics)(r); got != c.want {
			t.Errorf("%s %s (metrics public %v): %+v, want %+v", c.method, c.target, c.metrics, got, c.want)
		}
	}
}

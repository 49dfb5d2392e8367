package core

import (
	"context"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/apiauth/authtest"
	"github.com/edgeacs/edgeacs/fleet"
)

// TestAPIRoutesNeedTokens walks every route the core's client API
// registers: none but health (and public metrics) answers without a valid
// token, and a read token cannot write.
func TestAPIRoutesNeedTokens(t *testing.T) {
	for _, private := range []bool{false, true} {
		nodes := newCluster(t, 1, func(c *Config) { c.MetricsAuth = private })
		n := nodes[0]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		read, _, err := n.CreateToken(ctx, "reader", fleet.ScopeRead, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		revoked, _, err := n.CreateToken(ctx, "gone", fleet.ScopeAdmin, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.RevokeToken(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		cancel()
		authtest.CheckRoutes(t, n.http.Handler, n.routes.Patterns(), apiauth.DefaultPolicy(!private), authtest.Tokens{Read: read, Revoked: revoked})
	}
}

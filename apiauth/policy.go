package apiauth

import (
	"net/http"
	"path"
	"strings"

	"github.com/edgeacs/edgeacs/fleet"
)

// Access is what a route asks of a request.
type Access struct {
	// Public routes are served without a token (and any Authorization
	// header is ignored).
	Public bool
	// Scope is the least scope a token needs when the route is not public.
	// An unknown scope (including "") is treated as fleet.ScopeAdmin, so a
	// policy that forgets to set it fails closed.
	Scope fleet.Scope
}

// Policy decides per request what it needs. It sees the request before
// anything is read from its body.
type Policy func(r *http.Request) Access

// DefaultPolicy is the policy both management APIs share:
//
//   - GET (and HEAD) /healthz and /readyz are public; so is /metrics when
//     publicMetrics is set (a Prometheus without a token), else it needs read;
//   - anything under /api/v1/tokens needs admin, whatever the method;
//   - POST, PUT, PATCH and DELETE under /api/v1/cluster or /api/v1/edges
//     need admin;
//   - any other GET or HEAD needs read;
//   - everything else, including methods it does not know, needs write.
//
// Public routes match the path exactly. Admin prefixes are matched against
// the path both as sent and cleaned of "." and ".." segments, so no
// spelling of a path reaches an admin route with a lesser scope.
func DefaultPolicy(publicMetrics bool) Policy {
	return func(r *http.Request) Access {
		p := r.URL.Path
		clean := path.Clean("/" + p)
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		under := func(prefix string) bool { return isUnder(p, prefix) || isUnder(clean, prefix) }
		switch {
		case read && (p == "/healthz" || p == "/readyz"):
			return Access{Public: true}
		case read && p == "/metrics" && publicMetrics:
			return Access{Public: true}
		case under("/api/v1/tokens"):
			return Access{Scope: fleet.ScopeAdmin}
		case isChange(r.Method) && (under("/api/v1/cluster") || under("/api/v1/edges")):
			return Access{Scope: fleet.ScopeAdmin}
		case read:
			return Access{Scope: fleet.ScopeRead}
		}
		return Access{Scope: fleet.ScopeWrite}
	}
}

// isUnder reports whether p is prefix or a path below it ("/a/b" is under
// "/a", "/ab" is not).
func isUnder(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

func isChange(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// audited reports whether a request of this method is written to the
// audit log: anything that may change state.
func audited(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

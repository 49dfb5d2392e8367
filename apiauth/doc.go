// Package apiauth authenticates the management APIs of edges and the core:
// one wrapper around an API's whole mux, so no route can be added without
// a decision about who may call it.
//
// A request presents an API token as "Authorization: Bearer <secret>". The
// secret is never stored or logged: it is hashed with fleet.HashToken and
// looked up in a Store. A Policy names the scope each request needs (or
// that the route is public); DefaultPolicy is the one both APIs share.
// Failed authentications are rate-limited per source address, checked
// before any hashing or lookup, so guessing secrets costs the guesser time
// and the server nothing. Every change (any method but GET, HEAD and
// OPTIONS) is written to the log as an "audit" line naming the token.
//
// Mux records the patterns an API registers, so a test can walk every route
// (ExamplePath turns a pattern into a request) and check that none is
// served without a token unless the policy says so.
//
// An API wires it like this:
//
//	mux := apiauth.NewMux()
//	mux.HandleFunc("GET /healthz", healthz)
//	mux.HandleFunc("GET /api/v1/devices", listDevices)
//	mux.HandleFunc("POST /api/v1/devices/{id}/tasks", postTask)
//
//	auth := apiauth.New(apiauth.Config{
//		Store:  tokens, // the core's replicated tokens, or an edge's synced copy
//		Policy: apiauth.DefaultPolicy(cfg.PublicMetrics),
//		Logger: log,
//	})
//	srv := &http.Server{Addr: cfg.APIAddr, Handler: auth.Wrap(mux)}
//
// Wrap goes around everything that reads a request body, so nothing is
// decompressed, parsed or stored before the caller is known. Handlers find
// the caller's token with FromContext.
//
// Addresses are taken from r.RemoteAddr only; a proxy in front of the API
// makes all its clients one source, and X-Forwarded-For is not trusted.
package apiauth

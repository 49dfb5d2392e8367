package edge

import (
	"fmt"
	"net/http"

	"github.com/edgeacs/edgeacs/console"
)

// withConsole serves the web console under /console/ beside api, the
// edge's API handler it calls in-process (package console), as the
// core's client listener does: the console has no other way to the data
// and no authorization of its own. Only a standalone edge serves it (a
// synced edge's devices are the core's console's); its API lacks the
// core's tags, edges, rollouts, filter expressions and task queries, so
// the console leaves them out (console.Features).
func (n *Node) withConsole(api http.Handler) (http.Handler, error) {
	c, err := console.New(console.Config{API: api, Tokens: n, Title: "edge " + n.cfg.ID, Logger: n.log, Features: &console.Features{}})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, c)
	mux.Handle("GET /console", http.RedirectHandler(console.Prefix, http.StatusMovedPermanently))
	mux.Handle("/", api)
	return mux, nil
}

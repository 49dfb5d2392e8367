package core

import (
	"fmt"
	"net/http"

	"github.com/edgeacs/edgeacs/console"
)

// withConsole serves the web console under /console/ beside api, the
// client API handler it calls in-process (package console): the console
// has no other way to the data and no authorization of its own. Only
// the client listener serves it; the peer port never does.
func (n *Node) withConsole(api http.Handler) (http.Handler, error) {
	c, err := console.New(console.Config{API: api, Tokens: n, Title: "core " + n.cfg.ID, Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, c)
	mux.Handle("GET /console", http.RedirectHandler(console.Prefix, http.StatusMovedPermanently))
	mux.Handle("/", api)
	return mux, nil
}

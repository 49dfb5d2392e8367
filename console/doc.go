// Package console is edgeacs's web console for operators: the fleet at a
// glance, a device in one page, presets, provisions and files, served as
// HTML under /console/ by the core's API listener.
//
// It holds no data and no authorization of its own. Every page is built
// by calling the node's own /api/v1 handler in-process, through the same
// Go client the fleet CLI uses (package client, with an in-process
// transport), carrying the operator's API token as a bearer token: the
// apiauth checks, scopes, rate limits and audit lines are the API's. The
// console only keeps, per browser, a server-side session that maps an
// HttpOnly, SameSite=Strict cookie to the token the operator signed in
// with (so the token never travels in a URL or reaches JavaScript), and a
// CSRF token that every POST must carry. A read token sees no write
// buttons, and the console refuses its write posts before the API would.
//
// Pages are html/template with their CSS and a vendored htmx (2.x, 0BSD;
// static/htmx.LICENSE) embedded with go:embed: nothing is fetched from the
// internet, so it works on a POP with none. Everything works without
// JavaScript; htmx adds lazy tree expansion and live task progress.
package console

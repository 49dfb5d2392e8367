// Package httpapi is the HTTP plumbing both management APIs (the core's
// and an edge's) share, so that they answer alike: JSON bodies, one table
// from sentinel errors to status codes, the error body {"error": "..."},
// paging (limit, cursor, X-Next-Cursor, X-Total-Count), ?wait, bounded
// request bodies, unknown query parameters, and 404/405 for paths no
// route serves.
//
// Authentication is not here: package apiauth wraps an API's whole mux and
// answers 401, 403 and the 429 of failed authentications itself.
//
// A handler returns wrapped sentinel errors and calls WriteError; it never
// picks a status for an error itself. Errors of another package that a
// client should see as, say, a conflict either are listed in the table
// (fleet's and blob's, which know nothing of HTTP) or are marked with
// Mark (the core's and the edge's own sentinels).
package httpapi

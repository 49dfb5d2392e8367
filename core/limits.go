package core

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeacs/edgeacs/httpapi"
)

// DefaultMaxAPIRequests bounds the API requests a core node serves at once
// (Config.MaxAPIRequests). Each holds a goroutine, buffers and often a
// Raft apply; past a thousand, answering 503 quickly serves operators
// better than queueing them all behind one another until memory or file
// descriptors run out.
const DefaultMaxAPIRequests = 1024

// apiRetryAfter is the window a refused API client is told to come back
// in, in seconds: spread so that scripts retrying together do not return
// together.
const apiRetryAfterMin, apiRetryAfterMax = 1, 5

// errAPIBusy answers a request over MaxAPIRequests.
var errAPIBusy = httpapi.Mark(errors.New("too many API requests in flight; retry later"), httpapi.ErrUnavailable)

// limitInFlight serves at most max requests of h at once; the others get
// 503 with a jittered Retry-After at once, before authentication or a body
// is read. Health checks and metrics are never refused: they are what an
// operator looks at when the node is busy.
func limitInFlight(h http.Handler, max int, rejected prometheus.Counter) http.Handler {
	if max <= 0 {
		return h
	}
	sem := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			h.ServeHTTP(w, r)
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			rejected.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(apiRetryAfterMin+rand.IntN(apiRetryAfterMax-apiRetryAfterMin+1)))
			w.Header().Set("Connection", "close")
			httpapi.WriteError(w, errAPIBusy)
			return
		}
		defer func() { <-sem }()
		h.ServeHTTP(w, r)
	})
}

// newAPIRejected is the counter of requests limitInFlight refused.
func newAPIRejected(reg *prometheus.Registry) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgeacs_core_api_rejected_total",
		Help: "API requests refused with 503 because MaxAPIRequests were in flight.",
	})
	reg.MustRegister(c)
	return c
}

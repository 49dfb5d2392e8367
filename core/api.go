package core

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
	"github.com/hashicorp/raft"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// hdrForwarded marks a request a follower forwarded to the leader, so a
// request never bounces between two nodes that disagree on the leader. On
// the peer port it also marks a client request to serve with the client
// handler (peer.go).
const hdrForwarded = "X-Edgeacs-Forwarded-By"

// Bounds of the core's own (page sizes and ?wait are httpapi's, as on the
// edge).
const (
	// maxFilterTasks bounds how many devices one POST /tasks may target.
	maxFilterTasks = 100000
	// tasksPerCommand splits filter task creation into commands of this size.
	tasksPerCommand = 1000
)

// errorFor is httpapi.Status's inverse for answers from another node: a
// 503 is ErrNotLeader (so the caller retries), a 504 ErrOutcomeUnknown.
func errorFor(code int, msg string) error {
	var base error
	switch code {
	case http.StatusNotFound:
		base = ErrNotFound
	case http.StatusBadRequest:
		base = ErrBadRequest
	case http.StatusConflict:
		base = ErrConflict
	case http.StatusForbidden:
		base = ErrRevoked
	case http.StatusRequestEntityTooLarge:
		base = ErrTooLarge
	case http.StatusServiceUnavailable:
		base = ErrNotLeader
	case http.StatusGatewayTimeout:
		base = ErrOutcomeUnknown
	default:
		return fmt.Errorf("leader answered %d: %s", code, msg)
	}
	return fmt.Errorf("%w (from leader): %s", base, msg)
}

// openAPIDoc describes the client API's /api/v1 routes (served at
// /api/v1/openapi.json); it is also the list of the query parameters each
// accepts: any other is refused with 400.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI is openAPIDoc, read once; a document that does not load is a
// build mistake that TestOpenAPIMatchesRoutes reports.
var openAPI = func() *httpapi.Spec {
	s, err := httpapi.LoadSpec(openAPIDoc)
	if err != nil {
		panic(err)
	}
	return s
}()

// writeJSON answers code with v (httpapi.WriteJSON).
func writeJSON(w http.ResponseWriter, code int, v any) { httpapi.WriteJSON(w, code, v) }

// writeError answers err with the status httpapi's table gives it.
func writeError(w http.ResponseWriter, err error) { httpapi.WriteError(w, err) }

func (n *Node) handler() http.Handler {
	mux := apiauth.NewMux()
	h := func(pattern string, fn http.HandlerFunc) { mux.HandleFunc(pattern, openAPI.Strict(pattern, fn)) }

	h("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	h("GET /readyz", n.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.met.reg, promhttp.HandlerOpts{}))

	h("GET /api/v1/devices", n.read(n.listDevices))
	h("GET /api/v1/devices/{id}", n.read(n.getDevice))
	h("GET /api/v1/devices/{id}/params", n.read(n.getDeviceParams))
	h("PUT /api/v1/devices/{id}", n.write(n.putDevice))
	h("DELETE /api/v1/devices/{id}", n.write(n.deleteDevice))
	h("POST /api/v1/devices/{id}/tags/{tag}", n.write(n.tagDevice(OpTag)))
	h("DELETE /api/v1/devices/{id}/tags/{tag}", n.write(n.tagDevice(OpUntag)))
	h("POST /api/v1/devices/{id}/tasks", n.write(n.createDeviceTask))
	h("GET /api/v1/devices/{id}/tasks", n.read(n.listDeviceTasks))
	h("GET /api/v1/devices/{id}/faults", n.read(n.listDeviceFaults))
	h("GET /api/v1/devices/{id}/history", n.read(n.getDeviceHistory))
	h("POST /api/v1/tasks", n.write(n.createFilterTasks))
	h("GET /api/v1/tasks", n.read(n.listTasks))
	h("GET /api/v1/tasks/{id}", n.read(n.getTask))
	h("DELETE /api/v1/tasks/{id}", n.write(n.cancelTask))
	h("GET /api/v1/faults", n.read(n.listFaults))
	h("DELETE /api/v1/faults/{id}", n.write(n.deleteFault))
	h("GET /api/v1/presets", n.read(n.listPresets))
	h("GET /api/v1/presets/{name}", n.read(n.getPreset))
	h("PUT /api/v1/presets/{name}", n.write(n.putPreset))
	h("DELETE /api/v1/presets/{name}", n.write(n.deletePreset))
	h("GET /api/v1/provisions", n.read(n.listProvisions))
	h("GET /api/v1/provisions/{name}", n.read(n.getProvision))
	h("PUT /api/v1/provisions/{name}", n.write(n.putProvision))
	h("DELETE /api/v1/provisions/{name}", n.write(n.deleteProvision))
	h("GET /api/v1/virtual-parameters", n.read(n.listVirtualParameters))
	h("GET /api/v1/virtual-parameters/{name}", n.read(n.getVirtualParameter))
	h("PUT /api/v1/virtual-parameters/{name}", n.write(n.putVirtualParameter))
	h("DELETE /api/v1/virtual-parameters/{name}", n.write(n.deleteVirtualParameter))
	h("GET /api/v1/files", n.read(n.listFiles))
	h("GET /api/v1/files/{name}", n.read(n.getFile))
	h("GET /api/v1/files/{name}/content", n.getFileContent)
	h("PUT /api/v1/files/{name}", n.putFile) // blob stays here; metadata goes to the leader
	h("DELETE /api/v1/files/{name}", n.write(n.deleteFile))
	h("GET /api/v1/edges", n.atLeader(n.listEdges))
	h("POST /api/v1/edges/{id}/revoke", n.write(n.revokeEdge))
	h("GET /api/v1/tokens", n.read(n.listTokens))
	h("POST /api/v1/tokens", n.write(n.createToken))
	h("DELETE /api/v1/tokens/{name}", n.write(n.revokeToken))
	h("GET /api/v1/cluster", n.clusterStatus)
	h("POST /api/v1/cluster/join", n.write(n.clusterJoin))
	h("POST /api/v1/cluster/remove", n.write(n.clusterRemove))
	h("GET /api/v1/openapi.json", openAPI.ServeHTTP)
	h("POST /api/v1/rollouts", n.write(n.createRollout))
	h("GET /api/v1/rollouts", n.read(n.listRollouts))
	h("GET /api/v1/rollouts/{name}", n.read(n.getRollout))
	h("DELETE /api/v1/rollouts/{name}", n.write(n.deleteRollout))
	for _, a := range []string{RolloutActionPause, RolloutActionResume, RolloutActionAbort, RolloutActionRetry} {
		h("POST /api/v1/rollouts/{name}/"+a, n.write(n.controlRollout(a)))
	}

	// ---- GenieACS NBI: its paths and shapes, registered in nbi.go ----
	n.nbiRoutes(h)
	// ---- end GenieACS NBI ----

	// Nothing internode is served here: peers talk on the Raft port (peer.go).
	// A path served with other methods is 405 with Allow; any other 404.
	h("/", httpapi.Fallback(mux))
	n.routes = mux
	// Authentication comes before any body is read (boundBody) or any
	// work is done; a follower checks the token before it forwards, and
	// the leader checks it again (tokens are replicated to every node).
	auth := apiauth.New(apiauth.Config{Store: n, Policy: apiauth.DefaultPolicy(!n.cfg.MetricsAuth), Logger: n.log})
	return limitInFlight(auth.Wrap(n.instrument(n.boundBody(mux))), n.cfg.MaxAPIRequests, newAPIRejected(n.met.reg))
}

// statusWriter records the status code for metrics; Unwrap lets
// http.ResponseController (the reverse proxy's flushing) reach the original.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (n *Node) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		n.met.apiLat.WithLabelValues(route, strconv.Itoa(max(sw.code, 200))).Observe(time.Since(start).Seconds())
	})
}

// minBodyProgress is what a request body must deliver per APIBodyTimeout
// to keep its connection: a trickle (slowloris) is cut, a large upload on
// a slow link is not.
const minBodyProgress = 64 << 10

// boundBody puts a read deadline on a request's body (see
// Config.APIBodyTimeout), moved forward each time minBodyProgress more
// bytes arrive and cleared at the end of the body.
func (n *Node) boundBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		d := n.cfg.APIBodyTimeout
		if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: d}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody is a request body under boundBody's deadline.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	since   int // bytes since the deadline last moved
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.since += n
	if b.since >= minBodyProgress {
		b.since = 0
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	switch {
	case err == io.EOF:
		// Clear it: net/http keeps reading the connection in the
		// background while the handler runs (to notice a client going
		// away), and a deadline firing there would cancel a long poll.
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: less than %d bytes of body in %v: %w", ErrRequestTimeout, minBodyProgress, b.timeout, err)
	}
	return n, err
}

// write runs h on the leader; a follower forwards the whole request to the
// leader (peer.go) so the client sees one answer. During an election
// either waits for the new leader, up to Config.LeaderWait.
func (n *Node) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n.IsLeader() {
			h(w, r)
			return
		}
		n.forward(w, r, h)
	}
}

// atLeader serves h on the leader: the edges' links end there, so only
// the leader knows which are connected and how they are. A follower
// forwards; with no leader known it answers from its own state.
func (n *Node) atLeader(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n.IsLeader() || r.Header.Get(hdrForwarded) != "" {
			h(w, r)
			return
		}
		if _, id := n.raft.LeaderWithID(); id == "" {
			h(w, r)
			return
		}
		n.forward(w, r, h)
	}
}

// read serves h locally, or as a linearizable read when ?consistent=true.
// A node outside the cluster's configuration serves no reads: its state
// is stale from the moment it was removed or replaced.
func (n *Node) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := n.memberErr(); err != nil {
			writeError(w, fmt.Errorf("%w; this node serves no reads", err))
			return
		}
		if c := r.URL.Query().Get("consistent"); c != "" {
			want, err := strconv.ParseBool(c)
			if err != nil {
				writeError(w, fmt.Errorf("%w: consistent must be true or false", ErrBadRequest))
				return
			}
			if want {
				atLeader := func(w http.ResponseWriter, r *http.Request) {
					if err := n.consistent(r.Context()); err != nil {
						writeError(w, err)
						return
					}
					h(w, r)
				}
				if !n.IsLeader() {
					n.forward(w, r, atLeader)
					return
				}
				atLeader(w, r)
				return
			}
		}
		h(w, r)
	}
}

// traceSent returns ctx with a trace that records whether a request using
// it got as far as writing its headers to the peer.
func traceSent(ctx context.Context) (context.Context, *atomic.Bool) {
	sent := new(atomic.Bool)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }}), sent
}

// forwardError is the error for a request to the leader that got no
// answer. A write that was sent may have been applied, so it is
// ErrOutcomeUnknown (504: read before retrying); one that never left, or
// a read, is ErrNoLeader (503: retry).
func forwardError(method string, sent bool, to string, err error) error {
	if sent && method != http.MethodGet && method != http.MethodHead {
		return fmt.Errorf("%w: sent to %s, whose answer was lost: %v", ErrOutcomeUnknown, to, err)
	}
	return fmt.Errorf("%w: could not reach %s (nothing was applied; retry): %v", ErrNoLeader, to, err)
}

func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if err := n.memberErr(); err != nil {
		writeError(w, fmt.Errorf("not ready: %w", err))
		return
	}
	_, id := n.raft.LeaderWithID()
	if id == "" {
		writeError(w, fmt.Errorf("%w: not ready", ErrNoLeader))
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready", "leader": string(id)})
}

// readBody reads a JSON body of at most Config.MaxBodyBytes (more is 413).
func (n *Node) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return httpapi.ReadBody(w, r, n.cfg.MaxBodyBytes)
}

// decodeStrict is httpapi.DecodeStrict: unknown fields, duplicate keys and
// trailing data are 400.
func decodeStrict(b []byte, v any) error { return httpapi.DecodeStrict(b, v) }

// paging reads ?cursor= and ?limit= (httpapi.ParsePage).
func paging(r *http.Request) (string, int, error) {
	p, err := httpapi.ParsePage(r.URL.Query())
	return p.Cursor, p.Limit, err
}

// deviceFilter reads a device list's filter from the query: id (an ID
// prefix), edge, tag, lastInformAfter and filter (an expression, as
// DeviceFilter.Expr).
func deviceFilter(q url.Values) (DeviceFilter, error) {
	df := DeviceFilter{IDPrefix: q.Get("id"), Edge: q.Get("edge"), Tag: q.Get("tag"), Expr: q.Get("filter")}
	if s := q.Get("lastInformAfter"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return df, fmt.Errorf("%w: lastInformAfter must be RFC 3339: %v", ErrBadRequest, err)
		}
		df.LastInformAfter = t
	}
	return df, nil
}

func (n *Node) listDevices(w http.ResponseWriter, r *http.Request) {
	df, err := deviceFilter(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := compileFilter(df.Expr, "filter"); err != nil {
		writeJSON(w, httpapi.Status(err), filterErrorBody(err, "filter"))
		return
	}
	cursor, limit, err := paging(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ds, next, err := n.fsm.Devices(df, cursor, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	// X-Total-Count as the edge sends it: for the unfiltered list, where
	// counting needs no values.
	total := -1
	if df == (DeviceFilter{}) {
		if total, err = n.fsm.DeviceCount(); err != nil {
			writeError(w, err)
			return
		}
	}
	views := deviceViews(ds)
	if states, err := n.fsm.DeviceStatesOf(ds, time.Now()); err == nil {
		for i := range views {
			views[i].State = states[views[i].ID]
		}
	}
	httpapi.WriteList(w, views, next, total)
}

func (n *Node) getDevice(w http.ResponseWriter, r *http.Request) {
	d, err := n.fsm.Device(r.PathValue("id"), true)
	if err != nil {
		writeError(w, err)
		return
	}
	v := d.view()
	if v.Parameters == nil {
		v.Parameters = map[string]fleet.Parameter{}
	}
	var interval time.Duration
	for _, root := range [...]string{"InternetGatewayDevice", "Device"} {
		if p, ok := d.Parameters[root+fleet.InformIntervalSuffix]; ok {
			interval = fleet.ParseInformInterval(p.Value)
		}
	}
	v.State = fleet.OnlineState(d.LastInform, interval, time.Now())
	writeJSON(w, 200, v)
}

func (n *Node) getDeviceParams(w http.ResponseWriter, r *http.Request) {
	d, err := n.fsm.Device(r.PathValue("id"), true)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, publicParams(d.Parameters))
}

// applyOK applies cmd and writes the error, if any; it reports success.
func (n *Node) applyOK(w http.ResponseWriter, r *http.Request, cmd Command) (Result, bool) {
	res := n.Apply(r.Context(), cmd)
	if res.Err != nil {
		writeError(w, res.Err)
		return res, false
	}
	return res, true
}

// putDeviceRequest pre-registers a device (before its first inform) or
// corrects its identity; tags and parameters are kept.
type putDeviceRequest struct {
	OUI          string `json:"oui"`
	ProductClass string `json:"productClass"`
	SerialNumber string `json:"serialNumber"`
	Manufacturer string `json:"manufacturer"`
	Edge         string `json:"edge"`
}

func (n *Node) putDevice(w http.ResponseWriter, r *http.Request) {
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req putDeviceRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	d := &Device{ID: id, OUI: req.OUI, ProductClass: req.ProductClass, SerialNumber: req.SerialNumber, Manufacturer: req.Manufacturer, Edge: req.Edge}
	if _, ok := n.applyOK(w, r, Command{Op: OpPutDevice, Device: d}); !ok {
		return
	}
	got, err := n.fsm.Device(id, false)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, got.view())
}

func (n *Node) deleteDevice(w http.ResponseWriter, r *http.Request) {
	if _, ok := n.applyOK(w, r, Command{Op: OpDeleteDevice, Name: r.PathValue("id")}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (n *Node) tagDevice(op Op) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := n.applyOK(w, r, Command{Op: op, Name: r.PathValue("id"), Tag: r.PathValue("tag")}); ok {
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// parseWait reads ?wait=<duration> or GenieACS's ?timeout=<milliseconds>
// (httpapi.ParseWait: more than httpapi.MaxWait is refused).
func parseWait(q url.Values) (time.Duration, error) {
	d, _, err := httpapi.ParseWait(q)
	return d, err
}

// wantWake reads ?connection_request (GenieACS's NBI): present, empty or
// true, it asks the edge to wake the device as soon as the task arrives.
func wantWake(q url.Values) (bool, error) {
	if !q.Has("connection_request") {
		return false, nil
	}
	s := q.Get("connection_request")
	if s == "" {
		return true, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%w: connection_request must be empty, true or false", ErrBadRequest)
	}
	return v, nil
}

// createDeviceTask queues a task for one device; the FSM dispatches it to
// the device's edge. With ?connection_request the edge wakes the device at
// once; with ?wait=D (or ?timeout=ms) the answer waits up to D for the
// task to end: 200 with the final task, else 202 with it as it stands.
//
// Creation is idempotent (see taskKey): a request that repeats an earlier
// one answers 200 with the earlier task, marked Idempotent-Replayed, and
// queues nothing. Every answer carries the key in Idempotency-Key.
func (n *Node) createDeviceTask(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	wait, err := parseWait(q)
	if err != nil {
		writeError(w, err)
		return
	}
	wake, err := wantWake(q)
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	now := time.Now().UTC()
	t, err := fleet.ParseTask(body, r.PathValue("id"), now)
	if err == nil {
		err = n.checkTaskFile(t)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	key, derived, err := taskKey(r.Header.Get("Idempotency-Key"), t)
	if err != nil {
		writeError(w, err)
		return
	}
	t.ID = ulid.Make().String()
	res, ok := n.applyOK(w, r, Command{Op: OpCreateTasks, Time: now, Key: key, KeyWhilePending: derived, Wake: wake, Tasks: []*fleet.Task{t}})
	if !ok {
		return
	}
	w.Header().Set("Idempotency-Key", key)
	replayed := false
	if ids, _ := res.Value.([]string); res.Noop && len(ids) == 1 {
		first, err := n.fsm.Task(ids[0])
		if err != nil {
			writeError(w, fmt.Errorf("task %s of Idempotency-Key %q: %w", ids[0], key, err))
			return
		}
		if first.Device != t.Device || taskFingerprint(first) != taskFingerprint(t) {
			writeError(w, fmt.Errorf("%w: Idempotency-Key %q was first used for task %s (%s on device %s); a different request needs a different key",
				ErrConflict, key, first.ID, first.Name, first.Device))
			return
		}
		t, replayed = first, true
		w.Header().Set("Idempotent-Replayed", "true")
	} else if stored, err := n.fsm.Task(t.ID); err == nil {
		// The stored task says which edge it went to.
		t = stored
	}
	w.Header().Set("Location", "/api/v1/tasks/"+t.ID)
	if wait > 0 {
		final, err := n.awaitFinal(r.Context(), t.ID, wait)
		if err != nil {
			writeError(w, err)
			return
		}
		if final.Status.Final() {
			writeJSON(w, http.StatusOK, fleet.PublicTask(final))
			return
		}
		t = final
	}
	if replayed {
		writeJSON(w, http.StatusOK, fleet.PublicTask(t))
		return
	}
	// 202 as GenieACS answers a queued task ("Task queued but not
	// processed"): scripts written against its NBI branch on it.
	writeJSON(w, http.StatusAccepted, fleet.PublicTask(t))
}

// maxIdempotencyKey bounds a client's Idempotency-Key (it becomes part of
// a storage key).
const maxIdempotencyKey = 255

// derivedKeyPrefix starts the keys taskKey derives.
const derivedKeyPrefix = "auto-"

// taskKey chooses the idempotency key of a task creation.
//
// The rule: with an Idempotency-Key header, that key alone decides, for
// good: the same key again answers the first task (and a different
// request under the same key is a conflict). Without one, the key is
// derived from the device and the task's content (name and arguments;
// not its expiry) and holds only while the task it created is pending or
// running: an identical request meanwhile answers that task instead of
// queueing a second reboot, and the same request after it has ended is a
// new task. No clock is involved, so a retry late or early is treated
// alike. What this cannot catch is a retry sent after the first task has
// already ended (its answer lost and the task quick): only a client key
// covers that.
func taskKey(header string, t *fleet.Task) (key string, derived bool, err error) {
	if header != "" {
		if len(header) > maxIdempotencyKey {
			return "", false, fmt.Errorf("%w: Idempotency-Key longer than %d bytes", ErrBadRequest, maxIdempotencyKey)
		}
		for i := 0; i < len(header); i++ {
			if c := header[i]; c < 0x20 || c > 0x7e {
				return "", false, fmt.Errorf("%w: Idempotency-Key must be printable ASCII", ErrBadRequest)
			}
		}
		return header, false, nil
	}
	sum := sha256.Sum256([]byte(t.Device + "\x00" + taskFingerprint(t)))
	return derivedKeyPrefix + hex.EncodeToString(sum[:16]), true, nil
}

// taskFingerprint is a task's content: what it asks of which device,
// without the fields that differ between two requests for the same thing
// (ID, times, state).
func taskFingerprint(t *fleet.Task) string {
	c := *t
	c.ID, c.Timestamp, c.Expiry, c.Status, c.Edge = "", time.Time{}, time.Time{}, "", ""
	c.Attempts, c.Updated, c.Result, c.Fault = 0, time.Time{}, nil, nil
	b, _ := json.Marshal(&c) // a struct of plain fields: cannot fail
	return string(b)
}

// filterTaskRequest is the body of POST /api/v1/tasks.
type filterTaskRequest struct {
	Filter DeviceFilter    `json:"filter"`
	Task   json.RawMessage `json:"task"`
}

func (n *Node) createFilterTasks(w http.ResponseWriter, r *http.Request) {
	wake, err := wantWake(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req filterTaskRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Filter == (DeviceFilter{}) {
		writeError(w, fmt.Errorf("%w: filter must select devices (id, edge, tag, lastInformAfter or expr)", ErrBadRequest))
		return
	}
	if _, err := compileFilter(req.Filter.Expr, "filter.expr"); err != nil {
		writeJSON(w, httpapi.Status(err), filterErrorBody(err, "filter.expr"))
		return
	}
	now := time.Now().UTC()
	proto, err := fleet.ParseTask(req.Task, "", now)
	if err == nil {
		err = n.checkTaskFile(proto)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	ds, _, err := n.fsm.Devices(req.Filter, "", maxFilterTasks+1)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(ds) > maxFilterTasks {
		writeError(w, fmt.Errorf("%w: filter selects more than %d devices", ErrBadRequest, maxFilterTasks))
		return
	}
	ids := []string{}
	for start := 0; start < len(ds); start += tasksPerCommand {
		chunk := ds[start:min(start+tasksPerCommand, len(ds))]
		tasks := make([]*fleet.Task, len(chunk))
		for i, d := range chunk {
			t := *proto
			t.ID, t.Device = ulid.Make().String(), d.ID
			tasks[i] = &t
		}
		res := n.Apply(r.Context(), Command{Op: OpCreateTasks, Time: now, SkipMissing: true, Wake: wake, Tasks: tasks})
		if res.Err != nil {
			writeError(w, fmt.Errorf("after creating %d tasks: %w", len(ids), res.Err))
			return
		}
		got, _ := res.Value.([]string)
		ids = append(ids, got...)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"count": len(ids), "ids": ids})
}

func (n *Node) listTasksFor(w http.ResponseWriter, r *http.Request, tf TaskFilter) {
	cursor, limit, err := paging(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if s := r.URL.Query().Get("status"); s != "" {
		tf.Status = fleet.TaskStatus(s)
	}
	if tf.Device != "" {
		if _, err := n.fsm.Device(tf.Device, false); err != nil {
			writeError(w, err)
			return
		}
	}
	ts, next, err := n.fsm.Tasks(tf, cursor, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	httpapi.WriteList(w, fleet.PublicTasks(ts), next, -1)
}

func (n *Node) listDeviceTasks(w http.ResponseWriter, r *http.Request) {
	n.listTasksFor(w, r, TaskFilter{Device: r.PathValue("id")})
}

func (n *Node) listTasks(w http.ResponseWriter, r *http.Request) {
	n.listTasksFor(w, r, TaskFilter{Device: r.URL.Query().Get("device")})
}

// getTask answers with the task; with ?wait=D it first waits up to D for
// the task to become final: 200 when final, 202 when still pending.
func (n *Node) getTask(w http.ResponseWriter, r *http.Request) {
	wait, err := parseWait(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	t, err := n.awaitFinal(r.Context(), r.PathValue("id"), wait)
	if err != nil {
		writeError(w, err)
		return
	}
	code := http.StatusOK
	if wait > 0 && !t.Status.Final() {
		code = http.StatusAccepted
	}
	writeJSON(w, code, fleet.PublicTask(t))
}

// awaitFinal reads task id, waiting up to wait for it to become final. It
// wakes on every FSM apply (FSM.Watch), so a result that arrives from an
// edge through the uplink ends the wait as soon as this node applies it.
// When the wait runs out it returns the task as it stands.
func (n *Node) awaitFinal(ctx context.Context, id string, wait time.Duration) (*fleet.Task, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		ch := n.fsm.Watch() // before the read, so no change is missed
		t, err := n.fsm.Task(id)
		if err != nil {
			return nil, err
		}
		if wait == 0 || t.Status.Final() {
			return t, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return t, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for task %s: %w", id, ctx.Err())
		case <-n.closed:
			return nil, fmt.Errorf("waiting for task %s: %w", id, ErrClosed)
		}
	}
}

func (n *Node) cancelTask(w http.ResponseWriter, r *http.Request) {
	if _, ok := n.applyOK(w, r, Command{Op: OpCancelTask, TaskID: r.PathValue("id")}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (n *Node) listFaults(w http.ResponseWriter, r *http.Request) {
	fs, err := n.fsm.Faults(r.URL.Query().Get("device"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, faultViews(fs))
}

// deleteTaskFault answers DELETE /api/v1/faults/{id}, id being a task fault's _id
// (its task's ID): 204, or 404 when no fault has that ID. The core's
// faults are those of tasks, final and never retried, so clearing one
// removes its task too, as the NBI's DELETE /faults/{id} does.
func (n *Node) deleteTaskFault(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, err := n.fsm.Task(id)
	if errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("fault %s: %w", id, ErrNotFound)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	fs, err := n.fsm.Faults(t.Device)
	if err != nil {
		writeError(w, err)
		return
	}
	if !slices.ContainsFunc(fs, func(f *Fault) bool { return f.TaskID == id }) {
		writeError(w, fmt.Errorf("fault %s: %w (task %s is %s)", id, ErrNotFound, id, t.Status))
		return
	}
	if _, ok := n.applyOK(w, r, Command{Op: OpCancelTask, TaskID: id}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

// listDeviceFaults answers GET /api/v1/devices/{id}/faults, as the edge
// does: 404 for an unknown device.
func (n *Node) listDeviceFaults(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := n.fsm.Device(id, false); err != nil {
		writeError(w, err)
		return
	}
	fs, err := n.fsm.Faults(id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, faultViews(fs))
}

func (n *Node) listPresets(w http.ResponseWriter, r *http.Request) {
	ps, err := n.fsm.Presets()
	if err != nil {
		writeError(w, err)
		return
	}
	if ps == nil {
		ps = []*fleet.Preset{}
	}
	writeJSON(w, 200, ps)
}

func (n *Node) getPreset(w http.ResponseWriter, r *http.Request) {
	p, err := n.fsm.Preset(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, p)
}

func (n *Node) putPreset(w http.ResponseWriter, r *http.Request) {
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var p fleet.Preset
	if err := decodeStrict(body, &p); err != nil {
		writeError(w, err)
		return
	}
	name := r.PathValue("name")
	if p.Name != "" && p.Name != name {
		writeError(w, fmt.Errorf("%w: body _id %q differs from the URL's %q", ErrBadRequest, p.Name, name))
		return
	}
	p.Name = name
	if err := ValidatePreset(&p); err != nil {
		writeJSON(w, httpapi.Status(err), presetErrorBody(err))
		return
	}
	if _, ok := n.applyOK(w, r, Command{Op: OpPutPreset, Preset: &p}); ok {
		writeJSON(w, 200, p)
	}
}

func (n *Node) deletePreset(w http.ResponseWriter, r *http.Request) {
	if _, ok := n.applyOK(w, r, Command{Op: OpDeletePreset, Name: r.PathValue("name")}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (n *Node) listProvisions(w http.ResponseWriter, r *http.Request) {
	ps, err := n.fsm.Provisions()
	if err != nil {
		writeError(w, err)
		return
	}
	if ps == nil {
		ps = []*fleet.Provision{}
	}
	writeJSON(w, 200, ps)
}

func (n *Node) getProvision(w http.ResponseWriter, r *http.Request) {
	p, err := n.fsm.Provision(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, p)
}

// putProvision stores the request body, whatever its content type, as
// the script: GenieACS's PUT /provisions/{name} takes the JavaScript
// source as it is, and so does this route, so one tool serves both.
func (n *Node) putProvision(w http.ResponseWriter, r *http.Request) {
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	p := fleet.Provision{Name: r.PathValue("name"), Script: string(body)}
	if err := ValidateProvision(&p); err != nil {
		writeJSON(w, httpapi.Status(err), provisionErrorBody(err))
		return
	}
	if _, ok := n.applyOK(w, r, Command{Op: OpPutProvision, Provision: &p}); ok {
		writeJSON(w, 200, p)
	}
}

func (n *Node) deleteProvision(w http.ResponseWriter, r *http.Request) {
	if _, ok := n.applyOK(w, r, Command{Op: OpDeleteProvision, Name: r.PathValue("name")}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (n *Node) listFiles(w http.ResponseWriter, r *http.Request) {
	fs, err := n.fsm.Files()
	if err != nil {
		writeError(w, err)
		return
	}
	if fs == nil {
		fs = []*fleet.FileMeta{}
	}
	writeJSON(w, 200, fs)
}

func (n *Node) getFile(w http.ResponseWriter, r *http.Request) {
	if c := r.URL.Query().Get("content"); c == "1" || c == "true" {
		n.getFileContent(w, r)
		return
	}
	m, err := n.fsm.File(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, m)
}

func (n *Node) getFileContent(w http.ResponseWriter, r *http.Request) {
	m, err := n.fsm.File(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	f, err := n.blobs.Open(m.SHA256)
	if err != nil {
		writeError(w, fmt.Errorf("file %s: content is not stored on this node: %w", m.Name, err))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+m.SHA256+`"`)
	http.ServeContent(w, r, m.Name, m.Uploaded, f)
}

// putFile streams the upload into this node's blob store (hashing as it
// goes) and replicates only the metadata, through the leader.
func (n *Node) putFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := checkFileName(name); err != nil {
		writeError(w, err)
		return
	}
	if r.ContentLength > n.cfg.MaxFileBytes {
		writeError(w, fmt.Errorf("%w: file over %d bytes", ErrTooLarge, n.cfg.MaxFileBytes))
		return
	}
	// The GenieACS headers, or query parameters of the same names (which
	// win), as on the edge.
	pick := func(k string) string {
		if v := r.URL.Query().Get(k); v != "" {
			return v
		}
		return r.Header.Get(k)
	}
	fileType := pick("fileType")
	if fileType == "" {
		writeError(w, fmt.Errorf("%w: fileType header or query parameter is required (e.g. \"1 Firmware Upgrade Image\")", ErrBadRequest))
		return
	}
	sum, size, err := n.blobs.Put(r.Body, n.cfg.MaxFileBytes)
	if err != nil {
		writeError(w, err)
		return
	}
	meta := &fleet.FileMeta{Name: name, FileType: fileType, OUI: pick("oui"), ProductClass: pick("productClass"),
		Version: pick("version"), Size: size, SHA256: sum, Uploaded: time.Now().UTC()}
	if err := n.applyAnywhere(r.Context(), Command{Op: OpPutFileMeta, File: meta}); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, meta)
}

// applyAnywhere applies cmd here if this node leads, else asks the leader
// on its peer port (POST /internal/v1/apply), waiting out an election as
// forwarded writes do.
func (n *Node) applyAnywhere(ctx context.Context, cmd Command) error {
	if n.IsLeader() {
		return n.Apply(ctx, cmd).Err
	}
	cmd.V = CommandVersion
	data, err := EncodeCommands([]Command{cmd})
	if err != nil {
		return err
	}
	return n.viaLeader(ctx, func() error { return n.Apply(ctx, cmd).Err }, func(addr raft.ServerAddress, _ raft.ServerID) (bool, error) {
		return n.applyAt(ctx, string(addr), data)
	})
}

// applyAt posts one encoded command to the leader at raftAddr. Like
// proxyToLeader it reports retry when nothing can have been applied.
func (n *Node) applyAt(ctx context.Context, raftAddr string, data []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peerURL(raftAddr, peerPathApply), bytes.NewReader(data))
	if err != nil {
		return false, fmt.Errorf("apply via the leader: %w", err)
	}
	req.Header.Set("Content-Type", "application/cbor")
	req.Header.Set(hdrForwarded, n.cfg.ID)
	tctx, sent := traceSent(req.Context())
	resp, err := n.peerClient.Do(req.WithContext(tctx))
	if err != nil {
		err = forwardError(req.Method, sent.Load(), "the leader at "+raftAddr, err)
		return !sent.Load(), fmt.Errorf("apply via the leader: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return false, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
	return resp.StatusCode == http.StatusServiceUnavailable, errorFor(resp.StatusCode, e.Error)
}

// internalApply lets a follower apply a command it built itself (file
// metadata, the bootstrap admin token). Leader only.
func (n *Node) internalApply(w http.ResponseWriter, r *http.Request) {
	if !n.IsLeader() {
		writeError(w, ErrNotLeader)
		return
	}
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	cmds, err := DecodeCommands(body)
	if err != nil || len(cmds) != 1 {
		writeError(w, fmt.Errorf("%w: want one encoded command", ErrBadRequest))
		return
	}
	// File metadata whose blob stays on the follower, and the bootstrap
	// admin token and default presets a founder that lost the lead still
	// owes the cluster (IfNone, and the seed's own mark: each can only
	// ever be made once).
	ok := cmds[0].Op == OpPutFileMeta || (cmds[0].Op == OpPutToken && cmds[0].IfNone) || cmds[0].Op == OpSeedPresets
	if !ok {
		writeError(w, fmt.Errorf("%w: op %v is not accepted here", ErrBadRequest, cmds[0].Op))
		return
	}
	if _, ok := n.applyOK(w, r, cmds[0]); ok {
		writeJSON(w, 200, map[string]string{"status": "applied"})
	}
}

func (n *Node) deleteFile(w http.ResponseWriter, r *http.Request) {
	if _, ok := n.applyOK(w, r, Command{Op: OpDeleteFileMeta, Name: r.PathValue("name")}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

// edgeOnlineWindow is how recently an edge must have been heard from to be
// listed as online.
const edgeOnlineWindow = 90 * time.Second

// edgeView is one edge in GET /api/v1/edges: the replicated record, plus
// what this node's sync server knows of its link (connected, the health it
// last reported), which only the node holding the link has.
type edgeView struct {
	*Edge
	Status        string            `json:"status"`
	Connected     bool              `json:"connected"`
	Health        *fleet.EdgeHealth `json:"health,omitempty"`
	HealthUpdated time.Time         `json:"healthUpdated,omitzero"`
}

func (n *Node) edgeView(e *Edge) edgeView {
	v := edgeView{Edge: e, Status: "offline"}
	if time.Since(e.LastSeen) < edgeOnlineWindow {
		v.Status = "online"
	}
	if l, ok := n.edgeHealth(e.ID); ok {
		h := l.health
		v.Connected, v.Health, v.HealthUpdated = l.connected, &h, l.at
		if l.connected {
			v.Status = "online"
		}
	}
	if !e.Revoked.IsZero() {
		v.Status = "revoked"
	}
	return v
}

func (n *Node) listEdges(w http.ResponseWriter, r *http.Request) {
	es, err := n.fsm.Edges()
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]edgeView, 0, len(es))
	known := make(map[string]bool, len(es))
	for _, e := range es {
		known[e.ID] = true
		out = append(out, n.edgeView(e))
	}
	// An edge connected here that has not written anything yet has no
	// record in the FSM; list it anyway.
	live := n.liveEdges()
	slices.Sort(live)
	for _, id := range live {
		if !known[id] {
			out = append(out, n.edgeView(&Edge{ID: id}))
		}
	}
	writeJSON(w, 200, out)
}

// revokeEdge answers POST /api/v1/edges/{id}/revoke with the edge's record.
func (n *Node) revokeEdge(w http.ResponseWriter, r *http.Request) {
	e, err := n.Revoke(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, n.edgeView(e))
}

// listTokens answers GET /api/v1/tokens: names, scopes, creation and
// expiry; never a hash or a secret.
func (n *Node) listTokens(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.Tokens())
}

// createToken answers POST /api/v1/tokens with 201 and the new secret,
// the only time anything shows it. It runs on the leader (write), so the
// secret is made there and only its hash enters the log.
func (n *Node) createToken(w http.ResponseWriter, r *http.Request) {
	body, err := httpapi.ReadBody(w, r, fleet.MaxTokenRequest)
	if err != nil {
		writeError(w, fmt.Errorf("token request: %w", err))
		return
	}
	name, scope, expires, err := fleet.ParseTokenRequest(body, time.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	secret, tok, err := n.CreateToken(r.Context(), name, scope, expires)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, fleet.TokenCreated{Name: tok.Name, Scope: tok.Scope, Token: secret, Expires: tok.Expires})
}

// revokeToken answers DELETE /api/v1/tokens/{name}: 204, or 404.
func (n *Node) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := n.RevokeToken(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) clusterStatus(w http.ResponseWriter, r *http.Request) {
	st, err := n.ProbeStatus(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, st)
}

func (n *Node) clusterJoin(w http.ResponseWriter, r *http.Request) {
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req JoinRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := n.Join(r.Context(), req); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"status": "joined", "id": req.ID})
}

func (n *Node) clusterRemove(w http.ResponseWriter, r *http.Request) {
	body, err := n.readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		ID string `json:"id"`
	}
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ID == "" {
		writeError(w, fmt.Errorf("%w: id is required", ErrBadRequest))
		return
	}
	if err := n.Remove(r.Context(), req.ID); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"status": "removed", "id": req.ID})
}

// checkTaskFile refuses a download naming a file the fleet does not have:
// queued anyway, it would only fault at the edge (file_not_found) after a
// wake-up and a session, far from the operator who mistyped the name.
func (n *Node) checkTaskFile(t *fleet.Task) error {
	if t.Name != fleet.TaskDownload || t.FileName == "" || t.URL != "" {
		return nil
	}
	if _, err := n.fsm.File(t.FileName); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: download: file %q is not in the file store (upload it first: edgeacs files upload)", ErrBadRequest, t.FileName)
		}
		return fmt.Errorf("download: look up file %q: %w", t.FileName, err)
	}
	return nil
}

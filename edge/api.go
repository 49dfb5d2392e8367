package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/fleet"
)

// ConnectionRequester asks a device to open a session now (HTTP or UDP
// connection request). The network side's Reacher implements it.
type ConnectionRequester interface {
	ConnectionRequest(ctx context.Context, deviceID string) error
}

// APIConfig configures the local JSON API.
type APIConfig struct {
	Cache *Cache
	Files *FileStore
	// CR sends connection requests for ?connection_request; nil = none.
	CR ConnectionRequester
	// Metrics is served at /metrics (the Prometheus handler); nil = 404.
	Metrics http.Handler
	// Ready backs /readyz; nil means always ready. /healthz is always 200.
	Ready func() error
	// Health, when set, adds the edge's health (sessions/s, outbox
	// backlog and its age, devices) to /healthz.
	Health func() fleet.EdgeHealth
	// Sync, when set and not nil-valued, adds the link to the core to
	// /healthz under "sync".
	Sync   func() any
	Logger *slog.Logger
	// CRTimeout bounds one connection request; zero means 10s.
	CRTimeout time.Duration
	// UploadIdle is how long a file upload may go without sending a byte
	// before it is cut off (its connection's read deadline moves forward
	// as bytes arrive, past the server's ReadTimeout); zero means 30 s.
	UploadIdle time.Duration
	// LocalTokens lets the API create and revoke API tokens: a standalone
	// edge's own. Otherwise (an edge synced to a core) the tokens come
	// from the core, and writes are refused with 409.
	LocalTokens bool
	// MetricsAuth makes /metrics need a read token like the API; by
	// default it is public, as /healthz and /readyz are.
	MetricsAuth bool
}

// API limits.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// maxWait bounds ?wait and ?timeout so a client cannot pin a request forever.
	maxWait = 10 * time.Minute
	// genieWait is how long the GenieACS alias waits after a connection
	// request when the client gave no timeout, as GenieACS's NBI does.
	genieWait = 30 * time.Second
)

// errBadRequest marks client mistakes in query strings (API → 400).
var errBadRequest = errors.New("bad request")

// errUploadTooSlow ends a file upload whose average rate fell below
// minUploadRate once its grace period was over (API → 400).
var errUploadTooSlow = errors.New("upload too slow")

// File uploads through the API: the connection's read deadline follows
// progress instead of the server's ReadTimeout (a firmware image can take
// longer than any fixed bound), but a client must keep sending: at most
// UploadIdle without a byte, and after minUploadGrace at least
// minUploadRate on average, so trickling a byte at a time cannot hold a
// connection for hours.
const (
	defaultUploadIdle = 30 * time.Second
	minUploadGrace    = 30 * time.Second
	minUploadRate     = 16 << 10 // bytes per second
)

// progressReader reads an upload, pushing the connection's read deadline
// forward before each read and failing once the average rate is too low.
type progressReader struct {
	r     io.Reader
	rc    *http.ResponseController
	idle  time.Duration
	start time.Time
	n     int64
}

func newProgressReader(r io.Reader, rc *http.ResponseController, idle time.Duration, start time.Time) *progressReader {
	return &progressReader{r: r, rc: rc, idle: idle, start: start}
}

func (p *progressReader) Read(b []byte) (int, error) {
	now := time.Now()
	if el := now.Sub(p.start); el > minUploadGrace && float64(p.n) < minUploadRate*el.Seconds() {
		return 0, fmt.Errorf("%w: %d bytes in %s, below %d bytes/s: %w", errUploadTooSlow, p.n, el.Round(time.Second), minUploadRate, errBadRequest)
	}
	// An error means a connection that cannot take deadlines (HTTP/2 or
	// a test recorder); the server's own timeouts then apply.
	_ = p.rc.SetReadDeadline(now.Add(p.idle))
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

type api struct {
	cfg APIConfig
	log *slog.Logger
}

// NewAPI returns the local API handler. Routes (JSON; errors are
// {"error": "..."}):
//
//	GET    /api/v1/devices               ?id=<prefix>&lastInformAfter=&lastInformBefore=<RFC3339>&param=<path>=<value>&limit=&cursor=|offset=
//	GET    /api/v1/devices/{id}          {"device": {...}, "parameters": {"<path>": {"value","type","writable","object","timestamp",...}}}
//	DELETE /api/v1/devices/{id}
//	POST   /api/v1/devices/{id}/tasks    ?connection_request&wait=30s|timeout=<ms>
//	GET    /api/v1/devices/{id}/tasks
//	GET    /api/v1/devices/{id}/faults
//	DELETE /api/v1/faults/{id}           a preset channel's fault, "<device>:<channel>": its presets run again
//	PUT    /api/v1/devices/{id}/credentials  {"username": "...", "password": "..."}: the CPE's own ACS credentials
//	DELETE /api/v1/devices/{id}/credentials  back to the shared credentials
//	GET    /api/v1/tasks                 ?limit=&cursor=
//	GET    /api/v1/tasks/{id}
//	DELETE /api/v1/tasks/{id}
//	PUT    /api/v1/files/{name}          body = content; fileType, oui, productClass, version as headers or query
//	GET    /api/v1/files, /api/v1/files/{name}; DELETE /api/v1/files/{name}
//	GET    /api/v1/tokens                [{"name","scope","created","expires"}]: never a hash or a secret
//	POST   /api/v1/tokens                {"name","scope","expires"} → 201 {"name","scope","token","expires"} (LocalTokens only)
//	DELETE /api/v1/tokens/{name}         (LocalTokens only)
//	GET    /healthz, /readyz, /metrics
//
// GenieACS NBI aliases: GET /devices, POST /devices/{id}/tasks, GET /tasks,
// PUT /files/{name}, DELETE /tasks/{id}.
//
// Every route but /healthz, /readyz and (unless MetricsAuth) /metrics needs
// a bearer token from the cache's token store (package apiauth): read for
// GET, write for changes, admin for tokens.
func NewAPI(cfg APIConfig) http.Handler {
	_, h := newAPI(cfg)
	return h
}

// newAPI returns the API's routes (for tests that walk them) and its
// authenticated handler.
func newAPI(cfg APIConfig) (*apiauth.Mux, http.Handler) {
	a := &api{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.cfg.CRTimeout <= 0 {
		a.cfg.CRTimeout = 10 * time.Second
	}
	if a.cfg.UploadIdle <= 0 {
		a.cfg.UploadIdle = defaultUploadIdle
	}
	mux := apiauth.NewMux()
	route := func(path string, handlers map[string]http.HandlerFunc) {
		allow := make([]string, 0, len(handlers))
		for m, h := range handlers {
			mux.HandleFunc(m+" "+path, h)
			allow = append(allow, m)
		}
		// Same path, any other method: JSON 405 instead of the mux's text.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
		})
	}
	route("/api/v1/devices", map[string]http.HandlerFunc{"GET": a.listDevices})
	route("/api/v1/devices/{id}", map[string]http.HandlerFunc{"GET": a.getDevice, "DELETE": a.deleteDevice})
	route("/api/v1/devices/{id}/tasks", map[string]http.HandlerFunc{"GET": a.deviceTasks, "POST": a.postTask(0)})
	route("/api/v1/devices/{id}/faults", map[string]http.HandlerFunc{"GET": a.deviceFaults})
	route("/api/v1/faults/{id}", map[string]http.HandlerFunc{"DELETE": a.deleteFault})
	route("/api/v1/devices/{id}/credentials", map[string]http.HandlerFunc{"PUT": a.putCredentials, "DELETE": a.deleteCredentials})
	route("/api/v1/tasks", map[string]http.HandlerFunc{"GET": a.listTasks})
	route("/api/v1/tasks/{id}", map[string]http.HandlerFunc{"GET": a.getTask, "DELETE": a.deleteTask})
	route("/api/v1/files", map[string]http.HandlerFunc{"GET": a.listFiles})
	route("/api/v1/files/{name}", map[string]http.HandlerFunc{"GET": a.getFile, "PUT": a.putFile, "DELETE": a.deleteFile})
	route("/api/v1/tokens", map[string]http.HandlerFunc{"GET": a.listTokens, "POST": a.createToken})
	route("/api/v1/tokens/{name}", map[string]http.HandlerFunc{"DELETE": a.revokeToken})
	route("/devices", map[string]http.HandlerFunc{"GET": a.genieDevices})
	route("/devices/{id}/tasks", map[string]http.HandlerFunc{"POST": a.postTask(genieWait)})
	route("/tasks", map[string]http.HandlerFunc{"GET": a.listTasks})
	route("/tasks/{id}", map[string]http.HandlerFunc{"DELETE": a.deleteTask})
	route("/files/{name}", map[string]http.HandlerFunc{"PUT": a.putFile, "DELETE": a.deleteFile})
	route("/healthz", map[string]http.HandlerFunc{"GET": a.healthz})
	route("/readyz", map[string]http.HandlerFunc{"GET": a.ready})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route for "+r.URL.Path)
	})
	var store apiauth.Store = noTokens{}
	if cfg.Cache != nil {
		store = cfg.Cache
	}
	auth := apiauth.New(apiauth.Config{Store: store, Policy: apiauth.DefaultPolicy(!cfg.MetricsAuth), Logger: a.log})
	return mux, auth.Wrap(mux)
}

// noTokens is the store of an API without a cache: no token is valid.
type noTokens struct{}

func (noTokens) TokenByHash(string) (fleet.Token, bool) { return fleet.Token{}, false }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail maps an error to its status in one place.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, fleet.ErrBadTask), errors.Is(err, errBadRequest), errors.Is(err, ErrBadFileName),
		errors.Is(err, fleet.ErrDuplicateKey), errors.Is(err, ErrBadCredentials), errors.Is(err, fleet.ErrBadToken):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrTaskRunning), errors.Is(err, ErrTaskExists), errors.Is(err, ErrUsernameTaken),
		errors.Is(err, ErrTokenExists), errors.Is(err, ErrTokensAtCore):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrFileTooLarge), errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.As(err, &ne) && ne.Timeout():
		// A client that stopped sending its body (see progressReader).
		writeError(w, http.StatusRequestTimeout, "request body timed out")
	default:
		a.log.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// healthz is always 200 while the process serves; its body says how far
// behind the core the edge is, for an operator during a backhaul outage.
func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	if a.cfg.Health == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	h := a.cfg.Health()
	var link any
	if a.cfg.Sync != nil {
		link = a.cfg.Sync()
	}
	writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		fleet.EdgeHealth
		OldestUnsentSeconds float64 `json:"oldestUnsentSeconds"`
		Sync                any     `json:"sync,omitempty"`
	}{"ok", h, h.OldestUnsent.Seconds(), link})
}

func (a *api) ready(w http.ResponseWriter, _ *http.Request) {
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func parseLimit(s string) (int, error) {
	if s == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, badRequest("limit must be a positive integer, got %q", s)
	}
	return min(n, maxPageSize), nil
}

// listDevices pages through devices in ID order. The body is a JSON array;
// X-Next-Cursor carries the cursor of the next page (absent on the last);
// X-Total-Count is the device count when no filter is given.
func (a *api) listDevices(w http.ResponseWriter, r *http.Request) {
	q, err := deviceQuery(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeDevices(w, r, q)
}

func deviceQuery(r *http.Request) (DeviceQuery, error) {
	var q DeviceQuery
	v := r.URL.Query()
	for k := range v {
		switch k {
		case "id", "lastInformAfter", "lastInformBefore", "param", "limit", "cursor", "offset":
		default:
			return q, badRequest("unknown query parameter %q", k)
		}
	}
	q.IDPrefix = v.Get("id")
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"lastInformAfter", &q.LastInformAfter}, {"lastInformBefore", &q.LastInformBefore}} {
		if s := v.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return q, badRequest("%s must be RFC 3339, got %q", f.name, s)
			}
			*f.dst = t
		}
	}
	if p := v.Get("param"); p != "" {
		path, val, ok := strings.Cut(p, "=")
		if !ok || path == "" {
			return q, badRequest("param must be <path>=<value>, got %q", p)
		}
		q.Param, q.Value = path, val
	}
	var err error
	if q.Limit, err = parseLimit(v.Get("limit")); err != nil {
		return q, err
	}
	q.Cursor = v.Get("cursor")
	if s := v.Get("offset"); s != "" {
		if q.Offset, err = strconv.Atoi(s); err != nil || q.Offset < 0 {
			return q, badRequest("offset must be a non-negative integer, got %q", s)
		}
	}
	return q, nil
}

func (a *api) writeDevices(w http.ResponseWriter, r *http.Request, q DeviceQuery) {
	if q.Param != "" && IsSecretParameter(q.Param) {
		// Matching on a secret would let a client guess it one value at a time.
		a.fail(w, r, badRequest("cannot filter on the secret parameter %s", q.Param))
		return
	}
	devs, next, err := a.cfg.Cache.ListDevices(q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if devs == nil {
		devs = []*Device{}
	}
	if next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	if q.IDPrefix == "" && q.Param == "" && q.LastInformAfter.IsZero() && q.LastInformBefore.IsZero() {
		w.Header().Set("X-Total-Count", strconv.Itoa(a.cfg.Cache.DeviceCount()))
	}
	writeJSON(w, http.StatusOK, devs)
}

// genieDevices serves GenieACS's GET /devices?query=<json>&skip=&limit=
// for the query shapes scripts use most: {"_id": "<id>"} and
// {"<path>._value": "<value>"} (one parameter).
func (a *api) genieDevices(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	var q DeviceQuery
	var err error
	if q.Limit, err = parseLimit(v.Get("limit")); err != nil {
		a.fail(w, r, err)
		return
	}
	if s := v.Get("skip"); s != "" {
		if q.Offset, err = strconv.Atoi(s); err != nil || q.Offset < 0 {
			a.fail(w, r, badRequest("skip must be a non-negative integer, got %q", s))
			return
		}
	}
	exactID := ""
	if s := v.Get("query"); s != "" {
		// {"_id": "a", "_id": "b"} must not silently mean "b".
		if err := fleet.RejectDuplicateKeys([]byte(s)); err != nil {
			a.fail(w, r, fmt.Errorf("query: %w", err))
			return
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			a.fail(w, r, badRequest("query must be a JSON object: %v", err))
			return
		}
		for k, val := range m {
			str, ok := val.(string)
			switch {
			case !ok:
				a.fail(w, r, badRequest("query %q: only string equality is supported", k))
				return
			case k == "_id":
				exactID, q.IDPrefix = str, str
			case strings.HasSuffix(k, "._value") && q.Param == "":
				q.Param, q.Value = strings.TrimSuffix(k, "._value"), str
			default:
				a.fail(w, r, badRequest("query key %q is not supported", k))
				return
			}
		}
	}
	if exactID != "" {
		d, err := a.cfg.Cache.Device(exactID)
		if errors.Is(err, ErrNotFound) {
			writeJSON(w, http.StatusOK, []*Device{})
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, []*Device{d})
		return
	}
	a.writeDevices(w, r, q)
}

type deviceView struct {
	Device     *Device              `json:"device"`
	Parameters map[string]Parameter `json:"parameters"`
}

func (a *api) getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := a.cfg.Cache.Device(id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	params, err := a.cfg.Cache.Parameters(id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceView{Device: d, Parameters: publicParameters(params)})
}

func (a *api) deleteDevice(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Cache.DeleteDevice(r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// maxCredentialsBody bounds a credentials request.
const maxCredentialsBody = 4 << 10

// putCredentials sets the per-device credentials a CPE must present to the
// edge (ManagementServer.Username/Password), before or after its first
// Inform. The password is never returned by the API.
func (a *api) putCredentials(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCredentialsBody))
	if err != nil {
		a.fail(w, r, fmt.Errorf("read credentials: %w", err))
		return
	}
	// {"password": "a", "password": "b"} must not silently store "b".
	if err := fleet.RejectDuplicateKeys(body); err != nil {
		a.fail(w, r, fmt.Errorf("credentials: %w", err))
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.fail(w, r, fmt.Errorf("%w: credentials: %v", errBadRequest, err))
		return
	}
	if req.Username == "" || req.Password == "" {
		a.fail(w, r, fmt.Errorf("%w: credentials need a username and a password", errBadRequest))
		return
	}
	id := r.PathValue("id")
	if !validID(id) {
		a.fail(w, r, fmt.Errorf("%w: bad device id %q", errBadRequest, id))
		return
	}
	if err := a.cfg.Cache.SetDeviceCredentials(id, req.Username, req.Password); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) deleteCredentials(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		a.fail(w, r, fmt.Errorf("%w: bad device id %q", errBadRequest, id))
		return
	}
	if err := a.cfg.Cache.SetDeviceCredentials(id, "", ""); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) deviceTasks(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := a.cfg.Cache.Device(id); err != nil {
		a.fail(w, r, err)
		return
	}
	ts, err := a.cfg.Cache.DeviceTasks(id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, publicTasks(ts))
}

func (a *api) deviceFaults(w http.ResponseWriter, r *http.Request) {
	fs, err := a.cfg.Cache.Faults(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if fs == nil {
		fs = []DeviceFault{}
	}
	writeJSON(w, http.StatusOK, fs)
}

// parseWait reads ?wait=<duration> or GenieACS's ?timeout=<ms>.
func parseWait(r *http.Request) (time.Duration, bool, error) {
	v := r.URL.Query()
	if s := v.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, false, badRequest("wait must be a duration such as 30s, got %q", s)
		}
		return min(d, maxWait), true, nil
	}
	if s := v.Get("timeout"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			return 0, false, badRequest("timeout must be milliseconds, got %q", s)
		}
		// Compare before converting: ms×1e6 overflows int64 for huge
		// values, and a negative product would read as "no wait".
		if ms > maxWait.Milliseconds() {
			return maxWait, true, nil
		}
		return time.Duration(ms) * time.Millisecond, true, nil
	}
	return 0, false, nil
}

// postTask queues a task. Answers: 200 with the final task when it
// finished within the wait; 202 with the task when it is still queued
// (no wait, the wait ran out, or the connection request failed: then
// "warning" says why). defaultCRWait applies when the client asked for a
// connection request without a wait (the GenieACS alias).
func (a *api) postTask(defaultCRWait time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		wait, waitGiven, err := parseWait(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if _, err := a.cfg.Cache.Device(id); err != nil {
			a.fail(w, r, err)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fleet.MaxTaskBody))
		if err != nil {
			a.fail(w, r, fmt.Errorf("read task: %w", err))
			return
		}
		if wait > 0 {
			// The body is in: the server's read deadline has done its job,
			// and past it the server would stop noticing a client that
			// hangs up during the wait.
			_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		}
		wantCR := r.URL.Query().Has("connection_request")
		if wantCR && !waitGiven {
			wait = defaultCRWait
		}
		if len(strings.TrimSpace(string(body))) == 0 && wantCR {
			// GenieACS: a bodiless POST with connection_request only pokes the device.
			if err := a.connectionRequest(r.Context(), id); err != nil {
				writeError(w, http.StatusGatewayTimeout, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"status": "connection request sent"})
			return
		}
		t, err := fleet.ParseTask(body, id, time.Now().UTC())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if err := a.cfg.Cache.AddTask(t); err != nil {
			a.fail(w, r, err)
			return
		}
		reply := newPublicTask(t)
		if wait <= 0 {
			if wantCR {
				if err := a.connectionRequest(r.Context(), id); err != nil {
					reply.Warning = "task queued; connection request failed: " + err.Error()
				}
			}
			writeJSON(w, http.StatusAccepted, reply)
			return
		}
		final, werr, crErr := a.waitWithCR(r.Context(), id, t.ID, wait, wantCR)
		switch {
		case werr == nil:
			// Finished: whatever became of the connection request (the
			// task may have run in a session that was already open) is moot.
			writeJSON(w, http.StatusOK, newPublicTask(final))
			return
		case errors.Is(werr, ErrNotFound):
			a.fail(w, r, fmt.Errorf("task %s was deleted while waiting: %w", t.ID, werr))
			return
		case final != nil:
			reply = newPublicTask(final)
		}
		if crErr != nil {
			reply.Warning = "task queued; connection request failed: " + crErr.Error()
		}
		writeJSON(w, http.StatusAccepted, reply)
	}
}

// waitWithCR waits up to wait for task tid to finish while, when wantCR,
// a connection request to the device runs alongside. The two race on
// purpose: a device already in a session (or whose session starts on its
// own) runs the task without the request, and the Reacher may be holding
// the request back for its per-device interval; once the task is final, a
// request still waiting is cancelled rather than sent to a device that
// may have rebooted, reset its credentials or gone away because of the
// task itself. A failed request ends the wait early (the caller reports
// it); a finished wait does not cancel a request already under way.
func (a *api) waitWithCR(ctx context.Context, deviceID, tid string, wait time.Duration, wantCR bool) (final *fleet.Task, werr, crErr error) {
	wctx, cancelWait := context.WithTimeout(ctx, wait)
	defer cancelWait()
	if !wantCR {
		final, werr = a.cfg.Cache.WaitTask(wctx, tid)
		return final, werr, nil
	}
	crCtx, cancelCR := context.WithCancel(ctx)
	defer cancelCR()
	crDone := make(chan error, 1)
	go func() {
		err := a.connectionRequest(crCtx, deviceID)
		if err != nil {
			cancelWait()
		}
		crDone <- err
	}()
	final, werr = a.cfg.Cache.WaitTask(wctx, tid)
	if werr == nil {
		cancelCR()
	}
	crErr = <-crDone
	if werr == nil {
		crErr = nil
	}
	return final, werr, crErr
}

func (a *api) connectionRequest(ctx context.Context, id string) error {
	if a.cfg.CR == nil {
		return errors.New("no connection requester configured")
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CRTimeout)
	defer cancel()
	return a.cfg.CR.ConnectionRequest(ctx, id)
}

func (a *api) listTasks(w http.ResponseWriter, r *http.Request) {
	limit, err := parseLimit(r.URL.Query().Get("limit"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ts, next, err := a.cfg.Cache.ListTasks(r.URL.Query().Get("cursor"), limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	writeJSON(w, http.StatusOK, publicTasks(ts))
}

func (a *api) getTask(w http.ResponseWriter, r *http.Request) {
	t, err := a.cfg.Cache.Task(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newPublicTask(t))
}

func (a *api) deleteTask(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Cache.DeleteTask(r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) files() (*FileStore, error) {
	if a.cfg.Files == nil {
		return nil, fmt.Errorf("no file store configured: %w", ErrNotFound)
	}
	return a.cfg.Files, nil
}

// putFile streams the body into the file store; metadata comes from the
// GenieACS headers fileType, oui, productClass, version, or query
// parameters of the same names (which win).
func (a *api) putFile(w http.ResponseWriter, r *http.Request) {
	fs, err := a.files()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	name := r.PathValue("name")
	if !fleet.ValidFileName(name) {
		a.fail(w, r, fmt.Errorf("file name %q: %w", name, ErrBadFileName))
		return
	}
	max := fs.MaxSize
	if max <= 0 {
		max = DefaultMaxFileSize
	}
	if r.ContentLength > max {
		a.fail(w, r, fmt.Errorf("file %s: %d bytes: %w (limit %d)", name, r.ContentLength, ErrFileTooLarge, max))
		return
	}
	pick := func(k string) string {
		if v := r.URL.Query().Get(k); v != "" {
			return v
		}
		return r.Header.Get(k)
	}
	meta := fleet.FileMeta{FileType: pick("fileType"), OUI: pick("oui"), ProductClass: pick("productClass"), Version: pick("version")}
	body := newProgressReader(http.MaxBytesReader(w, r.Body, max), http.NewResponseController(w), a.cfg.UploadIdle, time.Now())
	stored, err := fs.Put(name, meta, body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, stored)
}

func (a *api) listFiles(w http.ResponseWriter, r *http.Request) {
	fs, err := a.files()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	list, err := fs.List()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if list == nil {
		list = []fleet.FileMeta{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *api) getFile(w http.ResponseWriter, r *http.Request) {
	fs, err := a.files()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	m, err := fs.Stat(r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *api) deleteFile(w http.ResponseWriter, r *http.Request) {
	fs, err := a.files()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := fs.Delete(r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listTokens answers GET /api/v1/tokens: names, scopes, creation and
// expiry, never a hash (fleet.Token hides it) or a secret.
func (a *api) listTokens(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.cfg.Cache.Tokens())
}

// createToken answers POST /api/v1/tokens with 201 and the new secret, the
// only time anything shows it; the edge keeps only its hash.
func (a *api) createToken(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.LocalTokens {
		a.fail(w, r, fmt.Errorf("%w: create the token there (POST /api/v1/tokens on a core node); it reaches this edge over the sync link", ErrTokensAtCore))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fleet.MaxTokenRequest))
	if err != nil {
		a.fail(w, r, fmt.Errorf("read token request: %w", err))
		return
	}
	now := time.Now()
	name, scope, expires, err := fleet.ParseTokenRequest(body, now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	secret, tok, err := fleet.NewToken(name, scope, expires, now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.cfg.Cache.PutToken(tok, false); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, fleet.TokenCreated{Name: tok.Name, Scope: tok.Scope, Token: secret, Expires: tok.Expires})
}

// revokeToken answers DELETE /api/v1/tokens/{name}: 204, or 404.
func (a *api) revokeToken(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.LocalTokens {
		a.fail(w, r, fmt.Errorf("%w: revoke the token there (DELETE /api/v1/tokens/{name} on a core node)", ErrTokensAtCore))
		return
	}
	if err := a.cfg.Cache.RevokeToken(r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

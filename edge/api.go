package edge

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/httpapi"
)

// ConnectionRequester asks a device to open a session now (HTTP or UDP
// connection request). The network side's Reacher implements it.
type ConnectionRequester interface {
	ConnectionRequest(ctx context.Context, deviceID string) error
}

// APIConfig configures the local JSON API.
type APIConfig struct {
	// EdgeID is this edge's ID: the home edge its devices show.
	EdgeID string
	Cache  *Cache
	Files  *FileStore
	// CR sends connection requests for ?connection_request; nil = none.
	CR ConnectionRequester
	// Metrics is served at /metrics (the Prometheus handler); nil = 404.
	Metrics http.Handler
	// Ready backs /readyz; nil means always ready. /healthz is always 200.
	Ready func() error
	// Health, when set, adds the edge's health (sessions/s, outbox
	// backlog and its age, devices) to /healthz.
	Health func() fleet.EdgeHealth
	// Store, when set, reports the cache's write health (nil: healthy);
	// a failing store turns /healthz into 503 "unhealthy".
	Store func() error
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
	// LocalProvisioning lets the API store and delete presets and
	// provision scripts: a standalone edge's own. Otherwise they come
	// from the core, and writes are refused with 409.
	LocalProvisioning bool
	// MetricsAuth makes /metrics need a read token like the API; by
	// default it is public, as /healthz and /readyz are.
	MetricsAuth bool
	// BadMessages returns a device's last message the CWMP server could
	// not fully read (Server.LastBadMessage); nil answers 404.
	BadMessages func(deviceID string) (BadMessage, bool)
}

// genieWait is how long the GenieACS alias waits after a connection
// request when the client gave no timeout, as GenieACS's NBI does. (Page
// sizes and ?wait are bounded by httpapi, as on the core.)
const genieWait = 30 * time.Second

// errBadRequest marks client mistakes (API → 400).
var errBadRequest = httpapi.ErrBadRequest

// openAPIDoc describes the /api/v1 routes (served at
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

// NewAPI returns the local API handler. Routes (JSON in the shapes of
// package fleet's views, as the core's API answers; errors are
// {"error": "..."}; openapi.json describes them all):
//
//	GET    /api/v1/devices               ?id=<prefix>&lastInformAfter=&lastInformBefore=<RFC3339>&param=<path>=<value>&limit=&cursor=|offset=
//	GET    /api/v1/devices/{id}          {"_id", ..., "parameters": {"<path>": {"value","type","timestamp","object","writable",...}}}
//	DELETE /api/v1/devices/{id}
//	POST   /api/v1/devices/{id}/tasks    ?connection_request&wait=30s|timeout=<ms>
//	GET    /api/v1/devices/{id}/tasks
//	GET    /api/v1/devices/{id}/faults
//	GET    /api/v1/devices/{id}/params   the parameters GET /api/v1/devices/{id} carries, alone (as the core's)
//	GET    /api/v1/faults                ?device=: every device's faults, or one's (as the core's)
//	GET    /api/v1/devices/{id}/last-bad-message  the last CWMP message of the device the edge could not fully read (BadMessage)
//	DELETE /api/v1/faults/{id}           a preset channel's fault, "<device>:<channel>": its presets run again
//	PUT    /api/v1/devices/{id}/credentials  {"username": "...", "password": "..."}: the CPE's own ACS credentials
//	DELETE /api/v1/devices/{id}/credentials  back to the shared credentials
//	GET    /api/v1/tasks                 ?limit=&cursor=
//	GET    /api/v1/tasks/{id}            ?wait=30s|timeout=<ms>: 200 once final, 202 if still not
//	DELETE /api/v1/tasks/{id}
//	PUT    /api/v1/files/{name}          body = content; fileType, oui, productClass, version as headers or query
//	GET    /api/v1/files, /api/v1/files/{name}; DELETE /api/v1/files/{name}
//	GET    /api/v1/presets, /api/v1/presets/{name}        the presets sessions run (GenieACS's shape)
//	PUT    /api/v1/presets/{name}; DELETE                 (LocalProvisioning only) validated as the core does: 400 with field, line, column
//	GET    /api/v1/provisions, /api/v1/provisions/{name}  the provision scripts presets name: [{"_id", "script"}]
//	PUT    /api/v1/provisions/{name}; DELETE              (LocalProvisioning only) the body is the script; it must compile and not take a built-in's name
//	GET    /api/v1/virtual-parameters, .../{name}         the virtual parameter scripts (VirtualParameters.<name>): [{"_id", "script"}]
//	PUT    /api/v1/virtual-parameters/{name}; DELETE      (LocalProvisioning only) the body is the script; it must compile
//	GET    /api/v1/tokens                [{"name","scope","created","expires"}]: never a hash or a secret
//	POST   /api/v1/tokens                {"name","scope","expires"} → 201 {"name","scope","token","expires"} (LocalTokens only)
//	DELETE /api/v1/tokens/{name}         (LocalTokens only)
//	GET    /api/v1/openapi.json
//	GET    /healthz, /readyz, /metrics
//
// GenieACS NBI (nbi.go): GET/HEAD /devices/, /tasks/, /faults/ with
// query=, projection=, skip=, limit=; POST /devices/{id}/tasks; DELETE
// /devices/{id}, /tasks/{id}, /faults/{id}; PUT/DELETE /files/{name};
// /presets/{name}, /provisions/{name} and /devices/{id}/tags/{tag} (405).
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
		for m, h := range handlers {
			pattern := m + " " + path
			mux.HandleFunc(pattern, openAPI.Strict(pattern, h))
		}
	}
	route("/api/v1/devices", map[string]http.HandlerFunc{"GET": a.listDevices})
	route("/api/v1/devices/{id}", map[string]http.HandlerFunc{"GET": a.getDevice, "DELETE": a.deleteDevice})
	route("/api/v1/devices/{id}/tasks", map[string]http.HandlerFunc{"GET": a.deviceTasks, "POST": a.postTask(0)})
	route("/api/v1/devices/{id}/faults", map[string]http.HandlerFunc{"GET": a.deviceFaults})
	route("/api/v1/devices/{id}/params", map[string]http.HandlerFunc{"GET": a.deviceParams})
	route("/api/v1/faults", map[string]http.HandlerFunc{"GET": a.listFaults})
	route("/api/v1/devices/{id}/last-bad-message", map[string]http.HandlerFunc{"GET": a.lastBadMessage})
	route("/api/v1/devices/{id}/history", map[string]http.HandlerFunc{"GET": a.deviceHistory})
	route("/api/v1/faults/{id}", map[string]http.HandlerFunc{"DELETE": a.deleteFault})
	route("/api/v1/devices/{id}/credentials", map[string]http.HandlerFunc{"PUT": a.putCredentials, "DELETE": a.deleteCredentials})
	route("/api/v1/tasks", map[string]http.HandlerFunc{"GET": a.listTasks})
	route("/api/v1/tasks/{id}", map[string]http.HandlerFunc{"GET": a.getTask, "DELETE": a.deleteTask})
	route("/api/v1/files", map[string]http.HandlerFunc{"GET": a.listFiles})
	route("/api/v1/files/{name}", map[string]http.HandlerFunc{"GET": a.getFile, "PUT": a.putFile, "DELETE": a.deleteFile})
	route("/api/v1/presets", map[string]http.HandlerFunc{"GET": a.listPresets})
	route("/api/v1/presets/{name}", map[string]http.HandlerFunc{"GET": a.getPreset, "PUT": a.putPreset, "DELETE": a.deletePreset})
	route("/api/v1/provisions", map[string]http.HandlerFunc{"GET": a.listProvisions})
	route("/api/v1/provisions/{name}", map[string]http.HandlerFunc{"GET": a.getProvision, "PUT": a.putProvision, "DELETE": a.deleteProvision})
	route("/api/v1/virtual-parameters", map[string]http.HandlerFunc{"GET": a.listVirtualParameters})
	route("/api/v1/virtual-parameters/{name}", map[string]http.HandlerFunc{"GET": a.getVirtualParameter, "PUT": a.putVirtualParameter, "DELETE": a.deleteVirtualParameter})
	route("/api/v1/tokens", map[string]http.HandlerFunc{"GET": a.listTokens, "POST": a.createToken})
	route("/api/v1/tokens/{name}", map[string]http.HandlerFunc{"DELETE": a.revokeToken})
	route("/api/v1/openapi.json", map[string]http.HandlerFunc{"GET": openAPI.ServeHTTP})

	// ---- GenieACS NBI: its paths and shapes, registered in nbi.go ----
	a.nbiRoutes(mux, route)
	// ---- end GenieACS NBI ----

	route("/healthz", map[string]http.HandlerFunc{"GET": a.healthz})
	route("/readyz", map[string]http.HandlerFunc{"GET": a.ready})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	// A path served with other methods is 405 with Allow; any other 404.
	mux.HandleFunc("/", httpapi.Fallback(mux))
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

// writeJSON answers status with v.
func writeJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }

// fail answers err with the status httpapi's table gives it; an error the
// table does not know (a 500) is logged too.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	if httpapi.Status(err) == http.StatusInternalServerError {
		a.log.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	httpapi.WriteError(w, err)
}

// healthz is 200 while the process serves and its store takes writes,
// 503 "unhealthy" with the store's error while cache writes fail; its
// body says how far behind the core the edge is, for an operator during a
// backhaul outage.
func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	status, code, storeErr := "ok", http.StatusOK, ""
	if a.cfg.Store != nil {
		if err := a.cfg.Store(); err != nil {
			status, code, storeErr = "unhealthy", http.StatusServiceUnavailable, err.Error()
		}
	}
	if a.cfg.Health == nil {
		body := map[string]string{"status": status}
		if storeErr != "" {
			body["store"] = storeErr
		}
		writeJSON(w, code, body)
		return
	}
	h := a.cfg.Health()
	var link any
	if a.cfg.Sync != nil {
		link = a.cfg.Sync()
	}
	writeJSON(w, code, struct {
		Status string `json:"status"`
		// Store is the cache's write failure, when writes fail.
		Store string `json:"store,omitempty"`
		fleet.EdgeHealth
		OldestUnsentSeconds float64 `json:"oldestUnsentSeconds"`
		Sync                any     `json:"sync,omitempty"`
	}{status, storeErr, h, h.OldestUnsent.Seconds(), link})
}

func (a *api) ready(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(); err != nil {
			a.fail(w, r, httpapi.Mark(fmt.Errorf("not ready: %w", err), httpapi.ErrUnavailable))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
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
	v := r.URL.Query() // parameters it does not name are refused (openapi.json)
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
	page, err := httpapi.ParsePage(v)
	if err != nil {
		return q, err
	}
	q.Limit, q.Cursor = page.Limit, page.Cursor
	if s := v.Get("offset"); s != "" {
		if q.Offset, err = strconv.Atoi(s); err != nil || q.Offset < 0 {
			return q, badRequest("offset must be a non-negative integer, got %q", s)
		}
	}
	return q, nil
}

func (a *api) writeDevices(w http.ResponseWriter, r *http.Request, q DeviceQuery) {
	if q.Param != "" && fleet.IsSecretParameter(q.Param) {
		// Matching on a secret would let a client guess it one value at a time.
		a.fail(w, r, badRequest("cannot filter on the secret parameter %s", q.Param))
		return
	}
	devs, next, err := a.cfg.Cache.ListDevices(q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	total := -1
	if q.IDPrefix == "" && q.Param == "" && q.LastInformAfter.IsZero() && q.LastInformBefore.IsZero() {
		total = a.cfg.Cache.DeviceCount()
	}
	views := deviceViews(devs, a.cfg.EdgeID)
	a.cfg.Cache.withStates(views, devs, time.Now())
	httpapi.WriteList(w, views, next, total)
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
	v := d.view(a.cfg.EdgeID)
	v.State = fleet.OnlineState(d.LastInform, fleet.ParseInformInterval(params[d.Root+fleet.InformIntervalSuffix[1:]].Value), time.Now())
	v.Parameters = fleet.PublicParameters(params)
	writeJSON(w, http.StatusOK, v)
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
	body, err := httpapi.ReadBody(w, r, maxCredentialsBody)
	if err != nil {
		a.fail(w, r, fmt.Errorf("credentials: %w", err))
		return
	}
	// {"password": "a", "password": "b"} must not silently store "b".
	if err := httpapi.DecodeStrict(body, &req); err != nil {
		a.fail(w, r, fmt.Errorf("credentials: %w", err))
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
	writeJSON(w, http.StatusOK, fleet.PublicTasks(ts))
}

func (a *api) deviceFaults(w http.ResponseWriter, r *http.Request) {
	fs, err := a.cfg.Cache.Faults(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]fleet.FaultView, len(fs))
	for i, f := range fs {
		out[i] = f.view()
	}
	writeJSON(w, http.StatusOK, out)
}

// deviceParams answers the device's parameter tree alone, secrets hidden,
// as the core's GET /api/v1/devices/{id}/params: the web console reads it
// to expand one level without the rest of the device.
func (a *api) deviceParams(w http.ResponseWriter, r *http.Request) {
	params, err := a.cfg.Cache.Parameters(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, fleet.PublicParameters(params))
}

// listFaults answers every device's faults, or one device's with
// ?device=, as the core's GET /api/v1/faults (the console's overview
// counts the last hour's by code).
func (a *api) listFaults(w http.ResponseWriter, r *http.Request) {
	var fs []DeviceFault
	var err error
	if id := r.URL.Query().Get("device"); id != "" {
		fs, err = a.cfg.Cache.Faults(id)
	} else {
		fs, err = a.cfg.Cache.AllFaults()
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]fleet.FaultView, len(fs))
	for i, f := range fs {
		out[i] = f.view()
	}
	writeJSON(w, http.StatusOK, out)
}

// lastBadMessage answers the device's last unreadable CWMP message, for a
// support engineer to attach to a vendor ticket; 404 when there is none
// since the edge started (they are kept in memory: see badMessages).
func (a *api) lastBadMessage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if a.cfg.BadMessages != nil {
		if m, ok := a.cfg.BadMessages(id); ok {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	a.fail(w, r, fmt.Errorf("%w: no unreadable message from device %q since this edge started", ErrNotFound, id))
}

// deviceHistory answers the device's recorded parameter series
// (?path= one of them).
func (a *api) deviceHistory(w http.ResponseWriter, r *http.Request) {
	hs, err := a.cfg.Cache.History(r.PathValue("id"), r.URL.Query().Get("path"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, hs)
}

// postTask queues a task. Answers: 200 with the final task when it
// finished within the wait; 202 with the task when it is still queued
// (no wait, the wait ran out, or the connection request failed: then
// "warning" says why). defaultCRWait applies when the client asked for a
// connection request without a wait (the GenieACS alias, which a
// defaultCRWait > 0 marks: there a wait over httpapi.MaxWait is cut to it,
// not refused).
func (a *api) postTask(defaultCRWait time.Duration) http.HandlerFunc {
	parseWait := httpapi.ParseWait
	if defaultCRWait > 0 {
		parseWait = httpapi.ParseWaitClamped
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		wait, waitGiven, err := parseWait(r.URL.Query())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if _, err := a.cfg.Cache.Device(id); err != nil {
			a.fail(w, r, err)
			return
		}
		body, err := httpapi.ReadBody(w, r, fleet.MaxTaskBody)
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
				a.fail(w, r, httpapi.Mark(fmt.Errorf("connection request to %s: %w", id, err), httpapi.ErrGatewayTimeout))
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
		add := a.cfg.Cache.AddTask
		if wait > 0 {
			add = a.cfg.Cache.AddWaitedTask
		}
		if err := add(t); err != nil {
			a.fail(w, r, err)
			return
		}
		reply := fleet.PublicTask(t)
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
			writeJSON(w, http.StatusOK, fleet.PublicTask(final))
			return
		case errors.Is(werr, ErrNotFound):
			a.fail(w, r, fmt.Errorf("task %s was deleted while waiting: %w", t.ID, werr))
			return
		case final != nil:
			reply = fleet.PublicTask(final)
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
	page, err := httpapi.ParsePage(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ts, next, err := a.cfg.Cache.ListTasks(page.Cursor, page.Limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpapi.WriteList(w, fleet.PublicTasks(ts), next, -1)
}

// getTask answers with the task; with ?wait=D (or ?timeout=ms) it first
// waits up to D for the task to end, as the core's does: 200 once final,
// 202 when still pending or running.
func (a *api) getTask(w http.ResponseWriter, r *http.Request) {
	wait, _, err := httpapi.ParseWait(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	t, err := a.cfg.Cache.Task(id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if wait <= 0 || t.Status.Final() {
		writeJSON(w, http.StatusOK, fleet.PublicTask(t))
		return
	}
	// As in postTask: past the server's read deadline it would stop
	// noticing a client that hangs up during the wait.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	final, err := a.cfg.Cache.WaitTask(ctx, id)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, fleet.PublicTask(final))
	case final != nil && r.Context().Err() == nil:
		// The wait ran out: the task as it stands.
		writeJSON(w, http.StatusAccepted, fleet.PublicTask(final))
	default:
		// Deleted meanwhile (404), or the client went away.
		a.fail(w, r, fmt.Errorf("waiting for task %s: %w", id, err))
	}
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
	httpapi.WriteList(w, list, "", -1)
}

func (a *api) listProvisions(w http.ResponseWriter, r *http.Request) {
	ps, err := a.cfg.Cache.Provisions()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if ps == nil {
		ps = []fleet.Provision{}
	}
	httpapi.WriteList(w, ps, "", -1)
}

func (a *api) getProvision(w http.ResponseWriter, r *http.Request) {
	p, err := a.cfg.Cache.Provision(r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
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
	body, err := httpapi.ReadBody(w, r, fleet.MaxTokenRequest)
	if err != nil {
		a.fail(w, r, fmt.Errorf("token request: %w", err))
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

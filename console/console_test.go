package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/apiauth"
	"github.com/edgeacs/edgeacs/fleet"
)

const (
	writeSecret = "eacs_consolewritesecretconsolewritesecretconsolew"
	readSecret  = "eacs_consolereadsecretconsolereadsecretconsolerea"
	testDevice  = "00D09E-HG%2D2000-ESG0001"
)

// fakeAPI is an /api/v1 behind the real apiauth wrapper, with canned
// answers; it records every call that reached a handler.
type fakeAPI struct {
	mu    sync.Mutex
	calls []string
	// uris are the calls with their queries.
	uris  []string
	body  map[string][]byte
	store *apiauth.MapStore
}

func (f *fakeAPI) record(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	call := r.Method + " " + r.URL.Path
	f.calls = append(f.calls, call)
	f.uris = append(f.uris, r.Method+" "+r.URL.RequestURI())
	f.body[call] = b
}

// writes are the calls that reached a handler with a method that changes
// something.
func (f *fakeAPI) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if !strings.HasPrefix(c, "GET ") {
			out = append(out, c)
		}
	}
	return out
}

func newFakeAPI(t *testing.T) (*fakeAPI, http.Handler) {
	f := &fakeAPI{body: map[string][]byte{}, store: &apiauth.MapStore{}}
	now := time.Now()
	for secret, scope := range map[string]fleet.Scope{writeSecret: fleet.ScopeWrite, readSecret: fleet.ScopeRead} {
		if err := f.store.Put(fleet.Token{Name: string(scope) + "-op", Scope: scope, Hash: fleet.HashToken(secret), Created: now}); err != nil {
			t.Fatal(err)
		}
	}
	dev := fleet.DeviceView{ID: testDevice, OUI: "00D09E", ProductClass: "HG-2000", SerialNumber: "ESG0001", Edge: "edge1",
		LastInform: now.Add(-time.Minute), Tags: []string{"lab"}}
	params := map[string]fleet.Parameter{
		"InternetGatewayDevice.DeviceInfo.SoftwareVersion":                    {Value: "2.4.1", Type: "xsd:string", Timestamp: now},
		"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID":          {Value: "home", Type: "xsd:string", Timestamp: now},
		"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.Enable":        {Value: "1", Type: "xsd:boolean", Timestamp: now},
		"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase": {Value: "", Type: "xsd:string", Secret: true},
	}
	task := func(id, status string) map[string]any {
		return map[string]any{"_id": id, "device": testDevice, "name": "setParameterValues", "status": status,
			"timestamp": now, "parameterValues": [][]string{{"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", "x", "xsd:string"}}}
	}
	js := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			f.record(r)
			fn(w, r)
		})
	}
	h("GET /api/v1/devices", func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Query().Get("filter"), "((") {
			js(w, 400, map[string]any{"error": "bad request: filter: line 1, column 2: unexpected (", "field": "filter", "line": 1, "column": 2})
			return
		}
		w.Header().Set("X-Total-Count", "1")
		js(w, 200, []fleet.DeviceView{dev})
	})
	h("GET /api/v1/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != testDevice {
			js(w, 404, map[string]string{"error": "no such device"})
			return
		}
		d := dev
		d.Parameters = params
		js(w, 200, d)
	})
	h("GET /api/v1/devices/{id}/params", func(w http.ResponseWriter, r *http.Request) { js(w, 200, params) })
	h("POST /api/v1/devices/{id}/tags/{tag}", func(w http.ResponseWriter, r *http.Request) { js(w, 200, map[string]any{}) })
	h("DELETE /api/v1/devices/{id}/tags/{tag}", func(w http.ResponseWriter, r *http.Request) { js(w, 200, map[string]any{}) })
	h("POST /api/v1/devices/{id}/tasks", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("connection_request") != "true" {
			js(w, 400, map[string]string{"error": "test: the console must ask for a connection request"})
			return
		}
		js(w, 200, task("T1", "pending"))
	})
	h("GET /api/v1/tasks", func(w http.ResponseWriter, r *http.Request) { js(w, 200, []any{task("T0", "done")}) })
	h("GET /api/v1/devices/{id}/tasks", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []any{task("T0", "done"), task("T1", "pending")})
	})
	h("GET /api/v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		t := task(r.PathValue("id"), "fault")
		t["fault"] = map[string]any{"code": "9007", "message": "bad value"}
		js(w, 200, t)
	})
	h("GET /api/v1/faults", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []fleet.FaultView{{ID: "T0", Device: testDevice, Task: "T0", Code: "9002", Message: "oops", Timestamp: now}})
	})
	h("GET /api/v1/edges", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []map[string]any{{"id": "edge1", "status": "connected", "connected": true, "lastSeen": now}})
	})
	h("GET /api/v1/rollouts", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []map[string]any{
			{"name": "fw-wave", "state": "paused", "reason": "wave 1 of 3: 2 of 10 devices faulted", "total": 10, "done": 8},
			{"name": "fw-old", "state": "done", "total": 5, "done": 5},
		})
	})
	h("GET /api/v1/presets", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []map[string]any{{"_id": "inform", "weight": 0, "channel": "default", "provisions": [][]any{{"refresh", "X."}}}})
	})
	h("GET /api/v1/presets/{name}", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, map[string]any{"_id": r.PathValue("name"), "weight": 0, "channel": "default", "precondition": "true", "provisions": [][]any{}})
	})
	h("PUT /api/v1/presets/{name}", func(w http.ResponseWriter, r *http.Request) {
		if bytes.Contains(f.body[r.Method+" "+r.URL.Path], []byte("((")) {
			js(w, 400, map[string]any{"error": "precondition: line 1, column 2: unexpected (", "field": "precondition", "line": 1, "column": 2})
			return
		}
		js(w, 200, map[string]any{})
	})
	h("DELETE /api/v1/presets/{name}", func(w http.ResponseWriter, r *http.Request) { js(w, 200, map[string]any{}) })
	h("GET /api/v1/provisions", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []map[string]any{{"_id": "p1", "script": "log('x');"}})
	})
	h("GET /api/v1/provisions/{name}", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, map[string]any{"_id": r.PathValue("name"), "script": "log('x');"})
	})
	h("PUT /api/v1/provisions/{name}", func(w http.ResponseWriter, r *http.Request) {
		if bytes.Contains(f.body[r.Method+" "+r.URL.Path], []byte("syntax error")) {
			js(w, 400, map[string]any{"error": "provision p1: line 2, column 1: SyntaxError", "line": 2, "column": 1})
			return
		}
		js(w, 200, map[string]any{"_id": r.PathValue("name")})
	})
	h("DELETE /api/v1/provisions/{name}", func(w http.ResponseWriter, r *http.Request) { js(w, 200, map[string]any{}) })
	h("GET /api/v1/files", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []map[string]any{{"name": "fw.bin", "fileType": "1 Firmware Upgrade Image", "size": 2048, "uploaded": now}})
	})
	h("PUT /api/v1/files/{name}", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, map[string]any{"name": r.PathValue("name"), "fileType": r.Header.Get("fileType")})
	})
	h("DELETE /api/v1/files/{name}", func(w http.ResponseWriter, r *http.Request) { js(w, 200, map[string]any{}) })
	h("GET /devices/", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []map[string]any{{"_id": testDevice, "InternetGatewayDevice": map[string]any{"DeviceInfo": map[string]any{
			"SoftwareVersion": map[string]any{"_value": "2.4.1"}}}}})
	})
	auth := apiauth.New(apiauth.Config{Store: f.store, Policy: apiauth.DefaultPolicy(false), Logger: slog.New(slog.DiscardHandler)})
	return f, auth.Wrap(mux)
}

// testConsole serves a console over a fake API.
func testConsole(t *testing.T) (*fakeAPI, *httptest.Server) {
	t.Helper()
	f, api := newFakeAPI(t)
	c, err := New(Config{API: api, Tokens: f.store, Title: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return f, srv
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: srv.URL, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(method, path string, body io.Reader, hdr map[string]string) (int, http.Header, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if method == http.MethodPost && body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

func (b *browser) get(path string) (int, http.Header, string) {
	return b.do(http.MethodGet, path, nil, nil)
}

// post sends a form; csrf adds the session's token.
func (b *browser) post(path string, form url.Values, csrf bool) (int, http.Header, string) {
	if form == nil {
		form = url.Values{}
	}
	if csrf {
		form.Set("csrf", b.csrf)
	}
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()), nil)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in with secret and keeps the session's CSRF token.
func (b *browser) signIn(secret string) {
	b.t.Helper()
	code, _, page := b.get("/console/signin")
	m := csrfField.FindStringSubmatch(page)
	if code != 200 || m == nil {
		b.t.Fatalf("sign-in page: %d, csrf %v", code, m)
	}
	code, h, _ := b.do(http.MethodPost, "/console/signin", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {secret}}.Encode()), nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/console/" {
		b.t.Fatalf("sign in: %d to %q, want 303 to /console/", code, h.Get("Location"))
	}
	_, _, page = b.get("/console/")
	m = csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatal("no CSRF token on the overview")
	}
	b.csrf = m[1]
}

var pages = []struct {
	path, want string
	writeOnly  bool
}{
	{"/console/", "Faults in the last hour", false},
	{"/console/", "fw-wave (paused: wave 1 of 3", false},
	{"/console/devices", "HG-2000", false},
	{"/console/devices?sort=model&dir=desc", "HG-2000", false},
	{"/console/devices?sort=software", "2.4.1", false},
	{"/console/devices/" + url.PathEscape(testDevice), "Recent tasks", false},
	{"/console/devices/" + url.PathEscape(testDevice) + "?path=InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.", "home", false},
	{"/console/devices/" + url.PathEscape(testDevice) + "?q=ssid", "1 parameter match", false},
	{"/console/presets", "inform", false},
	{"/console/presets/inform", "Preset inform", false},
	{"/console/presets/new", "New preset", true},
	{"/console/provisions/new", "New provision", true},
	{"/console/provisions", "p1", false},
	{"/console/provisions/p1", "log(", false},
	{"/console/files", "fw.bin", false},
}

// posts are every form post, with a valid body.
var posts = []struct {
	path string
	form url.Values
}{
	{"/console/devices/" + url.PathEscape(testDevice) + "/tags", url.Values{"tag": {"new"}}},
	{"/console/devices/" + url.PathEscape(testDevice) + "/tags/lab/delete", nil},
	{"/console/devices/" + url.PathEscape(testDevice) + "/tasks", url.Values{"action": {"reboot"}}},
	{"/console/presets/inform", url.Values{"text": {`{"weight":0,"channel":"default","provisions":[]}`}}},
	{"/console/presets/inform/delete", nil},
	{"/console/provisions/p1", url.Values{"text": {"log('y');"}}},
	{"/console/provisions/p1/delete", nil},
	{"/console/files/fw.bin/delete", nil},
}

func TestPagesNeedSignIn(t *testing.T) {
	f, srv := testConsole(t)
	b := newBrowser(t, srv)
	for _, p := range pages {
		code, h, _ := b.get(p.path)
		if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/signin?next=") {
			t.Errorf("GET %s signed out: %d to %q, want 303 to the sign-in page", p.path, code, h.Get("Location"))
		}
	}
	for _, p := range posts {
		if code, h, _ := b.post(p.path, p.form, false); code != http.StatusSeeOther || h.Get("Location") != "/console/signin" {
			t.Errorf("POST %s signed out: %d to %q, want 303 to the sign-in page", p.path, code, h.Get("Location"))
		}
	}
	// htmx is told where to go rather than given the page.
	code, h, _ := b.do(http.MethodGet, "/console/tasks/T1", nil, map[string]string{"HX-Request": "true"})
	if code != http.StatusUnauthorized || h.Get("HX-Redirect") != "/console/signin" {
		t.Errorf("htmx GET signed out: %d, HX-Redirect %q", code, h.Get("HX-Redirect"))
	}
	if len(f.calls) != 0 {
		t.Errorf("signed-out requests reached the API: %v", f.calls)
	}
}

func TestSignIn(t *testing.T) {
	_, srv := testConsole(t)
	tests := []struct {
		name   string
		token  string
		csrf   func(page string) string
		status int
		want   string
	}{
		{"unknown token", "eacs_nope", nil, http.StatusUnauthorized, "unknown or revoked token"},
		{"empty", "", nil, http.StatusBadRequest, "Paste an API token"},
		{"no csrf", writeSecret, func(string) string { return "" }, http.StatusForbidden, "expired"},
		{"wrong csrf", writeSecret, func(string) string { return "x" }, http.StatusForbidden, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, srv)
			_, _, page := b.get("/console/signin")
			csrf := csrfField.FindStringSubmatch(page)[1]
			if tt.csrf != nil {
				csrf = tt.csrf(page)
			}
			code, _, body := b.post("/console/signin", url.Values{"csrf": {csrf}, "token": {tt.token}}, false)
			if code != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("sign in: %d, want %d with %q:\n%s", code, tt.status, tt.want, body)
			}
			if code, _, _ := b.get("/console/"); code != http.StatusSeeOther {
				t.Fatalf("after a failed sign-in the overview answered %d, want 303", code)
			}
		})
	}
	t.Run("cookie", func(t *testing.T) {
		b := newBrowser(t, srv)
		_, _, page := b.get("/console/signin?next=/console/files")
		csrf := csrfField.FindStringSubmatch(page)[1]
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/console/signin",
			strings.NewReader(url.Values{"csrf": {csrf}, "token": {writeSecret}, "next": {"/console/files"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := b.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/files" {
			t.Fatalf("sign in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		var found bool
		for _, ck := range resp.Cookies() {
			if ck.Name != sessionCookie {
				continue
			}
			found = true
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != Prefix || strings.Contains(ck.Value, writeSecret) {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, path %s, no token in it", ck, Prefix)
			}
		}
		if !found {
			t.Fatal("no session cookie")
		}
		// Sign out ends the session.
		_, _, page = b.get("/console/")
		b.csrf = csrfField.FindStringSubmatch(page)[1]
		if code, _, _ := b.post("/console/signout", nil, true); code != http.StatusSeeOther {
			t.Fatalf("sign out: %d", code)
		}
		if code, _, _ := b.get("/console/"); code != http.StatusSeeOther {
			t.Fatalf("after sign-out the overview answered %d, want 303", code)
		}
	})
	t.Run("next elsewhere", func(t *testing.T) {
		b := newBrowser(t, srv)
		_, _, page := b.get("/console/signin")
		csrf := csrfField.FindStringSubmatch(page)[1]
		code, h, _ := b.post("/console/signin", url.Values{"csrf": {csrf}, "token": {readSecret}, "next": {"//evil.example/"}}, false)
		if code != http.StatusSeeOther || h.Get("Location") != "/console/" {
			t.Fatalf("sign in with a foreign next: %d to %q, want /console/", code, h.Get("Location"))
		}
	})
}

func TestPages(t *testing.T) {
	_, srv := testConsole(t)
	for _, scope := range []struct {
		secret string
		write  bool
	}{{writeSecret, true}, {readSecret, false}} {
		b := newBrowser(t, srv)
		b.signIn(scope.secret)
		for _, p := range pages {
			code, h, body := b.get(p.path)
			if p.writeOnly && !scope.write {
				if code != http.StatusForbidden {
					t.Errorf("GET %s with a read token: %d, want 403", p.path, code)
				}
				continue
			}
			if code != 200 || !strings.Contains(body, p.want) {
				t.Errorf("GET %s (write %v): %d, want 200 with %q:\n%.2000s", p.path, scope.write, code, p.want, body)
				continue
			}
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("GET %s: CSP %q", p.path, csp)
			}
			if strings.Contains(body, scope.secret) {
				t.Errorf("GET %s shows the token", p.path)
			}
			// Write buttons and forms are for write tokens only.
			for _, mark := range []string{`action="/console/devices/` + url.PathEscape(testDevice) + `/tasks"`, "New preset", "New provision",
				`id="upload"`, "/delete\"", `name="tag"`} {
				if got := strings.Contains(body, mark); got && !scope.write {
					t.Errorf("GET %s with a read token shows %q", p.path, mark)
				}
			}
		}
		if scope.write {
			_, _, body := b.get("/console/devices/" + url.PathEscape(testDevice))
			if !strings.Contains(body, `id="action-reboot"`) {
				t.Error("the device page shows a write token no reboot button")
			}
		}
	}
}

func TestSecretsMasked(t *testing.T) {
	_, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(writeSecret)
	_, _, body := b.get("/console/devices/" + url.PathEscape(testDevice) + "?q=KeyPassphrase")
	if !strings.Contains(body, `class="secret"`) || !strings.Contains(body, `type="password"`) {
		t.Errorf("a secret parameter is not shown masked with a password input:\n%s", body)
	}
}

func TestPostsNeedCSRF(t *testing.T) {
	f, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(writeSecret)
	for _, p := range posts {
		code, _, body := b.post(p.path, p.form, false)
		if code != http.StatusForbidden || !strings.Contains(body, "security token") {
			t.Errorf("POST %s without CSRF: %d, want 403:\n%.500s", p.path, code, body)
		}
		form := url.Values{"csrf": {"wrong"}}
		for k, v := range p.form {
			form[k] = v
		}
		if code, _, _ := b.post(p.path, form, false); code != http.StatusForbidden {
			t.Errorf("POST %s with a wrong CSRF token: %d, want 403", p.path, code)
		}
		// From another site, even with the token.
		form.Set("csrf", b.csrf)
		code, _, _ = b.do(http.MethodPost, p.path, strings.NewReader(form.Encode()), map[string]string{"Origin": "https://evil.example"})
		if code != http.StatusForbidden {
			t.Errorf("POST %s from another origin: %d, want 403", p.path, code)
		}
	}
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("refused posts reached the API: %v", w)
	}
	// And with the token each one goes through.
	for _, p := range posts {
		if code, _, body := b.post(p.path, p.form, true); code != http.StatusSeeOther {
			t.Errorf("POST %s with CSRF: %d, want 303:\n%.1000s", p.path, code, body)
		}
	}
	if w := f.writes(); len(w) != len(posts) {
		t.Fatalf("the API saw %d writes, want %d: %v", len(w), len(posts), w)
	}
}

func TestReadTokenCannotWrite(t *testing.T) {
	f, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(readSecret)
	for _, p := range posts {
		code, _, body := b.post(p.path, p.form, true)
		if code != http.StatusForbidden || !strings.Contains(body, "scope read") {
			t.Errorf("POST %s with a read token: %d, want 403:\n%.500s", p.path, code, body)
		}
	}
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("a read token's posts reached the API: %v", w)
	}
	// Signing out is not a write.
	if code, _, _ := b.post("/console/signout", nil, true); code != http.StatusSeeOther {
		t.Fatalf("sign out with a read token: %d", code)
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	f, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(writeSecret)
	if code, _, _ := b.get("/console/devices"); code != 200 {
		t.Fatalf("devices: %d", code)
	}
	f.store.Delete("write-op")
	if code, h, _ := b.get("/console/devices"); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/signin") {
		t.Fatalf("after the token was revoked: %d to %q, want the sign-in page", code, h.Get("Location"))
	}
}

func TestDeviceActions(t *testing.T) {
	f, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(writeSecret)
	path := "/console/devices/" + url.PathEscape(testDevice) + "/tasks"
	ssid := "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"
	htmx := func(form url.Values) (int, string) {
		code, _, body := b.do(http.MethodPost, path, strings.NewReader(form.Encode()), map[string]string{
			"HX-Request": "true", "X-CSRF-Token": b.csrf, "Content-Type": "application/x-www-form-urlencoded"})
		return code, body
	}
	tests := []struct {
		name  string
		form  url.Values
		want  string
		sends bool
	}{
		{"set", url.Values{"action": {"set"}, "path": {ssid}, "type": {"xsd:string"}, "value": {"new"}}, `hx-trigger="every 1s"`, true},
		{"bad boolean", url.Values{"action": {"set"}, "path": {"X.Enable"}, "type": {"xsd:boolean"}, "value": {"maybe"}}, "not a valid xsd:boolean", false},
		{"bad int", url.Values{"action": {"set"}, "path": {"X.Port"}, "type": {"xsd:unsignedInt"}, "value": {"-1"}}, "not a valid xsd:unsignedInt", false},
		{"object", url.Values{"action": {"set"}, "path": {"X."}, "value": {"1"}}, "not an object", false},
		{"factory reset unconfirmed", url.Values{"action": {"factoryReset"}}, "confirm", false},
		{"factory reset", url.Values{"action": {"factoryReset"}, "confirm": {"yes"}}, "queued", true},
		{"download without file", url.Values{"action": {"download"}}, "choose a file", false},
		{"download", url.Values{"action": {"download"}, "file": {"fw.bin"}}, "queued", true},
		{"refresh", url.Values{"action": {"refresh"}, "path": {"InternetGatewayDevice.LANDevice."}}, "queued", true},
		{"unknown", url.Values{"action": {"explode"}}, "unknown action", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.writes())
			code, body := htmx(tt.form)
			if code != 200 || !strings.Contains(body, tt.want) {
				t.Fatalf("%d, want 200 with %q:\n%s", code, tt.want, body)
			}
			if sent := len(f.writes()) > before; sent != tt.sends {
				t.Fatalf("task sent to the API: %v, want %v", sent, tt.sends)
			}
		})
	}
	// The live status of a task that faulted says why, in words.
	code, _, body := b.do(http.MethodGet, "/console/tasks/T9", nil, map[string]string{"HX-Request": "true"})
	if code != 200 || !strings.Contains(body, "fault 9007 (Invalid parameter value): bad value") || strings.Contains(body, "hx-trigger") {
		t.Fatalf("a faulted task's status: %d:\n%s", code, body)
	}
	// Without JavaScript the post leads to the device page watching it.
	code, h, _ := b.post(path, url.Values{"action": {"reboot"}}, true)
	if code != http.StatusSeeOther || !strings.HasSuffix(h.Get("Location"), "?task=T1") {
		t.Fatalf("plain post: %d to %q", code, h.Get("Location"))
	}
}

func TestFilterError(t *testing.T) {
	_, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(readSecret)
	for _, sort := range []string{"", "&sort=model"} {
		code, _, body := b.get("/console/devices?filter=" + url.QueryEscape("((") + sort)
		if code != http.StatusBadRequest || !strings.Contains(body, `id="filter-error"`) || !strings.Contains(body, "line 1, column 2") ||
			!strings.Contains(body, `aria-invalid="true"`) {
			t.Errorf("bad filter%s: %d:\n%.3000s", sort, code, body)
		}
	}
}

func TestEditErrorsAtTheLine(t *testing.T) {
	_, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(writeSecret)
	tests := []struct {
		name, path, text, want string
		bad                    int
	}{
		{"json", "/console/presets/inform", "{\n  \"weight\": 0,\n  \"channel\": oops\n}", "line 3, column", 3},
		{"precondition", "/console/presets/inform", "{\n  \"weight\": 0,\n  \"precondition\": \"((\"\n}", "field precondition, line 1, column 2", 3},
		{"script", "/console/provisions/p1", "log('a');\nsyntax error here\n", "line 2, column 1", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := b.post(tt.path, url.Values{"text": {tt.text}}, true)
			if code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
				t.Fatalf("%d, want 400 with %q:\n%s", code, tt.want, body)
			}
			if !strings.Contains(body, fmt.Sprintf(`<li value="%d" class="bad"`, tt.bad)) {
				t.Fatalf("line %d not marked:\n%s", tt.bad, body)
			}
		})
	}
}

func TestFileUpload(t *testing.T) {
	f, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(writeSecret)
	content := bytes.Repeat([]byte("firmware"), 10000)
	form := func(csrf string) (*bytes.Buffer, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		if csrf != "" {
			mw.WriteField("csrf", csrf)
		}
		mw.WriteField("name", "new.bin")
		mw.WriteField("fileType", "3 Vendor Configuration File")
		fw, _ := mw.CreateFormFile("file", "local.bin")
		fw.Write(content)
		mw.Close()
		return &buf, mw.FormDataContentType()
	}
	body, ct := form("")
	if code, _, _ := b.do(http.MethodPost, "/console/files", body, map[string]string{"Content-Type": ct}); code != http.StatusForbidden {
		t.Fatalf("upload without CSRF: %d, want 403", code)
	}
	body, ct = form(b.csrf)
	code, h, page := b.do(http.MethodPost, "/console/files", body, map[string]string{"Content-Type": ct})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/files") {
		t.Fatalf("upload: %d to %q:\n%s", code, h.Get("Location"), page)
	}
	f.mu.Lock()
	got := f.body["PUT /api/v1/files/new.bin"]
	f.mu.Unlock()
	if !bytes.Equal(got, content) {
		t.Fatalf("the API got %d bytes, want the %d uploaded", len(got), len(content))
	}
}

func TestDeviceState(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		ago  time.Duration
		want string
	}{{time.Minute, StateOnline}, {5*time.Minute + 20*time.Second, StateOnline}, {7 * time.Minute, StateLate}, {15 * time.Minute, StateLate}, {16 * time.Minute, StateOffline}} {
		d := fleet.DeviceView{LastInform: now.Add(-tt.ago)}
		if got := DeviceState(d, now); got != tt.want {
			t.Errorf("last inform %v ago: %s, want %s", tt.ago, got, tt.want)
		}
	}
	// The API's own judgement (against the device's own interval) wins.
	if got := DeviceState(fleet.DeviceView{LastInform: now.Add(-time.Hour), State: StateOnline}, now); got != StateOnline {
		t.Errorf("API says online: %s", got)
	}
	if got := DeviceState(fleet.DeviceView{}, now); got != StateNever {
		t.Errorf("never informed: %s", got)
	}
}

func TestSessionsBounded(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ss := newSessions(time.Hour, 2*time.Hour, 2, clock)
	a, b, c := &session{}, &session{}, &session{}
	ida := ss.add(a)
	now = now.Add(time.Second)
	idb := ss.add(b)
	now = now.Add(time.Second)
	idc := ss.add(c)
	if ss.get(ida) != nil || ss.get(idb) != b || ss.get(idc) != c {
		t.Fatal("a full session map must drop the least recently used")
	}
	now = now.Add(61 * time.Minute)
	if ss.get(idb) != nil {
		t.Fatal("an idle session must expire")
	}
}

func TestTreeFragments(t *testing.T) {
	_, srv := testConsole(t)
	b := newBrowser(t, srv)
	b.signIn(readSecret)
	base := "/console/devices/" + url.PathEscape(testDevice) + "/tree"
	hx := map[string]string{"HX-Request": "true"}
	tests := []struct {
		query, want, not string
	}{
		// One level: the children of the path, not the levels above it.
		{"?path=" + url.QueryEscape("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1."), `data-path="InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"`, "<summary>InternetGatewayDevice</summary>"},
		{"?path=" + url.QueryEscape("InternetGatewayDevice."), "<summary>LANDevice</summary>", "<summary>InternetGatewayDevice</summary>"},
		{"?q=software", "2.4.1", "<html"},
	}
	for _, tt := range tests {
		code, _, body := b.do(http.MethodGet, base+tt.query, nil, hx)
		if code != 200 || !strings.Contains(body, tt.want) || strings.Contains(body, tt.not) || strings.Contains(body, "<html") {
			t.Errorf("tree%s: %d, want %q and not %q:\n%s", tt.query, code, tt.want, tt.not, body)
		}
		if strings.Contains(body, "Set…") {
			t.Errorf("tree%s shows a read token a set form", tt.query)
		}
	}
	// Without htmx the same link opens the device page at that level.
	code, h, _ := b.get(base + "?path=InternetGatewayDevice.")
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "?path=InternetGatewayDevice.") {
		t.Fatalf("tree without htmx: %d to %q", code, h.Get("Location"))
	}
}

// TestEdgeFeatures: over an API without the core's tags, edges, rollouts,
// filter expressions and task queries (a standalone edge's), the console
// never asks for them, shows none of them, and reads a device's tasks
// from the device's own list.
func TestEdgeFeatures(t *testing.T) {
	f, api := newFakeAPI(t)
	c, err := New(Config{API: api, Tokens: f.store, Title: "edge pop1", Features: &Features{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)
	b.signIn(writeSecret)
	dev := "/console/devices/" + url.PathEscape(testDevice)
	for _, p := range []struct{ path, want string }{
		{"/console/", `id="tasks-pending">0<`}, // the fake's /api/v1/tasks holds one done task
		{"/console/devices?filter=00D09E", "HG-2000"},
		{"/console/devices?sort=model", "HG-2000"},
		{dev, "Recent tasks"},
	} {
		code, _, page := b.get(p.path)
		if code != http.StatusOK || !strings.Contains(page, p.want) {
			t.Errorf("GET %s: %d, want %q:\n%.2000s", p.path, code, p.want, page)
			continue
		}
		for _, absent := range []string{`id="h-edges"`, `id="h-rollouts"`, `id="h-tags"`, ">Tags</a>", "preset preconditions"} {
			if strings.Contains(page, absent) {
				t.Errorf("GET %s shows %s", p.path, absent)
			}
		}
	}
	if code, _, page := b.get(dev); !strings.Contains(page, "status-pending") {
		t.Errorf("device page %d: the tasks of GET /api/v1/devices/{id}/tasks are not listed:\n%.3000s", code, page)
	}
	if code, _, _ := b.post(dev+"/tags", url.Values{"tag": {"x"}}, true); code != http.StatusNotFound {
		t.Errorf("POST tags: %d, want 404", code)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.uris {
		if strings.Contains(u, "/api/v1/edges") || strings.Contains(u, "/api/v1/rollouts") || strings.Contains(u, "/tags") ||
			strings.Contains(u, "filter=") || strings.Contains(u, "status=") || strings.Contains(u, "device=") && strings.HasPrefix(u, "GET /api/v1/tasks") {
			t.Errorf("the console asked the API for %s, which it does not have", u)
		}
	}
	if !slices.Contains(f.uris, "GET /api/v1/devices?id=00D09E&limit=50") {
		t.Errorf("the filter box did not select by ID prefix: %v", f.uris)
	}
}

package edge

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// consoleUser is a browser on a standalone edge's console: its own
// cookie jar, a plain transport (the tests' default one adds the admin
// token to every request) and no redirect following.
type consoleUser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newConsoleUser(t *testing.T, base string) *consoleUser {
	jar, _ := cookiejar.New(nil)
	return &consoleUser{t: t, base: base, hc: &http.Client{Jar: jar, Transport: &http.Transport{}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (u *consoleUser) do(method, path string, form url.Values, hdr ...string) (int, http.Header, string) {
	u.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u.base+path, body)
	if err != nil {
		u.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := u.hc.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		u.csrf = m[1]
	}
	return resp.StatusCode, resp.Header, string(b)
}

// get fetches path and wants 200.
func (u *consoleUser) get(path string) string {
	u.t.Helper()
	code, _, body := u.do(http.MethodGet, path, nil)
	if code != http.StatusOK {
		u.t.Fatalf("GET %s: %d\n%.2000s", path, code, body)
	}
	return body
}

func (u *consoleUser) signIn(token string) {
	u.t.Helper()
	u.get("/console/signin")
	code, h, body := u.do(http.MethodPost, "/console/signin", url.Values{"csrf": {u.csrf}, "token": {token}})
	if code != http.StatusSeeOther || h.Get("Location") != "/console/" {
		u.t.Fatalf("sign in: %d to %q\n%.1000s", code, h.Get("Location"), body)
	}
}

// TestConsoleStandaloneEdge: a standalone edge serves the web console on
// its API listener for its own devices, without the core's tags, edges,
// rollouts and filter expressions; the tree, a set value and its task's
// live progress work; CSRF and scopes hold as on the core.
func TestConsoleStandaloneEdge(t *testing.T) {
	e := startEdge(t, "", nil)
	f := startFleet(t, e, 1, nil)
	waitInformed(t, e, f)
	id := f.Device(0).ID()
	root := e.device(id).Root
	secret, err := os.ReadFile(filepath.Join(e.cfg.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(e.api, "/api/v1")
	admin := newConsoleUser(t, base)

	if code, h, _ := admin.do(http.MethodGet, "/console/devices", nil); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/signin") {
		t.Fatalf("GET /console/devices signed out: %d to %q", code, h.Get("Location"))
	}
	if !strings.Contains(admin.get("/console/signin"), "admin.token") {
		t.Error("the edge's sign-in page does not say where its admin token is")
	}
	admin.signIn(strings.TrimSpace(string(secret)))

	page := admin.get("/console/")
	for _, want := range []string{"edge test-edge", `id="count-total">1<`} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q:\n%.3000s", want, page)
		}
	}
	for _, absent := range []string{`id="h-edges"`, `id="h-rollouts"`} {
		if strings.Contains(page, absent) {
			t.Errorf("overview shows %s, which the edge's API does not have", absent)
		}
	}

	page = admin.get("/console/devices")
	if !strings.Contains(page, ">"+id+"</a>") || strings.Contains(page, ">Tags</a>") || strings.Contains(page, "preset preconditions") {
		t.Errorf("device list: want %s, no Tags column, no filter expressions:\n%.3000s", id, page)
	}
	prefix := url.QueryEscape(id[:len(id)-1])
	if page := admin.get("/console/devices?filter=" + prefix); !strings.Contains(page, ">"+id+"</a>") {
		t.Errorf("filter by ID prefix %s misses the device:\n%.3000s", prefix, page)
	}
	if page := admin.get("/console/devices?filter=no-such-prefix"); strings.Contains(page, ">"+id+"</a>") || !strings.Contains(page, "No device matches") {
		t.Errorf("filter no-such-prefix:\n%.3000s", page)
	}
	if page := admin.get("/console/devices?sort=model"); !strings.Contains(page, ">"+id+"</a>") {
		t.Errorf("sorted by model:\n%.3000s", page)
	}

	devPath := "/console/devices/" + url.PathEscape(id)
	page = admin.get(devPath)
	for _, want := range []string{`id="h-actions"`, "<summary>" + strings.TrimSuffix(root, ".") + "</summary>", `value="reboot"`, `value="factoryReset"`} {
		if !strings.Contains(page, want) {
			t.Errorf("device page lacks %q:\n%.4000s", want, page)
		}
	}
	if strings.Contains(page, `id="h-tags"`) {
		t.Error("device page shows tags, which the edge's API does not have")
	}
	// The tree's lazy expand reads GET /api/v1/devices/{id}/params.
	_, _, tree := admin.do(http.MethodGet, devPath+"/tree?path="+url.QueryEscape(root+"DeviceInfo."), nil, "HX-Request", "true")
	if !strings.Contains(tree, `data-path="`+root+`DeviceInfo.SerialNumber"`) {
		t.Errorf("tree of %sDeviceInfo. lacks SerialNumber:\n%.3000s", root, tree)
	}
	if _, _, found := admin.do(http.MethodGet, devPath+"/tree?q=SerialNumber", nil, "HX-Request", "true"); !strings.Contains(found, "SerialNumber") {
		t.Errorf("search SerialNumber:\n%.2000s", found)
	}

	// A writable string to set, as the console's form sends it.
	params, err := e.node.Cache().Parameters(id)
	if err != nil {
		t.Fatal(err)
	}
	var path string
	for p, v := range params {
		if v.Writable != nil && *v.Writable && v.Type == "xsd:string" && !v.Secret && !fleet.IsSecretParameter(p) && strings.HasSuffix(p, ".SSID") {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatalf("no writable SSID among the device's %d parameters", len(params))
	}
	set := url.Values{"action": {"set"}, "path": {path}, "type": {"xsd:string"}, "value": {"edge-console"}}
	if code, _, _ := admin.do(http.MethodPost, devPath+"/tasks", set); code != http.StatusForbidden {
		t.Fatalf("POST without the CSRF token: %d, want 403", code)
	}
	if code, _, _ := admin.do(http.MethodPost, devPath+"/tags", url.Values{"csrf": {admin.csrf}, "tag": {"x"}}); code != http.StatusNotFound {
		t.Errorf("POST tags on the edge's console: %d, want 404", code)
	}
	set.Set("csrf", admin.csrf)
	code, _, frag := admin.do(http.MethodPost, devPath+"/tasks", set, "HX-Request", "true")
	m := regexp.MustCompile(`data-task="([^"]+)"`).FindStringSubmatch(frag)
	if code != http.StatusOK || m == nil {
		t.Fatalf("set %s: %d\n%.2000s", path, code, frag)
	}
	// The live status panel, polled as htmx does, until the task is final.
	waitFor(t, 30*time.Second, "the set task to finish", func() bool {
		_, _, frag = admin.do(http.MethodGet, "/console/tasks/"+url.PathEscape(m[1]), nil, "HX-Request", "true")
		return !strings.Contains(frag, `data-status="pending"`) && !strings.Contains(frag, `data-status="running"`)
	})
	if !strings.Contains(frag, `data-status="done"`) || !strings.Contains(frag, path+" is now edge-console") {
		t.Fatalf("set task:\n%s", frag)
	}
	// The recent tasks (GET /api/v1/devices/{id}/tasks on the edge) list
	// it; the tree shows the new value.
	if page := admin.get(devPath); !strings.Contains(page, "<td>"+fleet.TaskSetParameterValues+"</td><td><span class=\"status status-done\">") {
		t.Errorf("device page after the set lacks the task:\n%s", page)
	}
	obj := path[:strings.LastIndex(path, ".")+1]
	_, _, tree = admin.do(http.MethodGet, devPath+"/tree?path="+url.QueryEscape(obj), nil, "HX-Request", "true")
	if !regexp.MustCompile(`data-path="` + regexp.QuoteMeta(path) + `"><span class="pname">SSID</span>\s*<span class="pvalue">edge-console<`).MatchString(tree) {
		t.Errorf("tree of %s after the set:\n%.3000s", obj, tree)
	}

	// A read token looks but has no button that changes anything.
	viewer := newConsoleUser(t, base)
	viewer.signIn(addTestToken(t, e.node.Cache(), "viewer", fleet.ScopeRead))
	page = viewer.get(devPath)
	for _, absent := range []string{`id="h-actions"`, `name="action"`, "Set…"} {
		if strings.Contains(page, absent) {
			t.Errorf("a read token's device page shows %q", absent)
		}
	}
	if code, _, _ := viewer.do(http.MethodPost, devPath+"/tasks", url.Values{"csrf": {viewer.csrf}, "action": {"reboot"}}); code != http.StatusForbidden {
		t.Errorf("reboot with a read token: %d, want 403", code)
	}
}

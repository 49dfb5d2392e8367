package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/edgeacs/edgeacs/sim"
)

// chromium finds a Chromium to drive: $EDGEACS_CHROMIUM, else the first of
// the usual names on PATH; "" when there is none.
func chromium() string {
	if p := os.Getenv("EDGEACS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactsDir is where browser tests leave their screenshots:
// $EDGEACS_ARTIFACTS (CI keeps it), else a temporary folder of the test.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("EDGEACS_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// newBrowser starts a headless Chromium with a fresh profile, for as long
// as t runs.
func newBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", exe, err)
	}
	return ctx
}

// run runs browser actions, failing the test with what it was doing.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(actx, actions...); err != nil {
		// Read the page on a context of its own: actx may be what ran out.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		body, _ := chromedp.Run(rctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
		t.Fatalf("browser: %s: %v; the page says:\n%s", what, err, tail(body, 3000))
	}
}

// value runs one browser action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// waitJS evaluates a boolean JavaScript expression until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if value(t, ctx, what, chromedp.Evaluate[bool](expr)) {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("browser: %s: not after %v; the page says:\n%s", what, timeout, tail(body, 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot saves a full-page PNG screenshot under dir.
func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
}

// TestConsoleInBrowser drives the web console of `edgeacs dev` in headless
// Chromium as an operator would: sign in with the admin token, filter the
// devices, open a TR-098 device, set its SSID and watch the task finish
// and the new value appear; a filter that does not parse shows its error;
// a read token sees no write buttons.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromium()
	if exe == "" {
		t.Skip("SKIPPED: no Chromium found (apt-get install chromium, or set EDGEACS_CHROMIUM): the console's browser tests did not run")
	}
	shots := artifactsDir(t)
	bin := coreBuild(t)
	dir := t.TempDir()
	api := coreFreeAddr(t)
	startDev(t, bin, dir, 1, "--data", "data", "--sim", "6", "--model", "mixed",
		"--api-addr", api, "--cwmp-addr", coreFreeAddr(t), "--edge-api-addr", coreFreeAddr(t),
		"--raft-addr", coreFreeAddr(t), "--sync-addr", freeUDPAddr(t), "--stun-addr", freeUDPAddr(t))
	admin := cliToken(t, filepath.Join(dir, "data", "cli.yaml"))
	var viewer struct{ Token string }
	if err := json.Unmarshal([]byte(fleetCmd(t, bin, dir, "token", "create", "--name", "viewer", "--scope", "read", "--json")), &viewer); err != nil || viewer.Token == "" {
		t.Fatalf("read token: %v", err)
	}
	base := "http://" + api + "/console/"
	ctx := newBrowser(t, exe)

	signIn := func(token string) {
		t.Helper()
		run(t, ctx, "sign in",
			chromedp.Navigate(base),
			chromedp.WaitVisible(chromedp.CSS(`#token`)),
			chromedp.SendKeys(chromedp.CSS(`#token`), token),
			chromedp.Submit(chromedp.CSS(`#token`)),
			chromedp.WaitVisible(chromedp.CSS(`#count-total`)),
		)
	}
	signIn(admin)
	url0 := value(t, ctx, "read the URL", chromedp.Location())
	if strings.Contains(url0, admin) {
		t.Fatalf("the token is in the URL %s", url0)
	}
	waitJS(t, ctx, "the overview counts 6 devices", `document.querySelector('#count-total').innerText === '6'`, 5*time.Second)
	shot(t, ctx, shots, "console-overview.png")

	// Filter: the TR-098 half of the fleet.
	run(t, ctx, "filter devices",
		chromedp.Navigate(base+"devices"),
		chromedp.WaitVisible(chromedp.CSS(`#filter`)),
		chromedp.SendKeys(chromedp.CSS(`#filter`), "DeviceID.ProductClass = 'HG-2000'"),
		chromedp.Submit(chromedp.CSS(`#filter`)),
	)
	// The submit is a whole-page GET: the unfiltered page's table stays
	// visible until the new page replaces it, so wait for the page whose
	// URL carries the filter, fully loaded, not just for a table.
	waitJS(t, ctx, "the filtered device page",
		`new URLSearchParams(location.search).get('filter') === "DeviceID.ProductClass = 'HG-2000'" && document.readyState === 'complete' && !!document.querySelector('table.devices')`, 10*time.Second)
	models := value(t, ctx, "read the table", chromedp.Evaluate[[]string](`[...document.querySelectorAll('table.devices tbody tr td:nth-child(2)')].map(td => td.innerText)`))
	if len(models) != 3 {
		t.Fatalf("the filter shows %d devices (%v), want the 3 TR-098 ones", len(models), models)
	}
	for _, m := range models {
		if m != "HG-2000" {
			t.Fatalf("the filter shows a %s", m)
		}
	}
	shot(t, ctx, shots, "console-devices.png")

	// Open the first TR-098 device and set its SSID.
	ssid := "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"
	leaf := fmt.Sprintf(`li.leaf[data-path=%q]`, ssid)
	status, words := consoleSetSSID(t, ctx, leaf, "console-ssid")
	if status != "done" || !strings.Contains(words, "is now console-ssid") {
		t.Fatalf("the set task ended %s: %s", status, words)
	}
	taskID := value(t, ctx, "read the task's ID", chromedp.Evaluate[string](`document.querySelector('#task-area .task').dataset.task`))
	// The new value, once the edge's report reaches the core.
	devURL := value(t, ctx, "read the URL", chromedp.Location())
	u, _ := url.Parse(devURL)
	u.RawQuery = url.Values{"q": {"WLANConfiguration.1.SSID"}}.Encode()
	deadline := time.Now().Add(20 * time.Second)
	for {
		run(t, ctx, "reload the device", chromedp.Navigate(u.String()), chromedp.WaitVisible(chromedp.CSS(leaf)))
		v := value(t, ctx, "read the SSID", chromedp.Text(chromedp.CSS(leaf+` .pvalue`)))
		if strings.TrimSpace(v) == "console-ssid" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device page shows SSID %q 20 s after the task, want console-ssid", v)
		}
		time.Sleep(300 * time.Millisecond)
	}
	run(t, ctx, "open the tree at the SSID", chromedp.Navigate(u.Scheme+"://"+u.Host+u.EscapedPath()+"?task="+url.QueryEscape(taskID)+"&path="+url.QueryEscape("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.")),
		chromedp.WaitVisible(chromedp.CSS(leaf)))
	shot(t, ctx, shots, "console-device.png")

	// A filter that does not parse says where.
	run(t, ctx, "a bad filter",
		chromedp.Navigate(base+"devices?filter="+url.QueryEscape("DeviceID.ProductClass = ")),
		chromedp.WaitVisible(chromedp.CSS(`#filter-error`)),
	)
	msg := value(t, ctx, "read the filter error", chromedp.Text(chromedp.CSS(`#filter-error`)))
	if !strings.Contains(msg, "line 1, column") {
		t.Fatalf("bad filter error %q: want its position", msg)
	}
	shot(t, ctx, shots, "console-filter-error.png")

	// A read token: the same device page, without a write button.
	run(t, ctx, "sign out", chromedp.Click(chromedp.CSS(`.who button`)), chromedp.WaitVisible(chromedp.CSS(`#token`)))
	signIn(viewer.Token)
	run(t, ctx, "open the device read-only", chromedp.Navigate(u.String()), chromedp.WaitVisible(chromedp.CSS(leaf)))
	writes := value(t, ctx, "count write controls", chromedp.Evaluate[int](
		`document.querySelectorAll('#h-actions, details.edit, form[action*="/tags"], form[action*="/tasks"], button.danger').length`))
	if writes != 0 {
		t.Fatalf("a read token's device page shows %d write controls", writes)
	}
	who := value(t, ctx, "who", chromedp.Text(chromedp.CSS(`.who`)))
	if !strings.Contains(who, "viewer") || !strings.Contains(who, "read") {
		t.Fatalf("header says %q, want the read token's name and scope", who)
	}
	shot(t, ctx, shots, "console-device-read.png")
}

// TestConsoleEdgeInBrowser: a standalone edge serves the console for its
// own devices: sign in with the admin token it wrote, the overview without
// the core's edges and rollouts, the device list without tags, a TR-098
// device's SSID set from the tree and followed live; a read token sees no
// write control.
func TestConsoleEdgeInBrowser(t *testing.T) {
	exe := chromium()
	if exe == "" {
		t.Skip("SKIPPED: no Chromium found (apt-get install chromium, or set EDGEACS_CHROMIUM): the console's browser tests did not run")
	}
	shots := artifactsDir(t)
	bin := coreBuild(t)
	dir := t.TempDir()
	cwmpAddr, apiAddr := coreFreeAddr(t), coreFreeAddr(t)
	logPath := filepath.Join(dir, "edge.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "edge", "--standalone", "--id", "pop1", "--data", filepath.Join(dir, "data"),
		"--cwmp-addr", cwmpAddr, "--api-addr", apiAddr, "--stun-addr", freeUDPAddr(t), "--username", "cpe", "--password", "cpe-secret")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-waited
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("edge log:\n%s", tail(string(out), 4000))
		}
	}()
	api := "http://" + apiAddr
	admin := readAdminToken(t, filepath.Join(dir, "data"))
	useToken(apiAddr, admin)
	fl, err := sim.New(sim.Config{ACSURL: "http://" + cwmpAddr + "/", Count: 2, Model: sim.ModelTR098, Seed: 3,
		Username: "cpe", Password: "cpe-secret", PoolConnections: true, TimeScale: 0.01, Ramp: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	waitUntil(t, 30*time.Second, "the edge to serve its API", func() bool {
		resp, err := http.Get(api + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	if err := fl.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "2 devices in the edge", func() bool {
		resp, err := http.Get(api + "/api/v1/devices?limit=1")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("X-Total-Count") == "2"
	})
	resp, err := http.Post(api+"/api/v1/tokens", "application/json", strings.NewReader(`{"name":"viewer","scope":"read"}`))
	if err != nil {
		t.Fatal(err)
	}
	var viewer struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&viewer)
	resp.Body.Close()
	if err != nil || viewer.Token == "" {
		t.Fatalf("read token: %d %v", resp.StatusCode, err)
	}

	base := api + "/console/"
	ctx := newBrowser(t, exe)
	signIn := func(token string) {
		t.Helper()
		run(t, ctx, "sign in",
			chromedp.Navigate(base),
			chromedp.WaitVisible(chromedp.CSS(`#token`)),
			chromedp.SendKeys(chromedp.CSS(`#token`), token),
			chromedp.Submit(chromedp.CSS(`#token`)),
			chromedp.WaitVisible(chromedp.CSS(`#count-total`)),
		)
	}
	signIn(admin)
	waitJS(t, ctx, "the overview counts 2 devices, without edges or rollouts",
		`document.querySelector('#count-total').innerText === '2' && !document.querySelector('#h-edges') && !document.querySelector('#h-rollouts')`, 5*time.Second)
	shot(t, ctx, shots, "console-edge-overview.png")

	run(t, ctx, "list the devices", chromedp.Navigate(base+"devices"), chromedp.WaitVisible(chromedp.CSS(`table.devices`)))
	heads := value(t, ctx, "read the headers", chromedp.Evaluate[[]string](`[...document.querySelectorAll('table.devices thead th')].map(th => th.innerText.trim())`))
	if slices.Contains(heads, "Tags") || len(heads) != 6 {
		t.Fatalf("device table headers %v: want no Tags", heads)
	}
	ssid := "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"
	leaf := fmt.Sprintf(`li.leaf[data-path=%q]`, ssid)
	status, words := consoleSetSSID(t, ctx, leaf, "edge-ssid")
	if status != "done" || !strings.Contains(words, "is now edge-ssid") {
		t.Fatalf("the set task ended %s: %s", status, words)
	}
	devURL := value(t, ctx, "read the URL", chromedp.Location())
	u, _ := url.Parse(devURL)
	u.RawQuery = url.Values{"path": {"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1."}}.Encode()
	run(t, ctx, "reload the device", chromedp.Navigate(u.String()), chromedp.WaitVisible(chromedp.CSS(leaf)))
	if v := value(t, ctx, "read the SSID", chromedp.Text(chromedp.CSS(leaf+` .pvalue`))); strings.TrimSpace(v) != "edge-ssid" {
		t.Fatalf("the device page shows SSID %q, want edge-ssid", v)
	}
	shot(t, ctx, shots, "console-edge-device.png")

	run(t, ctx, "sign out", chromedp.Click(chromedp.CSS(`.who button`)), chromedp.WaitVisible(chromedp.CSS(`#token`)))
	signIn(viewer.Token)
	run(t, ctx, "open the device read-only", chromedp.Navigate(u.String()), chromedp.WaitVisible(chromedp.CSS(leaf)))
	writes := value(t, ctx, "count write controls", chromedp.Evaluate[int](
		`document.querySelectorAll('#h-actions, details.edit, form[action*="/tags"], form[action*="/tasks"], button.danger').length`))
	if writes != 0 {
		t.Fatalf("a read token's device page shows %d write controls", writes)
	}
}

// consoleSetSSID opens the first device of the device table on the page,
// finds the SSID parameter (leaf, a selector) by searching the tree, sets
// it to v through its edit form and waits for the live task status to
// turn final. It returns that status and the task's text.
func consoleSetSSID(t *testing.T, ctx context.Context, leaf, v string) (status, words string) {
	t.Helper()
	run(t, ctx, "open a device",
		chromedp.Click(chromedp.CSS(`table.devices tbody tr td a`)),
		chromedp.WaitVisible(chromedp.CSS(`#param-search`)),
	)
	run(t, ctx, "set the SSID",
		chromedp.SendKeys(chromedp.CSS(`#param-search`), "WLANConfiguration.1.SSID"),
		// Click the button, as a person does: a real submit event, which
		// htmx turns into a swap of the tree. (Submit calls form.submit(),
		// which skips the event: a whole-page navigation the next wait
		// could straddle.)
		chromedp.Click(chromedp.CSS(`form[role=search] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(leaf)),
		chromedp.Click(chromedp.CSS(leaf+` details.edit summary`)),
		chromedp.WaitVisible(chromedp.CSS(leaf+` input[name=value]`)),
		chromedp.SetValue(chromedp.CSS(leaf+` input[name=value]`), v),
		chromedp.Click(chromedp.CSS(leaf+` details.edit form button[type=submit]`)),
	)
	// The live status polls until the task is final.
	waitJS(t, ctx, "the set task to finish",
		`(() => { const e = document.querySelector('#task-area .task'); return !!e && ['done','fault','expired'].includes(e.dataset.status) })()`, 30*time.Second)
	status = value(t, ctx, "read the task", chromedp.Evaluate[string](`document.querySelector('#task-area .task').dataset.status`))
	words = value(t, ctx, "read the task", chromedp.Text(chromedp.CSS(`#task-area .task`)))
	return status, words
}

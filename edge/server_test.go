package edge

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// TestBadInputLeavesStateIntact: each malformed or out-of-place request
// gets the right status (or CWMP fault) and the device's stored record,
// parameters and tasks are unchanged.
func TestBadInputLeavesStateIntact(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	victim := newCPE(t, e, "VICTIM01")
	victim.open(cwmp.EventBootstrap)
	finishSession(t, victim)
	e.postTask(victim.id(), `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.DeviceInfo."]}`, "")
	before := e.snapshot(victim.id())

	other := newCPE(t, e, "OTHER001")
	other.open(cwmp.EventBootstrap)
	finishSession(t, other)

	unknown := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0">` +
		`<soap:Header><cwmp:ID soap:mustUnderstand="1">x-42</cwmp:ID></soap:Header>` +
		`<soap:Body><cwmp:X_Vendor_Frobnicate/></soap:Body></soap:Envelope>`
	tests := []struct {
		name   string
		prep   func(c *cpe) // runs before the bad POST
		body   []byte
		want   int
		check  func(t *testing.T, env *cwmp.Envelope, raw []byte)
		cookie func(c *cpe) string
	}{
		{name: "malformed XML", body: []byte("<soap:Envelope><soap:Body><cwmp:Inform>"), want: http.StatusBadRequest},
		{name: "not an envelope", body: []byte("<html><body>hi</body></html>"), want: http.StatusBadRequest},
		{name: "unknown method", body: []byte(unknown), want: http.StatusOK, check: func(t *testing.T, env *cwmp.Envelope, raw []byte) {
			f, ok := env.Body.(*cwmp.Fault)
			if !ok || f.Code != cwmp.FaultACSMethodNotSupported || env.ID != "x-42" {
				t.Fatalf("want fault 8000 echoing x-42, got %s", raw)
			}
		}},
		{name: "body over the limit", body: bytes.Repeat([]byte(" "), 65<<10), want: http.StatusRequestEntityTooLarge},
		{name: "no Inform first", body: envelope(t, "1", &cwmp.TransferComplete{CommandKey: "k"}), want: http.StatusBadRequest},
		{name: "empty POST without session", body: nil, want: http.StatusBadRequest},
		{name: "response without session", body: envelope(t, "1", &cwmp.GetParameterValuesResponse{}), want: http.StatusBadRequest},
		{name: "Inform with another device's cookie", prep: func(c *cpe) {
			other.open(cwmp.EventPeriodic)
			c.cookie = other.cookie
		}, body: victim.informBody([]string{cwmp.EventPeriodic}), want: http.StatusBadRequest},
		{name: "bad DeviceId", body: envelope(t, "1", &cwmp.Inform{DeviceId: cwmp.DeviceID{OUI: "", SerialNumber: ""}}), want: http.StatusBadRequest},
		{name: "answer in the wrong state", prep: func(c *cpe) { c.serial = "OTHER001"; c.open() }, body: envelope(t, "1", &cwmp.RebootResponse{}), want: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCPE(t, e, "VICTIM01")
			if tt.prep != nil {
				tt.prep(c)
			}
			code, env, raw := c.post(tt.body)
			if code != tt.want {
				t.Fatalf("status %d, want %d (%s)", code, tt.want, raw)
			}
			if tt.check != nil {
				tt.check(t, env, raw)
			}
			if after := e.snapshot(victim.id()); !after.equal(before) {
				t.Fatalf("stored state changed:\nbefore %s\nafter  %s", mustJSON(before), mustJSON(after))
			}
		})
	}
}

// TestSessionProtocol covers the HTTP details of the session: the cookie
// with "," separators, gzip bodies, empty bodies made of whitespace, 405,
// a second Inform replacing a live session, and the idle timeout.
func TestSessionProtocol(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.SessionTimeout = time.Second })
	dropDefaultPresets(t, e.node.Cache()) // an empty POST must end the session

	t.Run("comma cookie and gzip", func(t *testing.T) {
		c := newCPE(t, e, "PROTO001")
		c.open()
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write([]byte("  \r\n "))
		zw.Close()
		req, _ := http.NewRequest(http.MethodPost, e.acs+"any/path", &zb)
		req.Header.Set("Cookie", "foo=bar, session="+c.cookie+", x=y")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("empty gzip POST with a comma cookie: %d", resp.StatusCode)
		}
	})

	t.Run("method not allowed", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, e.acs, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("PUT: %d", resp.StatusCode)
		}
	})

	t.Run("second Inform replaces the session", func(t *testing.T) {
		c := newCPE(t, e, "PROTO002")
		c.open()
		first := c.cookie
		c.open()
		if c.cookie == first {
			t.Fatal("the new session reused the cookie")
		}
		if e.node.Server().OpenSessions() != 1 {
			t.Fatalf("%d open sessions, want 1", e.node.Server().OpenSessions())
		}
		old := &cpe{t: t, url: c.url, client: c.client, cookie: first}
		if code, _, _ := old.post(nil); code != http.StatusBadRequest {
			t.Fatalf("replaced session still answered: %d", code)
		}
		if code, _ := c.emptyPost(); code != http.StatusNoContent {
			t.Fatalf("new session: %d", code)
		}
	})

	t.Run("idle timeout", func(t *testing.T) {
		c := newCPE(t, e, "PROTO003")
		c.open()
		waitFor(t, 5*time.Second, "the idle session to expire", func() bool { return e.node.Server().OpenSessions() == 0 })
		if code, _ := c.emptyPost(); code != http.StatusBadRequest {
			t.Fatalf("expired session answered %d", code)
		}
	})
}

func TestOverload(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.MaxConcurrentSessions = 2 })
	for _, s := range []string{"LOAD1", "LOAD2"} {
		newCPE(t, e, s).open()
	}
	c := newCPE(t, e, "LOAD3")
	req, _ := http.NewRequest(http.MethodPost, e.acs, bytes.NewReader(c.informBody([]string{cwmp.EventPeriodic})))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third session: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if _, err := e.node.Cache().Device(c.id()); err == nil {
		t.Fatal("a refused Inform was recorded")
	}
}

// TestFilesServed: files from the store are served on the CWMP listener
// with Range support.
func TestFilesServed(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; c.FilesAuth = boolPtr(false) })
	content := strings.Repeat("0123456789", 1000)
	putFile(t, e, "cfg.bin", "3 Vendor Configuration File", content)
	req, _ := http.NewRequest(http.MethodGet, e.acs+"files/cfg.bin", nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(got) != content[10:20] {
		t.Fatalf("range: %d %q", resp.StatusCode, got)
	}
	resp, err = http.Get(e.acs + "files/nope.bin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing file: %d", resp.StatusCode)
	}
}

// TestGracefulShutdown: a session in flight when Run's context ends is
// ended as dropped, so its running task is pending again after a restart.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	e := startEdge(t, dir, func(c *Config) { c.CPEAuth = AuthNone; c.ShutdownTimeout = 200 * time.Millisecond })
	c := newCPE(t, e, "SHUT0001")
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)
	task := e.postTask(c.id(), `{"name":"reboot"}`, "")
	c.open()
	if code, env := c.emptyPost(); code != http.StatusOK || env.Body.Method() != cwmp.MethodReboot {
		t.Fatalf("want the Reboot, got %d", code)
	}
	e.stop() // the CPE never answers
	e2 := startEdge(t, dir, func(c *Config) { c.CPEAuth = AuthNone })
	got, err := e2.node.Cache().Task(task.ID)
	if err != nil || got.Status != fleet.StatusPending {
		t.Fatalf("task after shutdown mid-session: %+v, %v", got, err)
	}
}

func TestFilesAuth(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.FilesAuth = boolPtr(true) })
	putFile(t, e, "fw.bin", "1 Firmware Upgrade Image", "payload")
	resp, err := http.Get(e.acs + "files/fw.bin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("file without credentials: %d", resp.StatusCode)
	}
	client := &http.Client{Transport: &cwmp.DigestTransport{Username: testUser, Password: testPass}}
	resp, err = client.Get(e.acs + "files/fw.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "payload" {
		t.Fatalf("file with credentials: %d %q", resp.StatusCode, got)
	}
}

func boolPtr(b bool) *bool { return &b }

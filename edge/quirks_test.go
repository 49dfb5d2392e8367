package edge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// rawCPE speaks HTTP/1.1 by hand on one TCP connection, for the quirks an
// http.Client hides: a CPE that never sends the session cookie, chunked
// bodies, the connection a request travels on. It answers digest
// challenges itself.
type rawCPE struct {
	t    testing.TB
	addr string
	conn net.Conn
	br   *bufio.Reader
	// cookie, when set, is sent as the session cookie; nothing sets it
	// from Set-Cookie (the CPE ignores it).
	cookie string
	nc     uint32
	ch     *cwmp.DigestChallenge
}

func dialRaw(t testing.TB, e *testEdge) *rawCPE {
	t.Helper()
	addr := e.node.Addrs().CWMP
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawCPE{t: t, addr: addr, conn: c, br: bufio.NewReader(c)}
}

// post sends body (chunked when asked) with the given Content-Type on the
// connection, answering a digest challenge once, and returns the status
// and the reply body.
func (c *rawCPE) post(body []byte, contentType string, chunked bool) (int, []byte) {
	c.t.Helper()
	for range 2 {
		var req bytes.Buffer
		fmt.Fprintf(&req, "POST / HTTP/1.1\r\nHost: %s\r\n", c.addr)
		if contentType != "" {
			fmt.Fprintf(&req, "Content-Type: %s\r\n", contentType)
		}
		if c.cookie != "" {
			fmt.Fprintf(&req, "Cookie: session=%s\r\n", c.cookie)
		}
		if c.ch != nil {
			c.nc++
			a := cwmp.ComputeDigestAuthorization(*c.ch, http.MethodPost, "/", testUser, testPass, "", c.nc)
			fmt.Fprintf(&req, "Authorization: %s\r\n", a.String())
		}
		if chunked {
			req.WriteString("Transfer-Encoding: chunked\r\n\r\n")
			for rest := body; len(rest) > 0; {
				n := min(len(rest), 100)
				fmt.Fprintf(&req, "%x\r\n%s\r\n", n, rest[:n])
				rest = rest[n:]
			}
			req.WriteString("0\r\n\r\n")
		} else {
			fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n", len(body))
			req.Write(body)
		}
		if _, err := c.conn.Write(req.Bytes()); err != nil {
			c.t.Fatalf("write request: %v", err)
		}
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			c.t.Fatalf("read response: %v", err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && c.ch == nil {
			ch, err := cwmp.ParseDigestChallenge(resp.Header.Get("WWW-Authenticate"))
			if err != nil {
				c.t.Fatalf("challenge: %v", err)
			}
			c.ch, c.nc = &ch, 0
			continue
		}
		return resp.StatusCode, raw
	}
	c.t.Fatal("refused twice")
	return 0, nil
}

// rpc posts body and decodes the reply, which must be a 200 envelope.
func (c *rawCPE) rpc(body []byte, contentType string) *cwmp.Envelope {
	c.t.Helper()
	code, raw := c.post(body, contentType, false)
	if code != http.StatusOK {
		c.t.Fatalf("HTTP %d: %s", code, raw)
	}
	env, err := cwmp.Decode(raw)
	if err != nil {
		c.t.Fatalf("decode reply: %v", err)
	}
	return env
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "cwmp", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureDevice is the device ID of a fixture Inform.
func fixtureDevice(t testing.TB, body []byte, charset string) string {
	t.Helper()
	env, err := cwmp.Decoder{}.DecodeCharset(body, charset)
	if err != nil {
		t.Fatal(err)
	}
	d := env.Body.(*cwmp.Inform).DeviceId
	id, err := fleet.DeviceID(d.OUI, d.ProductClass, d.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestQuirkInforms: each Inform quirk of cwmp/testdata, sent through the
// edge's HTTP server (digest auth, no session cookie, one keep-alive
// connection per device), opens a session, ends with 204 and is stored.
func TestQuirkInforms(t *testing.T) {
	e := startEdge(t, "", nil)
	dropDefaultPresets(t, e.node.Cache())
	for _, tt := range []struct {
		file, contentType string
		chunked           bool
		check             func(t *testing.T, d *Device, params map[string]Parameter)
	}{
		{file: "quirk-http-charset-latin1.xml", contentType: "text/xml; charset=ISO-8859-1", check: func(t *testing.T, d *Device, p map[string]Parameter) {
			if d.Manufacturer != "Société Générale Télécom" {
				t.Errorf("manufacturer %q", d.Manufacturer)
			}
			if v := p["InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"].Value; v != "Café Zoë" {
				t.Errorf("SSID %q", v)
			}
		}},
		{file: "quirk-event-case.xml", check: func(t *testing.T, d *Device, _ map[string]Parameter) {
			if d.LastBoot.IsZero() || d.LastBootstrap.IsZero() {
				t.Errorf("1 boot / 0 Bootstrap not seen: last boot %v, bootstrap %v", d.LastBoot, d.LastBootstrap)
			}
			want := []string{cwmp.EventBoot, cwmp.EventBootstrap, cwmp.EventPeriodic, cwmp.EventMReboot, "X A1B2C3 Custom"}
			if strings.Join(d.LastEvents, "|") != strings.Join(want, "|") {
				t.Errorf("events %q, want %q", d.LastEvents, want)
			}
		}},
		{file: "quirk-currenttime-garbled.xml"},
		{file: "quirk-oui-lowercase.xml", check: func(t *testing.T, d *Device, _ map[string]Parameter) {
			if !strings.HasPrefix(d.ID, "a1b2c3-") {
				t.Errorf("ID %q", d.ID)
			}
		}},
		{file: "quirk-oui-4char.xml"},
		{file: "quirk-oui-5char.xml"},
		{file: "quirk-mustunderstand-true.xml"},
		{file: "quirk-mustunderstand-0.xml"},
		{file: "quirk-array-count-mismatch.xml", check: func(t *testing.T, _ *Device, p map[string]Parameter) {
			if p["InternetGatewayDevice.DeviceInfo.UpTime"].Value != "12" {
				t.Errorf("third parameter of a [1] array not stored: %+v", p)
			}
		}},
		{file: "quirk-no-types.xml", check: func(t *testing.T, _ *Device, p map[string]Parameter) {
			if q := p["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]; q.Value != "1.0" || q.Type != cwmp.TypeString {
				t.Errorf("untyped value stored as %+v", q)
			}
		}},
		{file: "quirk-default-namespace-deviceid.xml", check: func(t *testing.T, d *Device, _ map[string]Parameter) {
			if d.Manufacturer != "Acme" {
				t.Errorf("manufacturer %q", d.Manufacturer)
			}
		}},
		{file: "quirk-crlf-leading-blank.xml"},
		{file: "quirk-no-types.xml", chunked: true}, // a chunked request body
	} {
		t.Run(strings.TrimSuffix(tt.file, ".xml")+map[bool]string{true: "-chunked"}[tt.chunked], func(t *testing.T) {
			body := fixture(t, tt.file)
			id := fixtureDevice(t, body, cwmp.CharsetFromContentType(tt.contentType))
			c := dialRaw(t, e)
			code, raw := c.post(body, tt.contentType, tt.chunked)
			if code != http.StatusOK {
				t.Fatalf("Inform: %d %s", code, raw)
			}
			if env, err := cwmp.Decode(raw); err != nil || env.Body.Method() != cwmp.MethodInformResponse {
				t.Fatalf("Inform answered %s (%v)", raw, err)
			}
			if code, raw := c.post(nil, "", false); code != http.StatusNoContent {
				t.Fatalf("empty POST without the cookie: %d %s", code, raw)
			}
			d := e.device(id)
			params, err := e.node.Cache().Parameters(id)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, d, params)
			}
		})
	}
}

// TestQuirkAnswers: each answer quirk of cwmp/testdata, sent as the CPE's
// answer to a task's RPC through the HTTP server: the good entries are
// used, the bad ones counted, logged and kept for the API, and AddObject's
// InstanceNumber 0 faults the task.
func TestQuirkAnswers(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone })
	dropDefaultPresets(t, e.node.Cache())
	c := newCPE(t, e, "ANSWERS1")
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)
	dev := c.id()
	for _, tt := range []struct {
		file, contentType, task string
		check                   func(t *testing.T, task *fleet.Task)
	}{
		{file: "quirk-gpn-bad-writable.xml", task: `{"name":"getParameterNames","parameterPath":"InternetGatewayDevice.Services.","nextLevel":false}`,
			check: func(t *testing.T, task *fleet.Task) {
				if task.Status != fleet.StatusDone || len(task.Result.ParameterNames) != 6 {
					t.Fatalf("task %s, %d names, want done with 6 of 7", task.Status, len(task.Result.ParameterNames))
				}
				for _, pi := range task.Result.ParameterNames {
					if !pi.Writable {
						t.Errorf("%s not writable", pi.Name)
					}
				}
				if p, err := e.node.Cache().Parameter(dev, "InternetGatewayDevice.Services.FAPService.1.REM.ScanTimeout"); err != nil || p.Writable == nil || !*p.Writable {
					t.Errorf("<Writable>30</Writable> stored as %+v, %v", p, err)
				}
				bm := lastBadMessage(t, e, dev)
				if bm.Outcome != BadPartial || bm.Reason != "invalid_boolean" || !strings.Contains(bm.Error, "Writable") || !strings.Contains(bm.Body, "sometimes") {
					t.Errorf("last bad message %+v", bm)
				}
				if m := e.metric(`edgeacs_edge_cwmp_skipped_entries_total{reason="invalid_boolean"}`); !strings.HasSuffix(m, " 1") {
					t.Errorf("metric %q", m)
				}
			}},
		{file: "quirk-gpv-bad-entries.xml", task: `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.DeviceInfo."]}`,
			check: func(t *testing.T, task *fleet.Task) {
				if task.Status != fleet.StatusDone || len(task.Result.ParameterValues) != 2 {
					t.Fatalf("task %+v", task)
				}
				if m := e.metric(`edgeacs_edge_cwmp_skipped_entries_total{reason="missing_name"}`); !strings.HasSuffix(m, " 2") {
					t.Errorf("metric %q", m)
				}
			}},
		{file: "quirk-gpa-bad-notification.xml", task: `{"name":"getParameterAttributes","parameterNames":["InternetGatewayDevice.DeviceInfo."]}`,
			check: func(t *testing.T, task *fleet.Task) {
				if task.Status != fleet.StatusDone || len(task.Result.ParameterAttributes) != 1 {
					t.Fatalf("task %+v", task)
				}
			}},
		{file: "quirk-leading-dot-name.xml", task: `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.DeviceInfo."]}`,
			check: func(t *testing.T, task *fleet.Task) {
				if p, err := e.node.Cache().Parameter(dev, "InternetGatewayDevice.DeviceInfo.SoftwareVersion"); err != nil || p.Value != "2.0" {
					t.Fatalf("leading-dot name stored as %+v, %v", p, err)
				}
			}},
		{file: "quirk-http-charset-cp1252.xml", contentType: "text/xml; charset=windows-1252", task: `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"]}`,
			check: func(t *testing.T, task *fleet.Task) {
				if v := task.Result.ParameterValues[0].Value; v != "Bob’s €5 WiFi" {
					t.Fatalf("SSID %q", v)
				}
			}},
		{file: "quirk-http-charset-declared.xml", contentType: "text/xml; charset=ISO-8859-1", task: `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID"]}`,
			check: func(t *testing.T, task *fleet.Task) {
				if v := task.Result.ParameterValues[0].Value; v != "Café" {
					t.Fatalf("SSID %q", v)
				}
			}},
		{file: "quirk-addobject-instance-0.xml", task: `{"name":"addObject","objectName":"InternetGatewayDevice.LANDevice.1.WLANConfiguration."}`,
			check: func(t *testing.T, task *fleet.Task) {
				if task.Status != fleet.StatusFault || task.Fault.Code != FaultCodeInvalidResponse || !strings.Contains(task.Fault.Message, "InstanceNumber 0") {
					t.Fatalf("task %s, fault %+v", task.Status, task.Fault)
				}
				if _, err := e.node.Cache().Parameter(dev, "InternetGatewayDevice.LANDevice.1.WLANConfiguration.0."); err == nil {
					t.Fatal("instance 0 recorded")
				}
			}},
	} {
		t.Run(strings.TrimSuffix(tt.file, ".xml"), func(t *testing.T) {
			task := e.postTask(dev, tt.task, "")
			c.open()
			code, env := c.emptyPost()
			if code != http.StatusOK || env == nil {
				t.Fatalf("want the task's RPC, got %d", code)
			}
			req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(fixture(t, tt.file)))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			req.Header.Set("Cookie", "session="+c.cookie)
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				finishSession(t, c)
			case http.StatusNoContent:
			default:
				t.Fatalf("answer: %d %s", resp.StatusCode, raw)
			}
			tt.check(t, e.waitTask(task.ID, 10*time.Second))
		})
	}
}

func lastBadMessage(t testing.TB, e *testEdge, dev string) BadMessage {
	t.Helper()
	code, body := apiDo(t, e, http.MethodGet, "/api/v1/devices/"+url.PathEscape(dev)+"/last-bad-message", "")
	if code != http.StatusOK {
		t.Fatalf("last-bad-message: %d %s", code, body)
	}
	var m BadMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestUnreadableMessageKept: a refused Inform is counted by reason, logged
// once a minute per device, and kept (secrets masked) for the API; a
// device with none answers 404.
func TestUnreadableMessageKept(t *testing.T) {
	e := startEdge(t, "", nil)
	c := newCPE(t, e, "BROKEN01")
	good := string(c.informBody([]string{cwmp.EventPeriodic}, cwmp.ParameterValue{Name: "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase", Value: "wifi-secret"}))
	// Cut off inside the Envelope: unparsable, but the DeviceId is there.
	broken := []byte(good[:strings.Index(good, "</soap-env:Body>")] + "<Password>hunter2</Password>")
	for range 3 {
		if code, _, raw := c.post(broken); code != http.StatusBadRequest {
			t.Fatalf("broken Inform: %d %s", code, raw)
		}
	}
	m := lastBadMessage(t, e, c.id())
	if m.Outcome != BadRejected || m.Reason != "malformed" || m.Size != len(broken) || m.BodyEncoding != "text" {
		t.Fatalf("last bad message %+v", m)
	}
	for _, secret := range []string{"cr-pass", "wifi-secret", "hunter2"} {
		if strings.Contains(m.Body, secret) {
			t.Errorf("secret %q in the kept message", secret)
		}
	}
	if !strings.Contains(m.Body, "ConnectionRequestPassword</Name><Value xsi:type=\"xsd:string\">"+fleet.SecretMask) {
		t.Errorf("password not masked in place:\n%s", m.Body)
	}
	if got := strings.Count(e.logs.String(), "CPE message could not be fully read"); got != 1 {
		t.Errorf("%d log lines for 3 bad messages of one device in a minute, want 1", got)
	}
	if m := e.metric(`edgeacs_edge_cwmp_rejected_messages_total{reason="malformed"}`); !strings.HasSuffix(m, " 3") {
		t.Errorf("metric %q", m)
	}
	if code, body := apiDo(t, e, http.MethodGet, "/api/v1/devices/NOBODY-1/last-bad-message", ""); code != http.StatusNotFound {
		t.Errorf("device without one: %d %s", code, body)
	}
}

// TestCookielessSessions: a CPE that never sends the cookie keeps its
// session on its keep-alive connection; a session that ended frees the
// connection for the next one; a cookie, when sent, wins; the tracking
// ends with the connection.
func TestCookielessSessions(t *testing.T) {
	e := startEdge(t, "", nil)
	dropDefaultPresets(t, e.node.Cache())
	a := newCPE(t, e, "NOCOOK01")
	b := newCPE(t, e, "NOCOOK02")
	a.open(cwmp.EventBootstrap)
	finishSession(t, a)
	task := e.postTask(a.id(), `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]}`, "")

	c := dialRaw(t, e)
	c.rpc(a.informBody([]string{cwmp.EventPeriodic}), "text/xml")
	env := c.rpc(nil, "")
	if env.Body.Method() != cwmp.MethodGetParameterValues {
		t.Fatalf("want the GPV on the cookie-less connection, got %s", env.Body.Method())
	}
	answer := &cwmp.GetParameterValuesResponse{ParameterList: []cwmp.ParameterValue{{Name: "InternetGatewayDevice.DeviceInfo.SoftwareVersion", Value: "9.9", Type: cwmp.TypeString}}}
	if code, raw := c.post(envelope(t, env.ID, answer), "text/xml", false); code != http.StatusNoContent {
		t.Fatalf("answer: %d %s", code, raw)
	}
	if got := e.waitTask(task.ID, 5*time.Second); got.Status != fleet.StatusDone {
		t.Fatalf("task %+v", got)
	}
	// The session ended: the connection carries none until an Inform.
	if code, _ := c.post(nil, "", false); code != http.StatusBadRequest {
		t.Fatalf("empty POST after the session ended: %d", code)
	}
	// Another device's session on the same connection.
	c.rpc(b.informBody([]string{cwmp.EventBootstrap}), "text/xml")
	if code, raw := c.post(nil, "", false); code != http.StatusNoContent {
		t.Fatalf("second session on the connection: %d %s", code, raw)
	}
	if _, err := e.node.Cache().Device(b.id()); err != nil {
		t.Fatal(err)
	}

	// A cookie wins over the connection: an unknown one is no session.
	c.rpc(a.informBody([]string{cwmp.EventPeriodic}), "text/xml")
	c.cookie = "00000000000000000000000000000000"
	if code, _ := c.post(nil, "", false); code != http.StatusBadRequest {
		t.Fatalf("unknown cookie on a connection with a session: %d", code)
	}
	// ... and a live one routes to its own session, not the connection's.
	b.open()
	c.cookie = b.cookie
	if code, _ := c.post(nil, "", false); code != http.StatusNoContent {
		t.Fatalf("b's cookie on a's connection: %d", code)
	}
	if code, _ := b.emptyPost(); code != http.StatusBadRequest {
		t.Fatal("b's session was not the one ended")
	}
	c.cookie = ""
	if code, _ := c.post(nil, "", false); code != http.StatusNoContent {
		t.Fatalf("a's session on its connection: %d", code)
	}

	tracked := func() *connTrack {
		s := e.node.Server()
		s.connMu.Lock()
		defer s.connMu.Unlock()
		for conn, ct := range s.conns {
			if conn.RemoteAddr().String() == c.conn.LocalAddr().String() {
				return ct
			}
		}
		return nil
	}
	if ct := tracked(); ct == nil || ct.sess.Load() != nil {
		t.Fatal("an open connection between sessions is not tracked, or holds the ended session")
	}
	c.rpc(a.informBody([]string{cwmp.EventPeriodic}), "text/xml")
	ct := tracked()
	if ct == nil || ct.sess.Load() == nil {
		t.Fatal("the connection is not tracked with its session")
	}
	c.conn.Close()
	waitFor(t, 5*time.Second, "the closed connection to be forgotten", func() bool { return tracked() == nil })
	if ct.sess.Load() != nil {
		t.Fatal("the closed connection's tracker still holds its session")
	}
}

// TestShutdownGrace: with sessions still open (one idle after its
// Inform, one holding an RPC the CPE never answers, one request whose
// body never finishes), Run returns within the default 3 s grace after
// its context ends, and a restart finds everything committed before.
func TestShutdownGrace(t *testing.T) {
	dir := t.TempDir()
	e := startEdge(t, dir, func(c *Config) { c.CPEAuth = AuthNone; c.ShutdownTimeout = 0 })
	if e.node.cfg.ShutdownTimeout != DefaultShutdownTimeout {
		t.Fatalf("default grace %s", e.node.cfg.ShutdownTimeout)
	}
	dropDefaultPresets(t, e.node.Cache())
	idle := newCPE(t, e, "GRACE001")
	idle.open(cwmp.EventBootstrap)
	busy := newCPE(t, e, "GRACE002")
	busy.open(cwmp.EventBootstrap)
	finishSession(t, busy)
	done := e.postTask(busy.id(), `{"name":"getParameterValues","parameterNames":["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]}`, "")
	busy.open()
	finishSession(t, busy)
	if got := e.waitTask(done.ID, 5*time.Second); got.Status != fleet.StatusDone {
		t.Fatalf("task %+v", got)
	}
	held := e.postTask(busy.id(), `{"name":"reboot"}`, "")
	busy.open()
	if code, env := busy.emptyPost(); code != http.StatusOK || env.Body.Method() != cwmp.MethodReboot {
		t.Fatalf("want the Reboot, got %d", code)
	}
	slow := dialRaw(t, e)
	fmt.Fprintf(slow.conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n<soap")

	start := time.Now()
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10 s after cancel")
	}
	t.Logf("Run returned %s after cancel (grace %s)", time.Since(start).Round(time.Millisecond), DefaultShutdownTimeout)
	// The grace, plus closing the cache on a busy box.
	if took := time.Since(start); took > DefaultShutdownTimeout+1500*time.Millisecond {
		t.Fatalf("shutdown took %s, grace %s", took, DefaultShutdownTimeout)
	}

	e2 := startEdge(t, dir, func(c *Config) { c.CPEAuth = AuthNone })
	if _, err := e2.node.Cache().Device(idle.id()); err != nil {
		t.Fatalf("the idle session's Inform: %v", err)
	}
	if got, err := e2.node.Cache().Task(done.ID); err != nil || got.Status != fleet.StatusDone {
		t.Fatalf("finished task after restart: %+v %v", got, err)
	}
	if got, err := e2.node.Cache().Task(held.ID); err != nil || got.Status != fleet.StatusPending {
		t.Fatalf("unanswered task after restart: %+v %v", got, err)
	}
}

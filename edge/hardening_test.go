package edge

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// The tests of this file follow the items of issue 10 ("Hardening") that
// concern the edge, one test per item, each through the real listeners.

// rawCWMP posts body to e's CWMP listener with the given header pairs and
// no digest handling of its own.
func rawCWMP(t testing.TB, e *testEdge, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.acs, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// freshChallenge asks e for a digest challenge (with an Inform, as a CPE
// does) and returns the first one offered (MD5).
func freshChallenge(t testing.TB, e *testEdge) cwmp.DigestChallenge {
	t.Helper()
	resp, raw := rawCWMP(t, e, newCPE(t, e, "CHALLENGE").informBody(nil))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no challenge: %s %s", resp.Status, raw)
	}
	ch, err := cwmp.ParseDigestChallenge(resp.Header.Values("WWW-Authenticate")[0])
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// digestFor answers ch for a POST to "/" with nonce count nc.
func digestFor(ch cwmp.DigestChallenge, user, pass string, nc uint32) string {
	return cwmp.ComputeDigestAuthorization(ch, http.MethodPost, "/", user, pass, "", nc).String()
}

// apiDo sends one request to e's local API.
func apiDo(t testing.TB, e *testEdge, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, strings.TrimSuffix(e.api, "/api/v1")+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func hostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	return u.Host
}

// TestPreProvisionedCredentials: credentials PUT through the API before a
// device ever informed apply from its first Inform: its own password gets
// in, the shared one does not; deleting them brings the shared one back.
func TestPreProvisionedCredentials(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.AuthFailuresPerMinute = 1000 })
	credsPath := func(serial string) string {
		return "/api/v1/devices/" + url.PathEscape(newCPE(t, e, serial).id()) + "/credentials"
	}
	for i, tt := range []struct {
		name, user, pass string
		want             int
	}{
		{"its own credentials", "pre-user", "pre-pass", http.StatusOK},
		{"the shared credentials", testUser, testPass, http.StatusUnauthorized},
		{"its own username with the shared password", "pre-user", testPass, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			serial := fmt.Sprintf("PREPROV%d", i) // never seen before
			if code, body := apiDo(t, e, http.MethodPut, credsPath(serial), `{"username": "pre-user", "password": "pre-pass"}`); code != http.StatusNoContent {
				t.Fatalf("PUT credentials: %d %s", code, body)
			}
			c := withCreds(t, e, serial, tt.user, tt.pass, false)
			code, _, raw := c.post(c.informBody([]string{cwmp.EventBootstrap}))
			if code != tt.want {
				t.Fatalf("first Inform: %d, want %d (%s)", code, tt.want, raw)
			}
			if code == http.StatusOK {
				finishSession(t, c)
				e.device(c.id())
			} else if _, err := e.node.Cache().Device(c.id()); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a refused Inform was recorded: %v", err)
			}
		})
	}
	if code, body := apiDo(t, e, http.MethodDelete, credsPath("PREPROV1"), ""); code != http.StatusNoContent {
		t.Fatalf("DELETE credentials: %d %s", code, body)
	}
	c := withCreds(t, e, "PREPROV1", testUser, testPass, false)
	c.open()
	finishSession(t, c)
}

// TestDigestReplay: a captured Authorization header opens nothing, for its
// own device or another; a nonce's count must rise; the RFC 2069 form
// without qop is refused unless configured, and then works once per nonce.
func TestDigestReplay(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.AuthFailuresPerMinute = 1000 })
	a, b, c := newCPE(t, e, "REPLAY0A"), newCPE(t, e, "REPLAY0B"), newCPE(t, e, "REPLAY0C")
	ch := freshChallenge(t, e)
	captured := digestFor(ch, testUser, testPass, 1)
	if resp, raw := rawCWMP(t, e, a.informBody(nil), "Authorization", captured); resp.StatusCode != http.StatusOK {
		t.Fatalf("genuine Inform: %s %s", resp.Status, raw)
	}
	noQOP := ch
	noQOP.QOP = ""
	// In order: each step sees the nonce as the previous ones left it.
	steps := []struct {
		name  string
		body  []byte
		auth  string
		want  int
		stale bool // the 401 says stale=true: right password, spent nonce
	}{
		{"the captured header again", a.informBody(nil), captured, http.StatusUnauthorized, true},
		{"the captured header for another device", b.informBody([]string{cwmp.EventBootstrap}), captured, http.StatusUnauthorized, true},
		{"the same count with a new cnonce", b.informBody(nil), digestFor(ch, testUser, testPass, 1), http.StatusUnauthorized, true},
		{"a higher count", c.informBody(nil), digestFor(ch, testUser, testPass, 5), http.StatusOK, false},
		{"a count below the last", b.informBody(nil), digestFor(ch, testUser, testPass, 4), http.StatusUnauthorized, true},
		{"no qop (RFC 2069)", b.informBody(nil), digestFor(noQOP, testUser, testPass, 0), http.StatusUnauthorized, false},
	}
	for _, st := range steps {
		resp, raw := rawCWMP(t, e, st.body, "Authorization", st.auth)
		if resp.StatusCode != st.want {
			t.Fatalf("%s: %s, want %d (%s)", st.name, resp.Status, st.want, raw)
		}
		if st.want == http.StatusUnauthorized {
			if got := strings.Contains(resp.Header.Get("WWW-Authenticate"), "stale=true"); got != st.stale {
				t.Fatalf("%s: challenge %q, want stale=%v", st.name, resp.Header.Get("WWW-Authenticate"), st.stale)
			}
		}
	}
	if _, err := e.node.Cache().Device(b.id()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a replayed header recorded device B: %v", err)
	}
	if m := e.metric(`edgeacs_edge_auth_failures_total{reason="replay"}`); !strings.HasSuffix(m, " 4") {
		t.Fatalf("replay metric %q", m)
	}
	if m := e.metric(`edgeacs_edge_auth_failures_total{reason="no_qop"}`); !strings.HasSuffix(m, " 1") {
		t.Fatalf("no_qop metric %q", m)
	}

	t.Run("no qop allowed by configuration", func(t *testing.T) {
		e := startEdge(t, "", func(c *Config) { c.AuthFailuresPerMinute = 1000; setAllowDigestWithoutQOP(c) })
		d := newCPE(t, e, "REPLAY0D")
		ch := freshChallenge(t, e)
		ch.QOP = ""
		h := digestFor(ch, testUser, testPass, 0)
		if resp, raw := rawCWMP(t, e, d.informBody(nil), "Authorization", h); resp.StatusCode != http.StatusOK {
			t.Fatalf("first use: %s %s", resp.Status, raw)
		}
		if resp, _ := rawCWMP(t, e, d.informBody(nil), "Authorization", h); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("second use of a no-qop nonce: %s", resp.Status)
		}
	})
}

// TestDigestIdentityBinding: a session's credentials must belong to the
// Inform's device. A device's own credentials open its sessions only; the
// shared ones open those of devices without their own; a request later in
// a session cannot switch to another device's credentials.
func TestDigestIdentityBinding(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.AuthFailuresPerMinute = 1000 })
	ids := map[string]string{}
	for _, serial := range []string{"BINDING0A", "BINDING0B", "BINDING0C"} {
		ids[serial] = newCPE(t, e, serial).id()
	}
	// A and C have credentials of their own (provisioned before any
	// Inform); B uses the shared ones.
	for serial, creds := range map[string]string{"BINDING0A": `{"username": "a-user", "password": "a-pass"}`, "BINDING0C": `{"username": "c-user", "password": "c-pass"}`} {
		if code, body := apiDo(t, e, http.MethodPut, "/api/v1/devices/"+url.PathEscape(ids[serial])+"/credentials", creds); code != http.StatusNoContent {
			t.Fatalf("PUT credentials: %d %s", code, body)
		}
	}
	for _, tt := range []struct {
		name, serial, user, pass string
		want                     int
	}{
		{"A's credentials as A", "BINDING0A", "a-user", "a-pass", http.StatusOK},
		{"A's credentials as B", "BINDING0B", "a-user", "a-pass", http.StatusUnauthorized},
		{"A's credentials as C", "BINDING0C", "a-user", "a-pass", http.StatusUnauthorized},
		{"shared credentials as A", "BINDING0A", testUser, testPass, http.StatusUnauthorized},
		{"shared credentials as B", "BINDING0B", testUser, testPass, http.StatusOK},
		{"C's credentials as C", "BINDING0C", "c-user", "c-pass", http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := withCreds(t, e, tt.serial, tt.user, tt.pass, false)
			if code, _, raw := c.post(c.informBody(nil)); code != tt.want {
				t.Fatalf("Inform: %d, want %d (%s)", code, tt.want, raw)
			}
		})
	}
	t.Run("switching credentials inside a session", func(t *testing.T) {
		b := withCreds(t, e, "BINDING0B", testUser, testPass, false)
		b.open()
		ch := freshChallenge(t, e)
		resp, raw := rawCWMP(t, e, nil, "Cookie", "session="+b.cookie, "Authorization", digestFor(ch, "a-user", "a-pass", 1))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("B's session with A's credentials: %s (%s)", resp.Status, raw)
		}
		// The session itself is intact.
		if code, _ := b.emptyPost(); code != http.StatusOK && code != http.StatusNoContent {
			t.Fatalf("B's own next request: %d", code)
		}
	})
}

// stalledRequest sends a request line, headers and the start of a body
// that never completes, and returns the connection and a reader of it.
func stalledRequest(t *testing.T, addr, head, bodyStart string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head+bodyStart); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// TestAuthenticateBeforeBody: a request that cannot authenticate is
// answered from its headers; its body is never decompressed or parsed (a
// gzip bomb or malformed XML is not looked at) and a stalled body delays
// the answer by a second at most. A CPE that sent its whole body keeps its
// connection for the retry with credentials.
func TestAuthenticateBeforeBody(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.MaxBodyBytes = 64 << 10; c.AuthFailuresPerMinute = 1000 })

	t.Run("stalled body without credentials", func(t *testing.T) {
		conn, br := stalledRequest(t, hostPort(e.acs),
			"POST / HTTP/1.1\r\nHost: acs\r\nContent-Type: text/xml\r\nContent-Length: 50000\r\n\r\n", "<soap-env:Envelope")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer while the body stalls: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s, want 401", resp.Status)
		}
	})

	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zw.Write(bytes.Repeat([]byte(" "), 32<<20)) // 32 MiB of spaces in ~32 KB
	zw.Close()
	ch := freshChallenge(t, e)
	for _, tt := range []struct {
		name string
		body []byte
		hdr  []string
	}{
		{"gzip bomb, wrong password", bomb.Bytes(), []string{"Content-Encoding", "gzip", "Authorization", digestFor(ch, testUser, "wrong", 1)}},
		{"gzip bomb, no credentials", bomb.Bytes(), []string{"Content-Encoding", "gzip"}},
		{"malformed XML, malformed credentials", []byte("<soap-env:Envelope><"), []string{"Authorization", "Digest nonsense"}},
		{"malformed XML, no credentials", []byte("<soap-env:Envelope><"), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := rawCWMP(t, e, tt.body, tt.hdr...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s, want 401 before the body is looked at (%s)", resp.Status, raw)
			}
		})
	}
	t.Run("the retry with credentials reuses the connection", func(t *testing.T) {
		c := newCPE(t, e, "REUSE001")
		var conns []bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { conns = append(conns, i.Reused) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost, e.acs, bytes.NewReader(c.informBody(nil)))
		resp, err := c.client.Do(req) // 401, then the same Inform with credentials
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(conns) != 2 || !conns[1] {
			t.Fatalf("%s; connections reused: %v, want [false true]", resp.Status, conns)
		}
	})
	// Authenticated, the decompressed size is still capped.
	c := newCPE(t, e, "BOMB0001")
	c.open()
	if code, _, _ := c.post(bomb.Bytes(), "Content-Encoding", "gzip"); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("gzip bomb in a session: %d, want 413", code)
	}
}

// TestMissingAuthorizationCounted: a CPE's first request without
// credentials is the normal first leg of digest and costs nothing, even
// for many CPEs behind one address starting at once; an address whose
// requests without credentials go unanswered is blocked: once the failure
// limit of them is overdue, each further one counts as a failure.
func TestMissingAuthorizationCounted(t *testing.T) {
	const limit = 5
	e := startEdge(t, "", func(c *Config) { c.AuthFailuresPerMinute = limit; setChallengeGrace(c, time.Second) })

	// 4×limit CPEs from one address at once: each sends its Inform
	// without credentials, gets the challenge, then gets in.
	errs := make(chan error, 4*limit)
	for i := 0; i < 4*limit; i++ {
		go func() {
			c := newCPE(t, e, fmt.Sprintf("HANDSHK%02d", i))
			req, _ := http.NewRequest(http.MethodPost, e.acs, bytes.NewReader(c.informBody(nil)))
			resp, err := c.client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("CPE %d: %s", i, resp.Status)
				}
			}
			errs <- err
		}()
	}
	for i := 0; i < 4*limit; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("a burst of normal handshakes: %v", err)
		}
	}

	body := newCPE(t, e, "NOCREDS1").informBody(nil)
	ask := func() int { resp, _ := rawCWMP(t, e, body); return resp.StatusCode }
	for i := 0; i < limit; i++ {
		if code := ask(); code != http.StatusUnauthorized {
			t.Fatalf("request %d without credentials: %d, want 401", i+1, code)
		}
	}
	time.Sleep(1200 * time.Millisecond) // the challenges are now overdue
	for i := 1; i < limit; i++ {
		if code := ask(); code != http.StatusUnauthorized {
			t.Fatalf("counted request %d: %d, want 401", i, code)
		}
	}
	if code := ask(); code != http.StatusTooManyRequests {
		t.Fatalf("request %d without credentials, %d of them counted: %d, want 429", 2*limit, limit, code)
	}
	if m := e.metric(`edgeacs_edge_auth_failures_total{reason="no_credentials"}`); !strings.HasSuffix(m, fmt.Sprintf(" %d", limit)) {
		t.Fatalf("metric %q", m)
	}
}

// TestUnauthenticatedPerIPCap: with no CPE authentication every Inform is
// unauthenticated while its body is read; one address may have only so
// many of those in flight, the next is refused at once.
func TestUnauthenticatedPerIPCap(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone; setMaxUnauthenticatedPerIP(c, 2) })
	var stalled []net.Conn
	for i := 0; i < 2; i++ {
		conn, _ := stalledRequest(t, hostPort(e.acs),
			"POST / HTTP/1.1\r\nHost: acs\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n", "<soap-env:Envelope")
		stalled = append(stalled, conn)
	}
	waitFor(t, 5*time.Second, "both stalled requests to be held", func() bool { return unauthenticatedInFlight(e, "127.0.0.1") == 2 })
	c := newCPE(t, e, "PERIP001")
	resp, raw := rawCWMP(t, e, c.informBody(nil))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third unauthenticated request: %s %s, want 429 with Retry-After", resp.Status, raw)
	}
	for _, conn := range stalled {
		conn.Close()
	}
	waitFor(t, 5*time.Second, "the slots to be released", func() bool { return unauthenticatedInFlight(e, "127.0.0.1") == 0 })
	c.open()
}

// TestFilesNeedSignatureOrCredentials: /files/ on the CWMP listener serves
// a file only on the signed, expiring URL the edge put in a Download, or
// to a client with CPE credentials; files_auth=false opens it.
func TestFilesNeedSignatureOrCredentials(t *testing.T) {
	e := startEdge(t, "", nil) // files_auth left at its default
	putFile(t, e, "fw.bin", "1 Firmware Upgrade Image", "firmware-bytes")
	putFile(t, e, "cfg.bin", "3 Vendor Configuration File", "password=hunter2")

	c := newCPE(t, e, "FILES001")
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)
	e.postTask(c.id(), `{"name": "download", "fileType": "1 Firmware Upgrade Image", "fileName": "fw.bin"}`, "")
	c.open()
	code, env := c.emptyPost()
	d, ok := env.Body.(*cwmp.Download)
	if code != http.StatusOK || !ok {
		t.Fatalf("want the Download, got %d %+v", code, env)
	}
	if len(d.URL) > 256 || !strings.Contains(d.URL, "sig=") {
		t.Fatalf("Download URL %q: want a signed URL of at most 256 characters", d.URL)
	}
	signed, _ := url.Parse(d.URL)
	tampered := *signed
	q := tampered.Query()
	sig := []byte(q.Get("sig"))
	sig[0] ^= 1
	q.Set("sig", string(sig))
	tampered.RawQuery = q.Encode()

	plain := &http.Client{}
	withCPECreds := &http.Client{Transport: &cwmp.DigestTransport{Username: testUser, Password: testPass}}
	for _, tt := range []struct {
		name   string
		url    string
		client *http.Client
		want   int
	}{
		{"no signature, no credentials", e.acs + "files/cfg.bin", plain, http.StatusUnauthorized},
		{"the Download's signed URL", d.URL, plain, http.StatusOK},
		{"its signature on another file", e.acs + "files/cfg.bin?" + signed.RawQuery, plain, http.StatusForbidden},
		{"a tampered signature", tampered.String(), plain, http.StatusForbidden},
		{"an expired signature", e.acs + "files/fw.bin?" + signFileURL(e, "fw.bin", time.Now().Add(-time.Minute)), plain, http.StatusForbidden},
		{"CPE credentials", e.acs + "files/cfg.bin", withCPECreds, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s: %s %s, want %d", tt.url, resp.Status, body, tt.want)
			}
			if tt.want != http.StatusOK && strings.Contains(string(body), "hunter2") {
				t.Fatal("refused, but the content was sent")
			}
		})
	}

	t.Run("files_auth off", func(t *testing.T) {
		e := startEdge(t, "", func(c *Config) { setFilesAuth(c, false) })
		putFile(t, e, "open.bin", "1 Firmware Upgrade Image", "open")
		resp, err := http.Get(e.acs + "files/open.bin")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s, want 200", resp.Status)
		}
	})
}

// informWithTimeout is c's Inform asking for a cwmp:SessionTimeout.
func informWithTimeout(t *testing.T, c *cpe, seconds uint32) []byte {
	env, err := cwmp.Decode(c.informBody(nil))
	if err != nil {
		t.Fatal(err)
	}
	env.SessionTimeout = seconds
	b, err := cwmp.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSessionTimeoutCeiling: the server's session timeout is the ceiling
// whatever cwmp:SessionTimeout a CPE asks for, so idle CPEs cannot hold
// the session slots for good.
func TestSessionTimeoutCeiling(t *testing.T) {
	e := startEdge(t, "", func(c *Config) {
		c.CPEAuth = AuthNone
		c.SessionTimeout = time.Second
		c.MaxConcurrentSessions = 3
	})
	for i, asked := range []uint32{math.MaxUint32, 3600, 2} {
		c := newCPE(t, e, fmt.Sprintf("GREEDY%02d", i))
		if code, _, raw := c.post(informWithTimeout(t, c, asked)); code != http.StatusOK {
			t.Fatalf("Inform asking for %d s: %d %s", asked, code, raw)
		}
	}
	late := newCPE(t, e, "LATECOMER")
	if code, _, _ := late.post(late.informBody(nil)); code != http.StatusServiceUnavailable {
		t.Fatalf("a fourth session while three are open: %d, want 503", code)
	}
	// The server's 1 s applies (the janitor looks every 250 ms).
	waitFor(t, 5*time.Second, "the idle sessions to end", func() bool { return e.node.Server().OpenSessions() == 0 })
	late.open()
}

// TestOversizedIdentifiers: identifiers over the standards' sizes are
// refused with 400 before anything is stored (an OUI is let up to 64
// characters, as CPEs exceed TR-069's six hex digits); a parameter list
// entry with an over-long name is left out, in an Inform and in a CPE's
// answer, and the rest kept; nothing logged carries the payload whole.
func TestOversizedIdentifiers(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.AuthFailuresPerMinute = 1000 })
	long := func(n int) string { return strings.Repeat("X", n) }
	path := func(n int) string {
		p := "InternetGatewayDevice.X_Test."
		return p + strings.Repeat("a", n-len(p))
	}
	for i, tt := range []struct {
		name   string
		mutate func(c *cpe)
		param  string
		want   int
	}{
		{"OUI of 6 hex digits", nil, "", http.StatusOK},
		{"OUI of 64 characters", func(c *cpe) { c.oui = long(64) }, "", http.StatusOK},
		{"OUI of 65 characters", func(c *cpe) { c.oui = long(65) }, "", http.StatusBadRequest},
		{"ProductClass of 64", func(c *cpe) { c.pc = long(64) }, "", http.StatusOK},
		{"ProductClass of 65", func(c *cpe) { c.pc = long(65) }, "", http.StatusBadRequest},
		{"SerialNumber of 64", func(c *cpe) { c.serial = long(64) }, "", http.StatusOK},
		{"SerialNumber of 65", func(c *cpe) { c.serial = long(65) }, "", http.StatusBadRequest},
		{"SerialNumber of 100 KB", func(c *cpe) { c.serial = long(100 << 10) }, "", http.StatusBadRequest},
		{"parameter path of 256", nil, path(256), http.StatusOK},
		{"parameter path of 257", nil, path(257), http.StatusOK},
		{"parameter path of 70 KB", nil, path(70 << 10), http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCPE(t, e, fmt.Sprintf("LIMIT%03d", i))
			if tt.mutate != nil {
				tt.mutate(c)
			}
			var params []cwmp.ParameterValue
			if tt.param != "" {
				params = append(params, cwmp.ParameterValue{Name: tt.param, Value: "v", Type: cwmp.TypeString})
			}
			code, _, raw := c.post(c.informBody([]string{cwmp.EventBootstrap}, params...))
			if code != tt.want {
				t.Fatalf("Inform: %d, want %d (%.200s)", code, tt.want, raw)
			}
			if code == http.StatusOK {
				finishSession(t, c)
				if len(tt.param) > maxParamPathLen {
					if _, err := e.node.Cache().Parameter(c.id(), tt.param); !errors.Is(err, ErrNotFound) {
						t.Fatalf("oversized path stored: %v", err)
					}
					if _, err := e.node.Cache().Parameter(c.id(), "InternetGatewayDevice.DeviceInfo.SoftwareVersion"); err != nil {
						t.Fatalf("the Inform's other parameters were not stored: %v", err)
					}
				}
				return
			}
			if _, err := e.node.Cache().Device(c.id()); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused Inform recorded: %v", err)
			}
		})
	}

	t.Run("parameter path of 300 in a GetParameterValuesResponse", func(t *testing.T) {
		c := newCPE(t, e, "LIMITGPV")
		c.open(cwmp.EventBootstrap)
		finishSession(t, c)
		e.postTask(c.id(), `{"name": "getParameterValues", "parameterNames": ["InternetGatewayDevice.X_Test."]}`, "")
		c.open()
		code, env := c.emptyPost()
		if code != http.StatusOK || env.Body.Method() != cwmp.MethodGetParameterValues {
			t.Fatalf("want the GPV, got %d", code)
		}
		answer := &cwmp.GetParameterValuesResponse{ParameterList: []cwmp.ParameterValue{{Name: path(300), Value: "v", Type: cwmp.TypeString},
			{Name: "InternetGatewayDevice.X_Test.ok", Value: "w", Type: cwmp.TypeString}}}
		code, _, raw := c.post(envelope(t, env.ID, answer))
		switch code {
		case http.StatusOK:
			finishSession(t, c)
		case http.StatusNoContent:
		default:
			t.Fatalf("answer: %d, want the entry dropped, not the message (%.200s)", code, raw)
		}
		if _, err := e.node.Cache().Parameter(c.id(), path(300)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("oversized path stored: %v", err)
		}
		if p, err := e.node.Cache().Parameter(c.id(), "InternetGatewayDevice.X_Test.ok"); err != nil || p.Value != "w" {
			t.Fatalf("the good entry: %+v %v", p, err)
		}
	})

	for _, line := range strings.Split(e.logs.String(), "\n") {
		if len(line) > 8<<10 {
			t.Fatalf("a log line of %d bytes: %.300s…", len(line), line)
		}
	}
}

// TestAPIServerTimeouts: the local API does not let a client hold a
// connection forever: slow headers, a body trickled a byte at a time, a
// stalled file upload and an idle keep-alive connection are all cut off.
func TestAPIServerTimeouts(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { setAPITimeouts(c, 500*time.Millisecond) })
	addr := e.node.Addrs().API
	for _, tt := range []struct {
		name    string
		start   string
		trickle string // sent every 100 ms until the server hangs up
	}{
		{"headers sent slowly", "GET /healthz HTTP/1.1\r\nHost: api\r\n", "X-Slow: 1\r\n"},
		{"body sent a byte at a time", "PUT /api/v1/devices/x/credentials HTTP/1.1\r\nHost: api\r\nContent-Length: 10000\r\n\r\n{", " "},
		{"file upload that stalls", "PUT /api/v1/files/slow.bin HTTP/1.1\r\nHost: api\r\nContent-Length: 10000000\r\n\r\n" + strings.Repeat("x", 4096), ""},
		{"idle keep-alive", "GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.start); err != nil {
				t.Fatal(err)
			}
			closed := make(chan struct{})
			go func() { io.Copy(io.Discard, conn); close(closed) }()
			deadline := time.After(4 * time.Second)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-closed:
					return
				case <-deadline:
					t.Fatal("connection still open after 4 s with 500 ms timeouts")
				case <-tick.C:
					if tt.trickle != "" {
						io.WriteString(conn, tt.trickle)
					}
				}
			}
		})
	}
}

// TestDeflateBodies: Content-Encoding: deflate is accepted in RFC 9110's
// zlib form and, as a fallback, raw; gzip as before.
func TestDeflateBodies(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone })
	compress := func(w func(io.Writer) io.WriteCloser, b []byte) []byte {
		var buf bytes.Buffer
		zw := w(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	zlibW := func(w io.Writer) io.WriteCloser { return zlib.NewWriter(w) }
	rawW := func(w io.Writer) io.WriteCloser { zw, _ := flate.NewWriter(w, flate.DefaultCompression); return zw }
	gzipW := func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) }
	for i, tt := range []struct {
		name, encoding string
		w              func(io.Writer) io.WriteCloser
		want           int
	}{
		{"deflate as zlib (RFC 9110)", "deflate", zlibW, http.StatusOK},
		{"deflate raw", "deflate", rawW, http.StatusOK},
		{"gzip", "gzip", gzipW, http.StatusOK},
		{"deflate that is not compressed", "deflate", nil, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := newCPE(t, e, fmt.Sprintf("DEFLATE%d", i)).informBody(nil)
			if tt.w != nil {
				body = compress(tt.w, body)
			}
			resp, raw := rawCWMP(t, e, body, "Content-Encoding", tt.encoding)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s, want %d (%s)", resp.Status, tt.want, raw)
			}
		})
	}
}

// TestSOAPEnvelopeNamespace: an envelope in another namespace than SOAP
// 1.1's is refused with a clear 400; any prefix and every CWMP namespace
// 1.0–1.4 are accepted.
func TestSOAPEnvelopeNamespace(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone })
	variant := func(serial, soapNS, soapPrefix, cwmpNS, cwmpPrefix string) []byte {
		env, err := cwmp.Decode(newCPE(t, e, serial).informBody(nil))
		if err != nil {
			t.Fatal(err)
		}
		env.Namespace = cwmpNS
		b, err := cwmp.Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), cwmp.SOAPEnvNS, soapNS)
		s = strings.ReplaceAll(s, "soap-env:", soapPrefix+":")
		s = strings.ReplaceAll(s, "xmlns:soap-env=", "xmlns:"+soapPrefix+"=")
		s = strings.ReplaceAll(s, "cwmp:", cwmpPrefix+":")
		s = strings.ReplaceAll(s, "xmlns:cwmp=", "xmlns:"+cwmpPrefix+"=")
		return []byte(s)
	}
	for i, tt := range []struct {
		name               string
		soapNS, soapPrefix string
		cwmpNS, cwmpPrefix string
		want               int
	}{
		{"SOAP 1.1, CWMP 1.0", cwmp.SOAPEnvNS, "soap-env", cwmp.NS10, "cwmp", http.StatusOK},
		{"prefix SOAP-ENV, CWMP 1.1", cwmp.SOAPEnvNS, "SOAP-ENV", cwmp.NS11, "cwmp", http.StatusOK},
		{"prefix s, CWMP 1.2 as c", cwmp.SOAPEnvNS, "s", cwmp.NS12, "c", http.StatusOK},
		{"CWMP 1.3", cwmp.SOAPEnvNS, "soapenv", cwmp.NS13, "cwmp", http.StatusOK},
		{"CWMP 1.4", cwmp.SOAPEnvNS, "SOAP", cwmp.NS14, "cwmp", http.StatusOK},
		{"SOAP 1.2 envelope", "http://www.w3.org/2003/05/soap-envelope", "env", cwmp.NS10, "cwmp", http.StatusBadRequest},
		{"foreign envelope namespace", "urn:example:not-soap", "soap-env", cwmp.NS10, "cwmp", http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := rawCWMP(t, e, variant(fmt.Sprintf("SOAPNS%02d", i), tt.soapNS, tt.soapPrefix, tt.cwmpNS, tt.cwmpPrefix))
			if resp.StatusCode != tt.want {
				t.Fatalf("%s, want %d (%s)", resp.Status, tt.want, raw)
			}
			if tt.want == http.StatusBadRequest && !strings.Contains(string(raw), "namespace") {
				t.Fatalf("refusal does not say why: %s", raw)
			}
		})
	}
}

// TestTaskTimeoutOverflow: ?timeout= in milliseconds so large that it
// overflows a time.Duration is refused on /api/v1 (over httpapi.MaxWait,
// as on the core), and on the GenieACS alias waits (up to the maximum)
// instead of answering at once.
func TestTaskTimeoutOverflow(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone })
	c := newCPE(t, e, "OVERFLOW1")
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)
	genie := strings.TrimSuffix(e.api, "/api/v1")
	for _, timeout := range []string{"9223372036854775807", "9223372036854776"} {
		resp, err := http.Post(e.api+"/devices/"+url.PathEscape(c.id())+"/tasks?timeout="+timeout, "application/json",
			strings.NewReader(`{"name": "reboot"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("/api/v1 with timeout=%s: %d, want 400", timeout, resp.StatusCode)
		}
	}
	for _, timeout := range []string{"9223372036854775807", "9223372036854776"} {
		t.Run(timeout, func(t *testing.T) {
			c.open()
			type reply struct {
				code int
				body string
			}
			done := make(chan reply, 1)
			go func() {
				resp, err := http.Post(genie+"/devices/"+url.PathEscape(c.id())+"/tasks?timeout="+timeout, "application/json",
					strings.NewReader(`{"name": "getParameterValues", "parameterNames": ["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]}`))
				if err != nil {
					done <- reply{0, err.Error()}
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- reply{resp.StatusCode, string(raw)}
			}()
			select {
			case r := <-done:
				t.Fatalf("answered before the task ran: %d %s", r.code, r.body)
			case <-time.After(500 * time.Millisecond):
			}
			finishSession(t, c) // the open session picks the task up
			select {
			case r := <-done:
				if r.code != http.StatusOK || !strings.Contains(r.body, `"status":"done"`) {
					t.Fatalf("%d %s, want 200 with the finished task", r.code, r.body)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer after the task finished")
			}
		})
	}
}

// TestAPIDuplicateKeys: a JSON body or query naming a key twice is refused
// (the last one would silently win), and nothing is stored.
func TestAPIDuplicateKeys(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthNone })
	c := newCPE(t, e, "DUPKEYS1")
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)
	dev := url.PathEscape(c.id())
	for _, tt := range []struct {
		name, method, path, body string
	}{
		{"credentials", http.MethodPut, "/api/v1/devices/" + dev + "/credentials", `{"username": "u", "password": "a", "password": "b"}`},
		{"GenieACS device query", http.MethodGet, "/devices?query=" + url.QueryEscape(`{"_id": "x", "_id": "`+c.id()+`"}`), ""},
		{"task", http.MethodPost, "/api/v1/devices/" + dev + "/tasks", `{"name": "reboot", "name": "factoryReset"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := apiDo(t, e, tt.method, tt.path, tt.body)
			if code != http.StatusBadRequest || !strings.Contains(body, "duplicate") {
				t.Fatalf("%d %s, want 400 naming the duplicate key", code, body)
			}
		})
	}
	if _, _, err := e.node.Cache().Credentials(c.id()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("credentials stored: %v", err)
	}
	if ts, _ := e.node.Cache().PendingTasks(c.id()); len(ts) != 0 {
		t.Fatalf("tasks queued: %+v", ts)
	}
	// Credentials beyond ManagementServer's string(256) are refused too.
	code, body := apiDo(t, e, http.MethodPut, "/api/v1/devices/"+dev+"/credentials", `{"username": "`+strings.Repeat("u", 257)+`", "password": "p"}`)
	if code != http.StatusBadRequest {
		t.Fatalf("257-byte username: %d %s", code, body)
	}
}

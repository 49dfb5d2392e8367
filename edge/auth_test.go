package edge

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/sim"
)

// metric scrapes the edge's /metrics and returns the line for name{labels}.
func (e *testEdge) metric(prefix string) string {
	e.t.Helper()
	resp, err := http.Get(strings.TrimSuffix(e.api, "/api/v1") + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func withCreds(t *testing.T, e *testEdge, serial, user, pass string, basic bool) *cpe {
	c := newCPE(t, e, serial)
	c.client.Transport = &cwmp.DigestTransport{Username: user, Password: pass, AllowBasic: basic, Base: c.client.Transport.(*cwmp.DigestTransport).Base}
	return c
}

func TestDigestAuth(t *testing.T) {
	e := startEdge(t, "", func(c *Config) { c.AuthFailuresPerMinute = 5 })

	t.Run("shared credentials", func(t *testing.T) {
		c := withCreds(t, e, "AUTH0001", testUser, testPass, false)
		c.open(cwmp.EventBootstrap)
		finishSession(t, c)
	})

	t.Run("challenge offers MD5 and SHA-256", func(t *testing.T) {
		resp, err := http.Post(e.acs, "text/xml", bytes.NewReader(newCPE(t, e, "AUTH0002").informBody(nil)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		chs := resp.Header.Values("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || len(chs) != 2 ||
			!strings.Contains(chs[0], "algorithm=MD5") || !strings.Contains(chs[1], "algorithm=SHA-256") || !strings.Contains(chs[0], `qop="auth"`) {
			t.Fatalf("%d %q", resp.StatusCode, chs)
		}
		if _, err := e.node.Cache().Device(newCPE(t, e, "AUTH0002").id()); err == nil {
			t.Fatal("an unauthenticated Inform was recorded")
		}
	})

	t.Run("per-device credentials", func(t *testing.T) {
		c := withCreds(t, e, "AUTH0003", testUser, testPass, false)
		c.open(cwmp.EventBootstrap)
		finishSession(t, c)
		if err := e.node.Cache().SetDeviceCredentials(c.id(), "dev3", "dev3-pass"); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := c.post(c.informBody(nil)); code != http.StatusUnauthorized {
			t.Fatalf("shared credentials after per-device ones were set: %d", code)
		}
		c = withCreds(t, e, "AUTH0003", "dev3", "dev3-pass", false)
		c.open()
		finishSession(t, c)
	})

	t.Run("wrong password then rate limit", func(t *testing.T) {
		bad := withCreds(t, e, "AUTH0004", testUser, "wrong", false)
		var code int
		for i := 0; i < 5; i++ {
			code, _, _ = bad.post(bad.informBody(nil))
			if code == http.StatusTooManyRequests {
				break
			}
			if code != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d", i, code)
			}
		}
		if code != http.StatusTooManyRequests {
			t.Fatalf("after 5 failures: %d, want 429", code)
		}
		// The cool-down applies to the source address, good credentials or not.
		good := withCreds(t, e, "AUTH0005", testUser, testPass, false)
		if code, _, _ := good.post(good.informBody(nil)); code != http.StatusTooManyRequests {
			t.Fatalf("during the cool-down: %d", code)
		}
		if m := e.metric(`edgeacs_edge_auth_failures_total{reason="bad_credentials"}`); !strings.HasSuffix(m, " 5") {
			t.Fatalf("metric %q", m)
		}
	})
}

func TestDigestAuthWithSimulator(t *testing.T) {
	e := startEdge(t, "", nil)
	good := startFleet(t, e, 3, nil)
	waitInformed(t, e, good)
	bad := startFleet(t, e, 2, func(c *sim.Config) { c.Seed = 99; c.Password = "nope" })
	waitFor(t, 10*time.Second, "refused sessions", func() bool { return bad.Stats().SessionErrors >= 2 })
	for i := 0; i < bad.Len(); i++ {
		if _, err := e.node.Cache().Device(bad.Device(i).ID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("device with a wrong password was recorded: %v", err)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	cfg := Config{ID: "x", DataDir: t.TempDir(), CPEAuth: AuthBasic, Username: "u", Password: "p", Standalone: true}
	cfg.SetDefaults()
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("basic over plain HTTP accepted: %v", err)
	}
	e := startEdge(t, "", func(c *Config) { c.CPEAuth = AuthBasic; c.AllowBasicOverHTTP = true })
	c := withCreds(t, e, "BASIC001", testUser, testPass, true)
	c.open(cwmp.EventBootstrap)
	finishSession(t, c)
	bad := withCreds(t, e, "BASIC002", testUser, "wrong", true)
	if code, _, _ := bad.post(bad.informBody(nil)); code != http.StatusUnauthorized {
		t.Fatalf("wrong basic password: %d", code)
	}
}

func TestNonceExpiry(t *testing.T) {
	var n nonceStore
	n.m = map[string]time.Time{}
	now := time.Now()
	nonce := n.issue(now)
	if !n.valid(nonce, now.Add(time.Minute)) {
		t.Fatal("fresh nonce refused")
	}
	if n.valid(nonce, now.Add(nonceLifetime+time.Second)) {
		t.Fatal("expired nonce accepted")
	}
	if n.valid("made-up", now) {
		t.Fatal("unknown nonce accepted")
	}
}

func TestFailLimiterWindow(t *testing.T) {
	var f failLimiter
	f.m = map[string]*failRecord{}
	now := time.Now()
	for i := 0; i < 3; i++ {
		if f.fail("10.0.0.1", now, 4) {
			t.Fatalf("blocked after %d failures", i+1)
		}
	}
	// The window rolls over: old failures stop counting.
	if f.fail("10.0.0.1", now.Add(2*failWindow), 4) {
		t.Fatal("failures from an old window counted")
	}
	for i := 0; i < 3; i++ {
		f.fail("10.0.0.2", now, 4)
	}
	if !f.fail("10.0.0.2", now, 4) || !f.blocked("10.0.0.2", now.Add(time.Second)) {
		t.Fatal("not blocked at the limit")
	}
	if f.blocked("10.0.0.2", now.Add(failCooldown+time.Second)) {
		t.Fatal("still blocked after the cool-down")
	}
	if f.blocked("10.0.0.3", now) {
		t.Fatal("an innocent address is blocked")
	}
}

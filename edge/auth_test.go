package edge

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
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

	t.Run("challenge offers MD5 alone by default", func(t *testing.T) {
		resp, err := http.Post(e.acs, "text/xml", bytes.NewReader(newCPE(t, e, "AUTH0002").informBody(nil)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		chs := resp.Header.Values("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || len(chs) != 1 ||
			!strings.Contains(chs[0], "algorithm=MD5") || !strings.Contains(chs[0], `qop="auth"`) {
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
		// 2 from the shared credentials of the device with its own above,
		// then 3 wrong passwords reach the limit of 5.
		if m := e.metric(`edgeacs_edge_auth_failures_total{reason="bad_credentials"}`); !strings.HasSuffix(m, " 3") {
			t.Fatalf("metric %q", m)
		}
		if m := e.metric(`edgeacs_edge_auth_failures_total{reason="device_has_own_credentials"}`); !strings.HasSuffix(m, " 2") {
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

func TestNonceStore(t *testing.T) {
	n := nonceStore{m: map[string]nonceState{}}
	now := time.Now()
	nonce := n.issue(now)
	for _, tt := range []struct {
		nc      uint32
		counted bool
		at      time.Duration
		want    nonceResult
	}{
		{1, true, 0, nonceOK},
		{1, true, 0, nonceReplay}, // the same count again
		{3, true, 0, nonceOK},     // counts may skip
		{2, true, 0, nonceReplay}, // but never go back
		{0, false, 0, nonceReplay},
		{4, true, nonceLifetime + time.Second, nonceUnknown},
	} {
		if got := n.use(nonce, tt.nc, tt.counted, now.Add(tt.at)); got != tt.want {
			t.Fatalf("use(nc=%d, counted=%v, +%s) = %v, want %v", tt.nc, tt.counted, tt.at, got, tt.want)
		}
	}
	if got := n.use("made-up", 1, true, now); got != nonceUnknown {
		t.Fatalf("unknown nonce: %v", got)
	}
	// Without qop a nonce is good once.
	once := n.issue(now)
	if n.use(once, 0, false, now) != nonceOK || n.use(once, 0, false, now) != nonceReplay || n.use(once, 5, true, now) != nonceReplay {
		t.Fatal("a nonce used without qop was accepted again")
	}
	// Expired nonces leave the store as new ones are issued.
	later := now.Add(2 * nonceLifetime)
	n.issue(later)
	if len(n.m) != 1 || len(n.order)-n.head != 1 {
		t.Fatalf("%d nonces, %d in the FIFO after expiry, want 1", len(n.m), len(n.order)-n.head)
	}
}

// TestNonceStoreBounded: at the limit the oldest nonce goes first, and the
// store never holds more than maxNonces.
func TestNonceStoreBounded(t *testing.T) {
	n := nonceStore{m: map[string]nonceState{}}
	now := time.Now()
	first := n.issue(now)
	second := n.issue(now)
	for i := 0; i < maxNonces; i++ {
		n.issue(now)
	}
	if len(n.m) != maxNonces || len(n.order)-n.head != maxNonces {
		t.Fatalf("%d nonces (%d in the FIFO), limit %d", len(n.m), len(n.order)-n.head, maxNonces)
	}
	if n.use(first, 1, true, now) != nonceUnknown || n.use(second, 1, true, now) != nonceUnknown {
		t.Fatal("the oldest nonces were not the ones evicted")
	}
	if cap(n.order) > 4*maxNonces {
		t.Fatalf("FIFO backing array of %d for %d nonces", cap(n.order), maxNonces)
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

// TestFailLimiterChallenges: challenges to requests without credentials
// count only once limit of them are overdue; successes pay back the
// oldest; the remembered ones are bounded.
func TestFailLimiterChallenges(t *testing.T) {
	f := failLimiter{m: map[string]*failRecord{}}
	now := time.Now()
	const limit, grace = 3, time.Second
	// A burst answered later: nothing counts, and the record goes away.
	for i := 0; i < 50; i++ {
		if f.challenged("10.0.0.1", now, limit, grace) {
			t.Fatal("a fresh challenge counted")
		}
	}
	if n := len(f.m["10.0.0.1"].pending); n != maxPendingChallenges {
		t.Fatalf("%d challenges remembered, bound %d", n, maxPendingChallenges)
	}
	for i := 0; i < 50; i++ {
		f.succeeded("10.0.0.1", now.Add(100*time.Millisecond))
	}
	if _, ok := f.m["10.0.0.1"]; ok {
		t.Fatal("an address with everything answered is still tracked")
	}
	// Unanswered: counted once limit are overdue.
	for i := 0; i < limit; i++ {
		f.challenged("10.0.0.2", now, limit, grace)
	}
	if f.challenged("10.0.0.2", now.Add(grace/2), limit, grace) {
		t.Fatal("counted before the grace period")
	}
	if !f.challenged("10.0.0.2", now.Add(2*grace), limit, grace) {
		t.Fatal("not counted with limit challenges overdue")
	}
	// Four are overdue now; two successes pay back the two oldest.
	f.succeeded("10.0.0.2", now.Add(2*grace))
	f.succeeded("10.0.0.2", now.Add(2*grace))
	if f.challenged("10.0.0.2", now.Add(2*grace), limit, grace) {
		t.Fatal("counted after successes paid challenges back")
	}
	// Past the failure window they are forgotten.
	if f.challenged("10.0.0.2", now.Add(failWindow+2*grace), limit, grace) {
		t.Fatal("challenges older than the window still count")
	}
}

// TestDigestAlgorithms: --digest-algorithms sets the challenges offered,
// in order, and the algorithms accepted; a response with an algorithm
// not offered is refused.
func TestDigestAlgorithms(t *testing.T) {
	for _, tt := range []struct {
		name  string
		algs  []string
		want  []string
		other string // an algorithm not offered, refused
	}{
		{"default", nil, []string{"MD5"}, cwmp.DigestSHA256},
		{"both, sha-256 first", []string{"sha-256", "md5"}, []string{"SHA-256", "MD5"}, ""},
		{"sha-256 alone", []string{"SHA256"}, []string{"SHA-256"}, cwmp.DigestMD5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startEdge(t, "", func(c *Config) { c.DigestAlgorithms = tt.algs })
			c := newCPE(t, e, "ALGS0001")
			resp, err := http.Post(e.acs, "text/xml", bytes.NewReader(c.informBody(nil)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			chs := resp.Header.Values("WWW-Authenticate")
			var got []string
			for _, h := range chs {
				ch, err := cwmp.ParseDigestChallenge(h)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ch.Algorithm)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("challenges %q, want algorithms %v", chs, tt.want)
			}
			// The client library answers one of them; the session works.
			c.open(cwmp.EventBootstrap)
			finishSession(t, c)
			if tt.other == "" {
				return
			}
			ch, _ := cwmp.ParseDigestChallenge(chs[0])
			ch.Algorithm = tt.other
			a := cwmp.ComputeDigestAuthorization(ch, http.MethodPost, "/", testUser, testPass, "", 1)
			req, _ := http.NewRequest(http.MethodPost, e.acs, bytes.NewReader(c.informBody(nil)))
			req.Header.Set("Authorization", a.String())
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("a %s response when it was not offered: %d", tt.other, resp.StatusCode)
			}
		})
	}
	for _, algs := range [][]string{{"sha-512"}, {"md5", "MD5"}} {
		cfg := Config{ID: "x", DataDir: "d", Standalone: true, CPEAuth: AuthDigest, Username: "u", DigestAlgorithms: algs}
		cfg.SetDefaults()
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("digest algorithms %q: %v, want ErrConfig", algs, err)
		}
	}
}

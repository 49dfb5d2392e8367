package core

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleMounted: the client listener serves the web console beside
// the API, which keeps its authentication; the peer port serves neither.
func TestConsoleMounted(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	waitTestToken(t, n)
	jar, _ := cookiejar.New(nil)
	// A plain transport: the test's default one adds the admin token.
	hc := &http.Client{Jar: jar, Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	base := "http://" + n.APIAddr()
	get := func(u string) (int, http.Header, string) {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, h, _ := get(base + "/console"); code != http.StatusMovedPermanently || h.Get("Location") != "/console/" {
		t.Fatalf("GET /console: %d to %q", code, h.Get("Location"))
	}
	if code, h, _ := get(base + "/console/devices"); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/console/signin") {
		t.Fatalf("GET /console/devices signed out: %d to %q", code, h.Get("Location"))
	}
	if code, _, _ := get(base + "/api/v1/devices"); code != http.StatusUnauthorized {
		t.Fatalf("GET /api/v1/devices without a token: %d, want 401", code)
	}
	_, _, page := get(base + "/console/signin")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field on the sign-in page:\n%s", page)
	}
	resp, err := hc.PostForm(base+"/console/signin", url.Values{"csrf": {m[1]}, "token": {testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("sign in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/console/", "/console/devices", "/console/presets", "/console/provisions", "/console/files"} {
		if code, _, body := get(base + p); code != http.StatusOK || !strings.Contains(body, "core n1") {
			t.Errorf("GET %s signed in: %d:\n%.1000s", p, code, body)
		}
	}
	if code, _, _ := get("http://" + n.RaftAddr() + "/console/signin"); code != http.StatusNotFound {
		t.Fatalf("the peer port serves the console: %d", code)
	}
}

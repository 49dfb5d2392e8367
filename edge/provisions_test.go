package edge

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// putProvisions stores provision scripts as the core's downlink delivers them.
func putProvisions(t testing.TB, c *Cache, ps ...*fleet.Provision) {
	t.Helper()
	_, shared, err := c.DownlinkAcked()
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]fleet.DownRecord, len(ps))
	for i, p := range ps {
		recs[i] = fleet.DownRecord{Seq: shared + uint64(i) + 1, Shared: true, Kind: fleet.DownProvision, Provision: p}
	}
	if err := c.StoreDownlink(recs); err != nil {
		t.Fatalf("StoreDownlink: %v", err)
	}
}

// TestAPIProvisionsOnEdge: the edge's API lists and reads the provision
// scripts its core sent.
func TestAPIProvisionsOnEdge(t *testing.T) {
	e := startEdge(t, "", nil)
	code, body := apiDo(t, e, "GET", "/api/v1/provisions", "")
	if code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("empty list: %d %s", code, body)
	}
	p := &fleet.Provision{Name: "inform", Script: "declare('Device.DeviceInfo.*', {value: 1});"}
	putProvisions(t, e.node.Cache(), p, &fleet.Provision{Name: "boot", Script: "log('b');"})

	code, body = apiDo(t, e, "GET", "/api/v1/provisions", "")
	var all []fleet.Provision
	if code != 200 || json.Unmarshal([]byte(body), &all) != nil || len(all) != 2 || all[0].Name != "boot" || all[1] != *p {
		t.Fatalf("list: %d %s", code, body)
	}
	if !strings.Contains(body, `"_id":"inform"`) || !strings.Contains(body, `"script":`) {
		t.Fatalf("list not in GenieACS's shape: %s", body)
	}
	code, body = apiDo(t, e, "GET", "/api/v1/provisions/inform", "")
	var one fleet.Provision
	if code != 200 || json.Unmarshal([]byte(body), &one) != nil || one != *p {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, body = apiDo(t, e, "GET", "/api/v1/provisions/none", ""); code != 404 {
		t.Fatalf("get unknown: %d %s", code, body)
	}
	if got, err := e.node.Cache().Provision("inform"); err != nil || got != *p {
		t.Fatalf("after refused writes: %+v, %v", got, err)
	}
}

// TestLocalProvisioningAPI: a standalone edge stores its own presets and
// provision scripts as the core does (validated: a bad precondition or a
// syntax error is 400 with where, a built-in's name is 400), on /api/v1
// and on the GenieACS NBI; sessions use them at once. An edge synced to
// a core refuses the writes: 409 on /api/v1, 405 on the NBI.
func TestLocalProvisioningAPI(t *testing.T) {
	e := startEdge(t, "", nil)
	c := e.node.Cache()
	type refused struct {
		Error        string
		Field        string
		Line, Column int
	}
	put := func(path, body string) (int, refused) {
		t.Helper()
		code, raw := apiDo(t, e, "PUT", path, body)
		var r refused
		if code != 200 {
			_ = json.Unmarshal([]byte(raw), &r)
		}
		return code, r
	}
	if code, r := put("/api/v1/provisions/wifi", "const x = 1;\nlet y = (2 +;\n"); code != 400 || r.Line != 2 || r.Column == 0 {
		t.Fatalf("script with a syntax error: %d %+v", code, r)
	}
	if code, r := put("/api/v1/provisions/value", "log(1);"); code != 400 || !strings.Contains(r.Error, "built-in") {
		t.Fatalf("script under a built-in's name: %d %+v", code, r)
	}
	if code, r := put("/api/v1/provisions/wifi", wifiScripts["tr098"]); code != 200 {
		t.Fatalf("PUT script: %d %+v", code, r)
	}
	if code, r := put("/api/v1/presets/wifi", `{"precondition": "DeviceID.OUI = ", "provisions": [["wifi", "pw"]]}`); code != 400 || r.Field != "precondition" || r.Line != 1 || r.Column == 0 {
		t.Fatalf("preset with a bad precondition: %d %+v", code, r)
	}
	if code, r := put("/api/v1/presets/wifi", `{"provisions": [["refresh", "a..b"]]}`); code != 400 || r.Field != "provisions[0]" {
		t.Fatalf("preset with a bad refresh path: %d %+v", code, r)
	}
	if code, r := put("/api/v1/presets/wifi", `{"_id": "other", "provisions": []}`); code != 400 {
		t.Fatalf("preset whose _id differs: %d %+v", code, r)
	}
	// Through the GenieACS NBI, as a GenieACS script would.
	if code, r := put("/presets/wifi", `{"channel": "wifi", "events": {"0 BOOTSTRAP": true}, "provisions": [["wifi", "nbi-pass"]]}`); code != 200 {
		t.Fatalf("NBI PUT preset: %d %+v", code, r)
	}
	if code, raw := apiDo(t, e, "GET", "/api/v1/presets/wifi", ""); code != 200 || !strings.Contains(raw, `"_id":"wifi"`) || !strings.Contains(raw, `"0 BOOTSTRAP":true`) {
		t.Fatalf("GET preset: %d %s", code, raw)
	}
	if p, err := c.Provision("wifi"); err != nil || p.Script != wifiScripts["tr098"] {
		t.Fatalf("stored script %+v %v", p, err)
	}
	f := startFleet(t, e, 1, nil)
	waitInformed(t, e, f)
	d := f.Device(0)
	waitFor(t, 10*time.Second, "the script's passphrase", func() bool {
		v, _ := d.Get(passphraseOf(d.Root()))
		return v == "nbi-pass"
	})
	for _, path := range []string{"/api/v1/presets/wifi", "/api/v1/provisions/wifi"} {
		if code, raw := apiDo(t, e, "DELETE", path, ""); code != 204 {
			t.Fatalf("DELETE %s: %d %s", path, code, raw)
		}
		if code, _ := apiDo(t, e, "DELETE", path, ""); code != 404 {
			t.Fatalf("DELETE %s again: %d", path, code)
		}
	}

	// An edge synced to a core: the writes are the core's.
	writer := addTestToken(t, c, "writer", fleet.ScopeWrite)
	synced := NewAPI(APIConfig{Cache: c, Logger: quietLog})
	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{"PUT", "/api/v1/provisions/x", http.StatusConflict}, {"DELETE", "/api/v1/provisions/x", http.StatusConflict},
		{"PUT", "/api/v1/presets/x", http.StatusConflict}, {"DELETE", "/api/v1/presets/x", http.StatusConflict},
		{"PUT", "/provisions/x", http.StatusMethodNotAllowed}, {"DELETE", "/presets/x", http.StatusMethodNotAllowed},
	} {
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{"provisions": []}`))
		req.Header.Set("Authorization", "Bearer "+writer)
		rec := httptest.NewRecorder()
		synced.ServeHTTP(rec, req)
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), "core") {
			t.Errorf("synced edge: %s %s: %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.code)
		}
	}
}

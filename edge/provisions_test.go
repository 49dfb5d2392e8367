package edge

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

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
// scripts its core sent, and writing one there is the core's business.
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
	for _, m := range []string{"PUT", "DELETE"} {
		if code, body = apiDo(t, e, m, "/api/v1/provisions/inform", "log(1);"); code != http.StatusMethodNotAllowed {
			t.Fatalf("%s /api/v1/provisions/inform: %d %s, want 405", m, code, body)
		}
		if code, body = apiDo(t, e, m, "/provisions/inform", "log(1);"); code != http.StatusMethodNotAllowed || !strings.Contains(body, "provisions come from the core") {
			t.Fatalf("NBI %s /provisions/inform: %d %s, want 405", m, code, body)
		}
	}
	if got, err := e.node.Cache().Provision("inform"); err != nil || got != *p {
		t.Fatalf("after refused writes: %+v, %v", got, err)
	}
}

package edge

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// TestOnlineStates: devices are online after they inform, and late, then
// offline, as time passes their own PeriodicInformInterval (60 s here,
// read from the cached tree: the 300 s default would keep them online at
// 100 s); the API and the metrics say so.
func TestOnlineStates(t *testing.T) {
	e := startEdge(t, "", nil)
	f := startFleet(t, e, 2, func(c *sim.Config) { c.InformInterval = time.Minute })
	waitInformed(t, e, f)
	c := e.node.Cache()
	// The default inform preset reads the interval in the first session.
	waitFor(t, 10*time.Second, "the inform interval in the cache", func() bool {
		for i := range f.Len() {
			d := e.device(f.Device(i).ID())
			if p, err := c.Parameter(d.ID, d.Root+"ManagementServer.PeriodicInformInterval"); err != nil || p.Value != "60" {
				return false
			}
		}
		return true
	})
	last := time.Time{}
	for i := range f.Len() {
		if d := e.device(f.Device(i).ID()); d.LastInform.After(last) {
			last = d.LastInform
		}
	}
	for _, c0 := range []struct {
		after time.Duration
		want  string
	}{
		{0, fleet.DeviceOnline},
		{80 * time.Second, fleet.DeviceOnline},
		{100 * time.Second, fleet.DeviceLate},
		{200 * time.Second, fleet.DeviceLate},
		{4 * time.Minute, fleet.DeviceOffline},
	} {
		got, err := c.DeviceStates(last.Add(c0.after))
		if err != nil {
			t.Fatal(err)
		}
		if got[c0.want] != f.Len() {
			t.Errorf("%s after the last inform: states %v, want all %d %s", c0.after, got, f.Len(), c0.want)
		}
	}

	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	var list []fleet.DeviceView
	if err := json.Unmarshal([]byte(get(e.api+"/devices")), &list); err != nil || len(list) != f.Len() {
		t.Fatalf("device list %v: %v", list, err)
	}
	for _, d := range list {
		if d.State != fleet.DeviceOnline {
			t.Errorf("device %s listed %q, want online", d.ID, d.State)
		}
	}
	var one fleet.DeviceView
	if err := json.Unmarshal([]byte(get(e.api+"/devices/"+url.PathEscape(list[0].ID))), &one); err != nil || one.State != fleet.DeviceOnline {
		t.Fatalf("device %s: state %q, %v", list[0].ID, one.State, err)
	}
	metrics := get(strings.TrimSuffix(e.api, "/api/v1") + "/metrics")
	for _, want := range []string{`edgeacs_edge_devices{state="online"} 2`, `edgeacs_edge_devices{state="offline"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

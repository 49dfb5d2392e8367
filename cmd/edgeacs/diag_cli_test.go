package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/fleet"
)

// TestDiagMonitorCLI runs the diag commands through a core, an edge and
// simulated TR-098 and TR-181 devices, as an operator would: ping(8)-like
// summaries, a trace that stops, a speed test, NSLookup where the model
// lacks it, --json, and usage errors; then the devices' online state in
// devices list and the core's per-edge counts.
func TestDiagMonitorCLI(t *testing.T) {
	s := startFleetSystem(t, 2)
	api := []string{"--api", s.api}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, append(args, api...)...)
	}
	d098, d181 := s.fleet.Device(0).ID(), s.fleet.Device(1).ID()
	if s.fleet.Device(0).Root() != "InternetGatewayDevice." {
		d098, d181 = d181, d098
	}
	cases := []struct {
		name string
		args []string
		code int
		want []string // in stdout, or stderr for a failure
	}{
		{"ping", []string{"diag", "ping", d098, "acs.example.com", "--count", "3"}, 0,
			[]string{"PING acs.example.com from " + d098 + " (InternetGatewayDevice.IPPingDiagnostics.)", "3 packets transmitted", "rtt min/avg/max = "}},
		{"ping no reply", []string{"diag", "ping", d181, "unreachable.example.net"}, 1,
			[]string{"(Device.IP.Diagnostics.IPPing.)", "4 packets transmitted, 0 received, 100% packet loss"}},
		{"ping unresolvable", []string{"diag", "ping", d181, "host.invalid"}, 1,
			[]string{"fault diagnostics_error", "Error_CannotResolveHostName"}},
		{"traceroute", []string{"diag", "traceroute", d181, "example.com"}, 0,
			[]string{"traceroute to example.com from " + d181, " 1  hop1.isp.example (100.64.1.1)  ", "example.com ("}},
		{"traceroute stops", []string{"diag", "traceroute", d098, "192.0.2.9", "--max-hops", "5"}, 1,
			[]string{" 5  * * *", "Error_MaxHopCountExceeded"}},
		{"speedtest", []string{"diag", "speedtest", d098, "--url", "http://speed.example.net/10MB.bin"}, 0,
			[]string{"download from http://speed.example.net/10MB.bin by " + d098, " Mbit/s"}},
		{"speedtest upload", []string{"diag", "speedtest", d181, "--url", "http://speed.example.net/up", "--upload", "--size", "3000000"}, 0,
			[]string{"upload to http://speed.example.net/up", "2.9 MiB in "}},
		{"nslookup", []string{"diag", "nslookup", d181, "www.example.org"}, 0,
			[]string{"Non-authoritative answer", "Name:    www.example.org", "1 of 1 lookups succeeded"}},
		{"nslookup tr098", []string{"diag", "nslookup", d098, "www.example.org"}, 1,
			[]string{"fault diagnostics_unsupported"}},
		{"no host", []string{"diag", "ping", d098}, 2, []string{"missing arguments"}},
		{"bad count", []string{"diag", "ping", d098, "x.example", "--count", "0"}, 2, []string{"--count must be 1-100"}},
		{"speedtest no url", []string{"diag", "speedtest", d098}, 2, []string{"give --url"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := run(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q; stdout:\n%s\nstderr:\n%s", w, out, errOut)
				}
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		out, errOut, code := run("diag", "ping", d098, "acs.example.com", "--json")
		var task fleet.Task
		if code != 0 || json.Unmarshal([]byte(out), &task) != nil {
			t.Fatalf("exit %d, stderr %q:\n%s", code, errOut, out)
		}
		if task.Name != fleet.TaskPing || task.Host != "acs.example.com" || task.Count != 4 || task.Result == nil ||
			task.Result.Diagnostic == nil || task.Result.Diagnostic.Ping == nil || task.Result.Diagnostic.Ping.SuccessCount == 0 {
			t.Fatalf("task %s", out)
		}
	})
	t.Run("history", func(t *testing.T) {
		const code = "InternetGatewayDevice.DeviceInfo.ProvisioningCode"
		file := filepath.Join(t.TempDir(), "history.json")
		if err := os.WriteFile(file, []byte(`{"_id": "history", "provisions": [], "history": ["`+code+`"]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, errOut, code := run("presets", "apply", "-f", file); code != 0 {
			t.Fatalf("presets apply: exit %d: %s%s", code, out, errOut)
		}
		// The preset reaches the edge by the downlink: until then a set
		// records nothing, so set until two values are in the core's series.
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			if _, errOut, c := run("set", d098, code+"=hist-"+strconv.Itoa(i)); c != 0 {
				t.Fatalf("set: exit %d: %s", c, errOut)
			}
			out, _, c := run("devices", "show", d098, "--history", code, "--json")
			var hs []fleet.HistorySeries
			if c == 0 && json.Unmarshal([]byte(out), &hs) == nil && len(hs) == 1 && len(hs[0].Points) >= 2 {
				last := hs[0].Points[len(hs[0].Points)-1].Value
				if last != "hist-"+strconv.Itoa(i) {
					t.Fatalf("newest point %q, want hist-%d", last, i)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no history of %s at the core after %d sets: %s", code, i+1, out)
			}
		}
		out, errOut, c := run("devices", "show", d098, "--history", code)
		if c != 0 || !strings.HasPrefix(out, "TIME ") || !strings.Contains(out, "hist-") {
			t.Fatalf("exit %d, stderr %q:\n%s", c, errOut, out)
		}
	})
	t.Run("online state", func(t *testing.T) {
		out, errOut, code := run("devices", "list")
		if code != 0 || !strings.Contains(out, "STATE") || strings.Count(out, " online ") != 2 {
			t.Fatalf("exit %d, stderr %q:\n%s", code, errOut, out)
		}
		now := time.Now()
		for _, c := range []struct {
			after time.Duration
			want  string
		}{{0, fleet.DeviceOnline}, {400 * time.Second, fleet.DeviceLate}, {time.Hour, fleet.DeviceOffline}} {
			got, err := s.core.node.FSM().DeviceStates(now.Add(c.after))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[core.EdgeState{Edge: "pop1", State: c.want}] != 2 {
				t.Errorf("%s on: core counts %v, want 2 %s at pop1", c.after, got, c.want)
			}
		}
	})
}

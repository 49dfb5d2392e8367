package edge

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/script"
	"github.com/edgeacs/edgeacs/sim"
)

// testScriptLimits give the tests' script runs a second: a loaded machine
// running -race must not fail tests that are not about time.
var testScriptLimits = script.Limits{Time: time.Second}

// genieSeed reads one of the provision scripts GenieACS installs on a new
// system (its seed/*.js, kept unchanged with the sandbox's tests).
func genieSeed(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "provision", "script", "testdata", "genieacs", name+".js"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wifiScripts name the WLAN after the serial number (GenieACS's
// documented example: the SSID as the last 6 characters of the serial
// number) and set the passphrase the preset passes, per data model.
var wifiScripts = map[string]string{
	sim.ModelTR098: `const serial = declare("DeviceID.SerialNumber", {value: 1}).value[0];
const ssid = "Edge-" + serial.substring(serial.length - 6);
log("ssid " + ssid);
declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", {value: 1}, {value: ssid});
declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase", null, {value: args[0]});
`,
	sim.ModelTR181: `const serial = declare("DeviceID.SerialNumber", {value: 1}).value[0];
const ssid = "Edge-" + serial.substring(serial.length - 6);
log("ssid " + ssid);
declare("Device.WiFi.SSID.1.SSID", {value: 1}, {value: ssid});
declare("Device.WiFi.AccessPoint.1.Security.KeyPassphrase", null, {value: args[0]});
`,
}

// passphraseOf is the first WLAN's passphrase in each data model.
func passphraseOf(root string) string {
	if root == "Device." {
		return "Device.WiFi.AccessPoint.1.Security.KeyPassphrase"
	}
	return "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase"
}

// TestPresetScript: a preset naming a stored provision script runs it in
// the session on TR-098 and TR-181 devices, with the preset's arguments;
// the device and the cache end with what it declared, in one
// SetParameterValues; a warm session runs it once and sends nothing; a
// script changed through the downlink is compiled again.
func TestPresetScript(t *testing.T) {
	for _, model := range []string{sim.ModelTR098, sim.ModelTR181} {
		t.Run(model, func(t *testing.T) {
			logs := &lockedBuffer{}
			c, err := OpenCache(t.TempDir(), CacheOptions{Logger: slog.New(slog.NewTextHandler(logs, nil)), EdgeID: "e1", ScriptLimits: testScriptLimits})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			putProvisions(t, c, &fleet.Provision{Name: "wifi", Script: wifiScripts[model]})
			putPresets(t, c, &fleet.Preset{Name: "wifi", Channel: "wifi", Events: map[string]bool{"0 BOOTSTRAP": true},
				Provisions: [][]any{{"wifi", "correct horse"}}})
			cpe := newSimCPE(t, c, model, 1)
			log := cpe.session(cwmp.EventBootstrap, cwmp.EventBoot)
			serial := cpe.dev.Serial()
			want := "Edge-" + serial[len(serial)-6:]
			ssid, psk := ssidOf(cpe.root()), passphraseOf(cpe.root())
			if got := cpe.get(ssid); got != want {
				t.Fatalf("SSID %q, want %q (RPCs %v)", got, want, log)
			}
			if got := cpe.get(psk); got != "correct horse" {
				t.Fatalf("passphrase %q", got)
			}
			if p, ok := cpe.cached(ssid); !ok || p.Value != want {
				t.Fatalf("cached SSID %+v", p)
			}
			if n := len(log); n == 0 || !strings.HasPrefix(log[n-1], "SPV ") || strings.Count(strings.Join(log, "\n"), "SPV") != 1 {
				t.Fatalf("RPCs %v: want reads, then both values in one SPV", log)
			}
			if fs := cpe.faults(); len(fs) != 0 {
				t.Fatalf("faults %+v", fs)
			}
			if !strings.Contains(logs.String(), "ssid "+want) {
				t.Fatalf("the script's log line is not in the edge's log:\n%s", logs)
			}
			// A bootstrap again: the tree is cleared, the script runs
			// again and finds the device as it wants it once read.
			if log := cpe.session(cwmp.EventBootstrap); slices.ContainsFunc(log, func(s string) bool { return strings.HasPrefix(s, "SPV") && strings.Contains(s, ssid) }) {
				t.Fatalf("second bootstrap rewrote the SSID: %v", log)
			}
			// The script changes: the next matching session runs the new one.
			putProvisions(t, c, &fleet.Provision{Name: "wifi", Script: strings.ReplaceAll(wifiScripts[model], `"Edge-"`, `"POP-"`)})
			cpe.session(cwmp.EventBootstrap)
			if got := cpe.get(ssid); got != "POP-"+serial[len(serial)-6:] {
				t.Fatalf("SSID after the script changed: %q", got)
			}
		})
	}
}

// TestGenieACSSeedAtEdge: GenieACS's own bootstrap, default and inform
// provisions, unchanged, under the presets GenieACS creates for them,
// provision simulated TR-098 and TR-181 devices: the inform provision
// sets the connection-request credentials (the device ID and a password
// the edge keeps for its connection requests) and the periodic inform;
// the default provision's parameters are read; a second bootstrap clears
// and reads them again; nothing faults.
func TestGenieACSSeedAtEdge(t *testing.T) {
	for _, model := range []string{sim.ModelTR098, sim.ModelTR181} {
		t.Run(model, func(t *testing.T) {
			c := openTestCache(t, "")
			putProvisions(t, c,
				&fleet.Provision{Name: "bootstrap", Script: genieSeed(t, "bootstrap")},
				&fleet.Provision{Name: "default", Script: genieSeed(t, "default")},
				&fleet.Provision{Name: "inform", Script: genieSeed(t, "inform")})
			putPresets(t, c,
				&fleet.Preset{Name: "bootstrap", Channel: "bootstrap", Events: map[string]bool{"0 BOOTSTRAP": true}, Provisions: [][]any{{"bootstrap"}}},
				&fleet.Preset{Name: "default", Channel: "default", Provisions: [][]any{{"default"}}},
				&fleet.Preset{Name: "inform", Channel: "inform", Provisions: [][]any{{"inform"}}})
			cpe := newSimCPE(t, c, model, 2)
			root := cpe.root()
			cpe.dev.SetValues([]cwmp.ParameterValue{{Name: root + "ManagementServer.PeriodicInformInterval", Value: "86400"}}, "")
			log := cpe.session(cwmp.EventBootstrap, cwmp.EventBoot)
			if fs := cpe.faults(); len(fs) != 0 {
				t.Fatalf("faults %+v after %v", fs, log)
			}
			id := cpe.id()
			if got := cpe.get(root + "ManagementServer.ConnectionRequestUsername"); got != id {
				t.Errorf("ConnectionRequestUsername %q, want the device ID", got)
			}
			pass := cpe.get(root + "ManagementServer.ConnectionRequestPassword")
			if !regexp.MustCompile(`^[0-9a-z]{6,12}$`).MatchString(pass) {
				t.Errorf("ConnectionRequestPassword %q, want GenieACS's base-36 number", pass)
			}
			if d, err := c.Device(id); err != nil || d.CRUsername != id || d.CRPassword != pass {
				t.Errorf("the edge keeps credentials %q/%q, the device has %q/%q", d.CRUsername, d.CRPassword, id, pass)
			}
			if got := cpe.get(root + "ManagementServer.PeriodicInformInterval"); got != "300" {
				t.Errorf("PeriodicInformInterval %s", got)
			}
			if model == sim.ModelTR098 {
				for _, p := range []string{root + "DeviceInfo.HardwareVersion", root + "LANDevice.1.WLANConfiguration.2.SSID",
					root + "LANDevice.1.Hosts.Host.3.MACAddress"} {
					if got, ok := cpe.cached(p); !ok || got.Value != cpe.get(p) {
						t.Errorf("default provision: cached %s = %+v", p, got)
					}
				}
			}
			// A minute later: the same password (Math.random is seeded by
			// the device ID), nothing to write (the default provision's
			// hourly refresh may fall due).
			cpe.clock = cpe.clock.Add(-59 * time.Minute)
			if log := cpe.session(cwmp.EventPeriodic); slices.ContainsFunc(log, func(s string) bool { return !strings.HasPrefix(s, "G") }) {
				t.Fatalf("periodic session sent %v", log)
			}
			// A new bootstrap: the bootstrap provision clears what the
			// cache knows, the default provision reads it again.
			log = cpe.session(cwmp.EventBootstrap)
			if model == sim.ModelTR098 && !slices.ContainsFunc(log, func(s string) bool { return strings.HasPrefix(s, "GPV") }) {
				t.Fatalf("bootstrap session %v: want the default provision's values read again", log)
			}
			if got := cpe.get(root + "ManagementServer.ConnectionRequestPassword"); got != pass {
				t.Fatalf("password changed from %q to %q", pass, got)
			}
			if fs := cpe.faults(); len(fs) != 0 {
				t.Fatalf("faults %+v", fs)
			}
		})
	}
}

// instancesScripts are GenieACS's documented example "Creating/deleting
// object instances" on the voice lines of each data model: every instance
// deleted but the two the alias declarations keep.
func instancesScript(table string) string {
	return `const now = Date.now();
const table = "` + table + `";
// Ensure that *all* other instances are deleted
declare(table + "[]", null, {path: 0});

// Add the two entries we care about
declare(table + "[DirectoryNumber:+31201111111,Enable:Enabled]",  {path: now}, {path: 1});
declare(table + "[DirectoryNumber:+31202222222,Enable:Enabled]", {path: now}, {path: 1});
`
}

// TestGenieACSInstancesAtEdge: the documented instances example keeps
// exactly the two lines on TR-098 and TR-181 devices; the next session
// finds the table as declared.
func TestGenieACSInstancesAtEdge(t *testing.T) {
	for _, model := range []string{sim.ModelTR098, sim.ModelTR181} {
		t.Run(model, func(t *testing.T) {
			c := openTestCache(t, "")
			cpe := newSimCPE(t, c, model, 3)
			table := cpe.root() + "Services.VoiceService.1.VoiceProfile.1.Line."
			putProvisions(t, c, &fleet.Provision{Name: "lines", Script: instancesScript(table)})
			putPresets(t, c, &fleet.Preset{Name: "voice", Channel: "voice", Provisions: [][]any{{"lines"}}})
			log := cpe.session(cwmp.EventBoot)
			var numbers []string
			for i := uint32(1); i < 8; i++ {
				if v, ok := cpe.dev.Get(table + itoa(i) + ".DirectoryNumber"); ok {
					numbers = append(numbers, v)
				}
			}
			slices.Sort(numbers)
			if !slices.Equal(numbers, []string{"+31201111111", "+31202222222"}) {
				t.Fatalf("device lines %v after %v", numbers, log)
			}
			if fs := cpe.faults(); len(fs) != 0 {
				t.Fatalf("faults %+v", fs)
			}
			if log := cpe.session(cwmp.EventPeriodic); slices.ContainsFunc(log, func(s string) bool {
				return strings.HasPrefix(s, "Add") || strings.HasPrefix(s, "Del")
			}) {
				t.Fatalf("second session changed the table: %v", log)
			}
		})
	}
}

// TestPresetScriptFaults: scripts that loop forever, allocate without
// bound, throw, or read a parameter the device lacks fault their own
// channels (timeout, limit, script.Error, script.TypeError); a script
// that only declares a value on a path the device lacks is a warning, as
// in GenieACS; a preset naming no stored script faults unknown_provision.
// The session ends normally, the good channel's value is set, and the
// next session (the faults stay, the channels are skipped) sends nothing.
func TestPresetScriptFaults(t *testing.T) {
	c, err := OpenCache(t.TempDir(), CacheOptions{Logger: quietLog, EdgeID: "e1",
		ScriptLimits: script.Limits{Time: time.Second, Alloc: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cpe := newSimCPE(t, c, sim.ModelTR098, 4)
	ssid := ssidOf(cpe.root())
	scripts := map[string]string{
		"loop":    `while (true) {}`,
		"alloc":   `let s = "x"; const keep = []; while (true) { s = s + s; keep.push(s); }`,
		"throw":   `throw new Error("boom");`,
		"read":    `const v = declare("InternetGatewayDevice.No.Such.Thing", {value: 1}).value[0]; log(v);`,
		"declare": `declare("InternetGatewayDevice.No.Such.Thing", null, {value: "x"});`,
		"good":    `declare("` + ssid + `", null, {value: "still-works"});`,
	}
	var provs []*fleet.Provision
	var presets []*fleet.Preset
	for name, src := range scripts {
		provs = append(provs, &fleet.Provision{Name: name, Script: src})
		presets = append(presets, &fleet.Preset{Name: name, Channel: name, Provisions: [][]any{{name}}})
	}
	presets = append(presets, &fleet.Preset{Name: "nosuch", Channel: "nosuch", Provisions: [][]any{{"noSuchScript"}}})
	putProvisions(t, c, provs...)
	putPresets(t, c, presets...)
	start := time.Now()
	log := cpe.session(cwmp.EventBoot)
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("session took %v", el)
	}
	if got := cpe.get(ssid); got != "still-works" {
		t.Fatalf("the good channel's SSID: %q (RPCs %v)", got, log)
	}
	id := cpe.id()
	fs := cpe.faults()
	want := map[string]string{"loop": script.FaultTimeout, "alloc": script.FaultLimit, "throw": "script.Error",
		"read": "script.TypeError", "nosuch": FaultCodeUnknownProvision}
	for ch, code := range want {
		f, ok := fs[ChannelFaultID(id, ch)]
		if !ok || f.Code != code || f.Channel != ch {
			t.Errorf("channel %s: fault %+v, want %s", ch, f, code)
		}
	}
	if len(fs) != len(want) {
		t.Errorf("faults %+v, want only %v", fs, want)
	}
	if f := fs[ChannelFaultID(id, "throw")]; !strings.Contains(f.Message, "boom") || f.Detail["stack"] == "" {
		t.Errorf("the throw's fault %+v: want its message and stack", f)
	}
	if log := cpe.session(cwmp.EventPeriodic); len(log) != 0 {
		t.Fatalf("next session sent %v", log)
	}
}

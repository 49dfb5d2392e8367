package script

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The provisions GenieACS installs on a new system (its seed/default.js,
// seed/inform.js and seed/bootstrap.js), unchanged, in testdata/genieacs
// (the edge's tests run them too): they must run here as they do there.
var (
	genieDefault   = seedScript("default")
	genieInform    = seedScript("inform")
	genieBootstrap = seedScript("bootstrap")
)

func seedScript(name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "genieacs", name+".js"))
	if err != nil {
		panic(err)
	}
	return string(b)
}

const (
	igd  = "InternetGatewayDevice."
	ms98 = igd + "ManagementServer."
	wlan = igd + "LANDevice.1.WLANConfiguration."
	host = igd + "LANDevice.1.Hosts.Host."
	wip  = igd + "WANDevice.1.WANConnectionDevice.1.WANIPConnection.1."
)

// defaultParams are the parameters GenieACS's default provision keeps
// fresh, on the simulated TR-098 device (which, as CPEs do, reads its
// passphrases back empty).
var defaultParams = []string{
	igd + "DeviceInfo.HardwareVersion", igd + "DeviceInfo.SoftwareVersion",
	wip + "MACAddress", wip + "ExternalIPAddress",
	wlan + "1.SSID", wlan + "2.SSID", wlan + "1.KeyPassphrase", wlan + "2.KeyPassphrase",
	host + "1.HostName", host + "2.IPAddress", host + "3.MACAddress",
}

func TestGenieACSDefault(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	def := prov{channel: "default", script: mustCompile(t, "default", genieDefault)}

	s := h.session(def)
	if len(s.out.Faults) != 0 || len(s.out.Warnings) != 0 {
		t.Fatalf("faults %v, warnings %v", s.out.Faults, s.out.Warnings)
	}
	if s.execs[0].Runs() != 1 {
		t.Errorf("runs = %d, want 1: the script reads nothing", s.execs[0].Runs())
	}
	for _, p := range defaultParams {
		e := h.cached(p)
		if e.ValueTime.Before(t0) {
			t.Errorf("%s learnt at %v, before the session", p, e.ValueTime)
		}
		if want := h.devGet(p); e.Value != want && !strings.HasSuffix(p, "KeyPassphrase") {
			t.Errorf("%s = %q, device has %q", p, e.Value, want)
		}
	}
	if len(s.rpcs) == 0 || len(s.rpcs) > 12 {
		t.Errorf("cold session sent %d RPCs: %v", len(s.rpcs), s.rpcs)
	}

	// Ten minutes later the ages hold, unless the hour boundary (shifted
	// per device) fell in between: nothing or a refresh, never a write.
	h.clock = t0.Add(10 * time.Minute)
	s = h.session(def)
	if count(s.rpcs, "SPV") != 0 || len(s.out.Faults) != 0 {
		t.Errorf("second session: %v, faults %v", s.rpcs, s.out.Faults)
	}
	h.clock = t0.Add(15 * time.Minute)
	if s = h.session(def); len(s.rpcs) != 0 {
		t.Errorf("third session five minutes on sent %v", s.rpcs)
	}

	// Two hours on, the hourly values are read again; the passphrase
	// (value: 1) is not.
	h.clock = t0.Add(2 * time.Hour)
	s = h.session(def)
	if count(s.rpcs, "GPV") == 0 {
		t.Errorf("two hours later: %v, want a refresh", s.rpcs)
	}
	if e := h.cached(wlan + "1.KeyPassphrase"); !e.ValueTime.Before(t0.Add(2 * time.Hour)) {
		t.Errorf("KeyPassphrase re-read at %v", e.ValueTime)
	}
	if e := h.cached(igd + "DeviceInfo.SoftwareVersion"); e.ValueTime.Before(t0.Add(2 * time.Hour)) {
		t.Errorf("SoftwareVersion not re-read: %v", e.ValueTime)
	}
}

func TestGenieACSInform(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	inf := prov{channel: "inform", script: mustCompile(t, "inform", genieInform)}

	s := h.session(inf)
	if len(s.out.Faults) != 0 {
		t.Fatalf("faults %v", s.out.Faults)
	}
	if s.execs[0].Runs() != 1 {
		t.Errorf("runs = %d, want 1: DeviceID.ID is in the device record", s.execs[0].Runs())
	}
	if got := h.devGet(ms98 + "ConnectionRequestUsername"); got != h.id {
		t.Errorf("ConnectionRequestUsername = %q, want the device ID %q", got, h.id)
	}
	pass := h.devGet(ms98 + "ConnectionRequestPassword")
	if !regexp.MustCompile(`^[0-9a-z]{6,12}$`).MatchString(pass) {
		t.Errorf("ConnectionRequestPassword = %q, want a base-36 number", pass)
	}
	if got := h.devGet(ms98 + "PeriodicInformInterval"); got != "300" {
		t.Errorf("PeriodicInformInterval = %s", got)
	}
	if got := h.devGet(ms98 + "PeriodicInformEnable"); got != "true" && got != "1" {
		t.Errorf("PeriodicInformEnable = %s", got)
	}
	// informTime is the device's offset in the day, in ms since the
	// epoch: a time on 1 January 1970.
	if got := h.devGet(ms98 + "PeriodicInformTime"); !strings.HasPrefix(got, "1970-01-0") {
		t.Errorf("PeriodicInformTime = %s, want a time on 1970-01-01", got)
	}
	// The Device.* half does not exist on a TR-098 device: warnings.
	if len(s.out.Warnings) == 0 {
		t.Errorf("no warning for the Device.* parameters")
	}
	if n := count(s.rpcs, "SPV"); n != 1 {
		t.Errorf("%d SPVs, want the five values in one: %v", n, s.rpcs)
	}

	// Next session: the same password (Math.random is seeded by the
	// device ID), nothing to write.
	h.clock = t0.Add(time.Minute)
	s = h.session(inf)
	if len(s.rpcs) != 0 {
		t.Errorf("second session sent %v", s.rpcs)
	}
	if got := h.devGet(ms98 + "ConnectionRequestPassword"); got != pass {
		t.Errorf("password changed from %q to %q", pass, got)
	}
}

func TestGenieACSBootstrap(t *testing.T) {
	h := newHarness(t, "tr098").discover(t0.Add(-5 * time.Minute))
	def := prov{channel: "default", script: mustCompile(t, "default", genieDefault)}
	boot := prov{channel: "bootstrap", script: mustCompile(t, "bootstrap", genieBootstrap)}

	// A warm cache: the default provision has nothing to do...
	if s := h.session(def); len(s.rpcs) != 0 {
		t.Fatalf("warm session sent %v", s.rpcs)
	}
	// ...until a bootstrap clears what the cache knows: then everything
	// the default provision declares is read again.
	h.clock = t0.Add(time.Minute)
	start := h.clock
	s := h.session(boot, def)
	if len(s.out.Faults) != 0 {
		t.Fatalf("faults %v", s.out.Faults)
	}
	for _, p := range defaultParams {
		if e := h.cached(p); e.ValueTime.Before(start) {
			t.Errorf("%s not read again after the clear (learnt %v)", p, e.ValueTime)
		}
	}
	if count(s.rpcs, "GPN") == 0 || count(s.rpcs, "GPV") == 0 {
		t.Errorf("RPCs %v, want the tree listed and read again", s.rpcs)
	}
}

// wifiFromTag names the WLAN after the serial number the CPE reports,
// "Premium-" for devices tagged premium, and sets the passphrase the
// preset passes. Reading the serial from the CPE on a cold cache makes
// the first run stop there: one replay once it is read.
const wifiFromTag = `
const serial = declare("InternetGatewayDevice.DeviceInfo.SerialNumber", {value: 1}).value[0];
const premium = declare("Tags.premium", {value: 1});
const prefix = premium.size && premium.value[0] ? "Premium-" : "Home-";
const ssid = prefix + serial.slice(-6);
log("ssid " + ssid);
declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.SSID", {value: 1}, {value: ssid});
declare("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase", null, {value: args[0]});
`

func TestWLANFromTag(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	h.putVirtual("Tags.premium", "true", "xsd:boolean")
	p := prov{channel: "wifi", script: mustCompile(t, "wifi", wifiFromTag), args: []any{"correct horse battery"}}

	s := h.session(p)
	if len(s.out.Faults) != 0 {
		t.Fatalf("faults %v", s.out.Faults)
	}
	serial := h.dev.Serial()
	want := "Premium-" + serial[len(serial)-6:]
	if got := h.devGet(wlan + "1.SSID"); got != want {
		t.Errorf("SSID = %q, want %q", got, want)
	}
	if got := h.devGet(wlan + "1.KeyPassphrase"); got != "correct horse battery" {
		t.Errorf("KeyPassphrase = %q", got)
	}
	if n := s.execs[0].Runs(); n != 2 {
		t.Errorf("runs = %d, want 2 (stopped at the serial number once)", n)
	}
	if len(h.scriptLog) != 1 || h.scriptLog[0] != "ssid "+want {
		t.Errorf("logs %q: the blocked run's line must not be kept", h.scriptLog)
	}
	if n := count(s.rpcs, "SPV"); n != 1 {
		t.Errorf("RPCs %v: want SSID and passphrase in one SPV", s.rpcs)
	}

	// Warm: one run, nothing sent (the SSID is as wanted, the
	// passphrase's value was written by this ACS).
	h.clock = t0.Add(time.Minute)
	s = h.session(p)
	if s.execs[0].Runs() != 1 || len(s.rpcs) != 0 {
		t.Errorf("warm: runs %d, RPCs %v", s.execs[0].Runs(), s.rpcs)
	}

	// The tag removed: the next session renames the WLAN.
	h.cache.Delete("Tags.premium")
	h.clock = t0.Add(2 * time.Minute)
	s = h.session(p)
	if got := h.devGet(wlan + "1.SSID"); got != "Home-"+serial[len(serial)-6:] {
		t.Errorf("SSID without the tag = %q", got)
	}
}

// lines keeps exactly the voice lines whose numbers the preset passes,
// found by alias; the table starts with two lines of random numbers.
const lines = `
const now = Date.now();
const table = "InternetGatewayDevice.Services.VoiceService.1.VoiceProfile.1.Line.";
for (const n of args) {
  declare(table + "[DirectoryNumber:" + n + "]", {path: now}, {path: 1});
  declare(table + "[DirectoryNumber:" + n + "].Enable", {value: now}, {value: "Enabled"});
}
const all = declare(table + "*.DirectoryNumber", {path: now, value: now});
let seen = [];
for (const l of all) seen.push(l.path + "=" + l.value[0]);
log(all.size + " lines: " + seen.join(" "));
`

func TestInstancesByAlias(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	const table = igd + "Services.VoiceService.1.VoiceProfile.1.Line."
	p := prov{channel: "voice", script: mustCompile(t, "lines", lines), args: []any{"+31201111111", "+31202222222"}}
	s := h.session(p)
	if len(s.out.Faults) != 0 {
		t.Fatalf("faults %v; RPCs %v", s.out.Faults, s.rpcs)
	}
	found := map[string]bool{}
	for i := 1; i <= 6; i++ {
		if v, ok := h.dev.Get(table + itoa(i) + ".DirectoryNumber"); ok {
			found[v] = true
		}
	}
	if !found["+31201111111"] || !found["+31202222222"] {
		t.Errorf("device lines %v, want both numbers", found)
	}
	if count(s.rpcs, "Add") != 2 {
		t.Errorf("RPCs %v, want two AddObjects", s.rpcs)
	}
	last := h.scriptLog[len(h.scriptLog)-1]
	if !strings.Contains(last, "=+31201111111") || !strings.Contains(last, "=+31202222222") || !strings.HasPrefix(last, "4 lines") {
		t.Errorf("log %q: want the four lines, the new ones included", last)
	}

	// Next session: nothing to add.
	h.clock = t0.Add(time.Minute)
	s = h.session(p)
	if count(s.rpcs, "Add") != 0 || len(s.out.Faults) != 0 {
		t.Errorf("second session: %v, faults %v", s.rpcs, s.out.Faults)
	}
}

// instancesDoc is the example of GenieACS's provisions documentation
// ("Creating/deleting object instances") on a table the simulated device
// has: every instance deleted but those the two alias declarations keep.
const instancesDoc = `const now = Date.now();
const table = "InternetGatewayDevice.Services.VoiceService.1.VoiceProfile.1.Line.";
// Ensure that *all* other instances are deleted
declare(table + "[]", null, {path: 0});

// Add the two entries we care about
declare(table + "[DirectoryNumber:+31201111111,Enable:Enabled]",  {path: now}, {path: 1});
declare(table + "[DirectoryNumber:+31202222222,Enable:Enabled]", {path: now}, {path: 1});
`

func TestGenieACSInstancesDoc(t *testing.T) {
	h := newHarness(t, "tr098").inform(t0.Add(-time.Hour))
	const table = igd + "Services.VoiceService.1.VoiceProfile.1.Line."
	p := prov{channel: "voice", script: mustCompile(t, "lines", instancesDoc)}
	s := h.session(p)
	if len(s.out.Faults) != 0 {
		t.Fatalf("faults %v; RPCs %v", s.out.Faults, s.rpcs)
	}
	var numbers []string
	for i := 1; i <= 6; i++ {
		if v, ok := h.dev.Get(table + itoa(i) + ".DirectoryNumber"); ok {
			numbers = append(numbers, v)
		}
	}
	if len(numbers) != 2 || numbers[0] != "+31201111111" || numbers[1] != "+31202222222" {
		t.Errorf("device lines %v, want exactly the two declared", numbers)
	}
	if len(s.out.Deleted) != 2 || len(s.out.Added) != 2 {
		t.Errorf("deleted %v, added %v", s.out.Deleted, s.out.Added)
	}
	// Next session: the table is as declared.
	h.clock = t0.Add(time.Minute)
	s = h.session(p)
	if count(s.rpcs, "Add") != 0 || count(s.rpcs, "Del") != 0 || len(s.out.Faults) != 0 {
		t.Errorf("second session: %v, faults %v", s.rpcs, s.out.Faults)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

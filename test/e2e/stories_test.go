package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// The seed's stories (issue 13), told as an operator lives them: one
// `edgeacs dev` with CPEs of three models (TR-098 gateways, TR-181
// routers, TR-104 VoIP adapters), and the real binary's fleet commands
// typed in the folder that holds ./data (no --api, no --token). Each story
// checks what the operator reads and the exit codes; every command's
// output, and the dev system's own, is checked for every secret a story
// sent: a password shows only as ********.

// storyMask is how every output shows a secret value.
const storyMask = "********"

// storyCLI runs fleet commands in the dev system's folder and holds the
// secrets no output may show.
type storyCLI struct {
	bin, dir string

	mu      sync.Mutex
	secrets []string
}

// storyRun is one command's outcome.
type storyRun struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r storyRun) String() string {
	return fmt.Sprintf("edgeacs %s (exit %d)\n--- stdout ---\n%s--- stderr ---\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// secret registers values no output may show from now on.
func (s *storyCLI) secret(vs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, vs...)
}

// leaks reports the registered secrets text shows.
func (s *storyCLI) leaks(text string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, v := range s.secrets {
		if strings.Contains(text, v) {
			out = append(out, v)
		}
	}
	return out
}

// run runs a fleet command as a user would type it in the folder and
// fails the test if its output shows a secret.
func (s *storyCLI) run(t *testing.T, args ...string) storyRun {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Dir, cmd.Env = s.dir, cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := storyRun{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("edgeacs %s: %v", strings.Join(args, " "), err)
	}
	if l := s.leaks(r.stdout + r.stderr); len(l) > 0 {
		t.Errorf("the output shows the secrets %q:\n%s", l, r)
	}
	return r
}

// ok runs a command that must succeed and returns its standard output.
func (s *storyCLI) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.run(t, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%s", r)
	}
	return r.stdout
}

// okJSON runs a command with --json that must succeed and decodes its
// output into out.
func (s *storyCLI) okJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	args = append(args[:len(args):len(args)], "--json")
	stdout := s.ok(t, args...)
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		t.Fatalf("edgeacs %s: %v:\n%s", strings.Join(args, " "), err, stdout)
	}
}

func (s *storyCLI) device(t *testing.T, id string) fleet.DeviceView {
	t.Helper()
	var d fleet.DeviceView
	s.okJSON(t, &d, "devices", "show", id)
	return d
}

// deviceIDs are the IDs a devices list --filter selects.
func (s *storyCLI) deviceIDs(t *testing.T, filter string) []string {
	t.Helper()
	var ds []fleet.DeviceView
	s.okJSON(t, &ds, "devices", "list", "--filter", filter)
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

// wantLines fails unless text has a line matching each pattern.
func wantLines(t *testing.T, what, text string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)^` + p + `$`).MatchString(text) {
			t.Errorf("%s: no line matches %q:\n%s", what, p, text)
		}
	}
}

// valueLine is the pattern of a "PATH = VALUE (TYPE)" line of get and set.
func valueLine(path, value, typ string) string {
	return regexp.QuoteMeta(path + " = " + value + " (" + typ + ")")
}

// TestStories runs the seed's four stories against one `edgeacs dev` of
// 60 CPEs: a Wi-Fi password, a VoIP line, a set-top box's diagnostics and
// reboot, and a firmware update of 50 devices.
func TestStories(t *testing.T) {
	began := time.Now()
	bin := coreBuild(t)
	dir := t.TempDir()
	edgeAPI := coreFreeAddr(t)
	p := startDev(t, bin, dir, 1, "--data", "data", "--sim", "60", "--model", "tr098,tr181,voip",
		"--api-addr", coreFreeAddr(t), "--cwmp-addr", coreFreeAddr(t), "--edge-api-addr", edgeAPI,
		"--raft-addr", coreFreeAddr(t), "--sync-addr", freeUDPAddr(t), "--stun-addr", freeUDPAddr(t))
	t.Logf("built and ready after %v", time.Since(began).Round(time.Millisecond))
	// The stories expect each operation to wake its device into a session
	// of its own: first let the 60 bootstrap sessions end (a device still
	// in one would run the story's tasks there, with no connection
	// request, and it lingers for follow-ups).
	coreWait(t, "the CPEs' first sessions to end", 90*time.Second, func() bool {
		return edgeOpenSessions(t, edgeAPI) == 0
	})
	s := &storyCLI{bin: bin, dir: dir}

	byClass := map[string][]string{}
	var all []fleet.DeviceView
	s.okJSON(t, &all, "devices", "list")
	for _, d := range all {
		byClass[d.ProductClass] = append(byClass[d.ProductClass], d.ID)
	}
	if len(all) != 60 || len(byClass["HG-2000"]) != 20 || len(byClass["RX-181"]) != 20 || len(byClass["VA-200"]) != 20 {
		t.Fatalf("want 20 devices of each of HG-2000 (TR-098), RX-181 (TR-181) and VA-200 (VoIP), got %d: %v", len(all), byClass)
	}
	gw098, gw181, voip, stb := byClass["HG-2000"][0], byClass["RX-181"][0], byClass["VA-200"][0], byClass["RX-181"][1]

	// Every story runs on its own devices; these ten stay out of the
	// firmware wave, whose filter is Tags.lab IS NULL.
	lab := []string{gw098, gw181, voip, stb}
	for i := 2; len(lab) < 10; i++ {
		for _, class := range []string{"HG-2000", "RX-181", "VA-200"} {
			if id := byClass[class][i]; len(lab) < 10 && !slices.Contains(lab, id) {
				lab = append(lab, id)
			}
		}
	}

	t.Run("WiFiPassword", func(t *testing.T) { storyWiFiPassword(t, s, gw098, gw181) })
	t.Run("VoIPLine", func(t *testing.T) { storyVoIPLine(t, s, voip) })
	t.Run("SetTopBoxDiagnostics", func(t *testing.T) { storySetTopBox(t, s, stb) })
	t.Run("FirmwareUpdate", func(t *testing.T) { storyFirmware(t, s, lab) })

	// The dev system's own output (its banner and its log) shows no
	// secret either.
	for _, f := range []string{p.out, p.log} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if l := s.leaks(string(b)); len(l) > 0 {
			t.Errorf("%s shows the secrets %q", filepath.Base(f), l)
		}
	}
	t.Logf("build, start and the four stories: %v", time.Since(began).Round(time.Millisecond))
}

// storyWiFiPassword: a subscriber forgot the Wi-Fi password; the operator
// sets a new one (and a new network name) on a TR-098 and a TR-181
// gateway. get reads it back from the device, the next session refreshes
// the core's copy, and the password shows as ******** everywhere.
func storyWiFiPassword(t *testing.T, s *storyCLI, gw098, gw181 string) {
	const igd = "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1."
	for _, c := range []struct {
		model, dev, obj, ssid, key, pass string
	}{
		{"TR-098", gw098, igd, igd + "SSID", igd + "KeyPassphrase", "tr098 horse battery staple"},
		{"TR-181", gw181, "Device.WiFi.", "Device.WiFi.SSID.1.SSID", "Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "tr181-Correct-Staple-42"},
	} {
		t.Run(c.model, func(t *testing.T) {
			s.secret(c.pass)
			ssid := "story-wifi-" + strings.ReplaceAll(strings.ToLower(c.model), "-", "")
			start := time.Now()
			out := s.ok(t, "set", c.dev, c.ssid+"="+ssid, c.key+"="+c.pass)
			wantLines(t, "set", out, valueLine(c.key, storyMask, "xsd:string"), valueLine(c.ssid, ssid, "xsd:string"))

			out = s.ok(t, "get", c.dev, c.key, c.ssid)
			wantLines(t, "get", out, valueLine(c.key, storyMask, "xsd:string"), valueLine(c.ssid, ssid, "xsd:string"))
			var got fleet.TaskView
			s.okJSON(t, &got, "get", c.dev, c.key)
			if got.Result == nil || len(got.Result.ParameterValues) != 1 || got.Result.ParameterValues[0].Value != storyMask {
				t.Errorf("get --json: %+v, want %s read back as %s", got.Result, c.key, storyMask)
			}

			// The next session (a connection request) re-reads the
			// Wi-Fi subtree from the device into the core's copy.
			out = s.ok(t, "refresh", c.dev, c.obj)
			wantLines(t, "refresh", out, regexp.QuoteMeta("refreshed "+c.obj+" on "+c.dev)+".*")
			out = s.ok(t, "devices", "show", "--path", c.obj, c.dev)
			wantLines(t, "devices show --path", out,
				regexp.QuoteMeta(c.key)+` +xsd:string +`+regexp.QuoteMeta(storyMask),
				regexp.QuoteMeta(c.ssid)+` +xsd:string +`+regexp.QuoteMeta(ssid),
				`Last inform +\S+ \(.*6 CONNECTION REQUEST.*\)`)
			d := s.device(t, c.dev)
			if d.LastInform.Before(start) {
				t.Errorf("the device's last inform is %v, before the set at %v", d.LastInform, start)
			}
			if p := d.Parameters[c.ssid]; p.Value != ssid || p.Timestamp.Before(start) {
				t.Errorf("the core's copy of %s: %+v, want %q read after %v", c.ssid, p, ssid, start)
			}
			if p := d.Parameters[c.key]; !p.Secret || p.Value != storyMask || p.Timestamp.Before(start) {
				t.Errorf("the core's copy of %s: %+v, want a secret shown as %s, written after %v", c.key, p, storyMask, start)
			}
			s.ok(t, "devices", "show", c.dev)

			// The task keeps the password for the device; its views
			// show the mask and name what they hid.
			var tasks []fleet.TaskView
			s.okJSON(t, &tasks, "tasks", "list", "--device", c.dev)
			var set *fleet.TaskView
			for i := range tasks {
				if tasks[i].Name == fleet.TaskSetParameterValues && slices.ContainsFunc(tasks[i].ParameterValues, func(pv fleet.ParameterValue) bool { return pv.Name == c.key }) {
					set = &tasks[i]
				}
			}
			if set == nil {
				t.Fatalf("tasks list --device %s --json has no setParameterValues of %s: %+v", c.dev, c.key, tasks)
			}
			if set.Status != fleet.StatusDone || !slices.Contains(set.Redacted, c.key) {
				t.Errorf("the set task: status %s, redacted %q; want done, %s redacted", set.Status, set.Redacted, c.key)
			}
			for _, pv := range set.ParameterValues {
				if pv.Name == c.key && pv.Value != storyMask {
					t.Errorf("tasks list --json shows %s as %q, want %s", c.key, pv.Value, storyMask)
				}
			}
			out = s.ok(t, "tasks", "show", set.ID)
			wantLines(t, "tasks show", out, valueLine(c.key, storyMask, "xsd:string"))
			s.ok(t, "tasks", "show", "--json", set.ID)
			s.ok(t, "tasks", "list")
		})
	}

	// A key the device refuses is not echoed either, though the CPE's
	// fault text quotes the value it refused.
	t.Run("RefusedKey", func(t *testing.T) {
		const psk = "Device.WiFi.AccessPoint.1.Security.PreSharedKey"
		bad := "not-hex-Staple-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		s.secret(bad)
		r := s.run(t, "set", gw181, psk+"="+bad)
		if r.code != 1 || r.stdout != "" {
			t.Fatalf("want exit 1 and nothing on stdout:\n%s", r)
		}
		wantLines(t, "set", r.stderr, regexp.QuoteMeta("edgeacs set: "+gw181+": "+psk+": fault 9007 Invalid parameter value")+".*"+regexp.QuoteMeta(storyMask)+".*")
		s.ok(t, "faults", "list", "--json")
		s.ok(t, "tasks", "list", "--device", gw181, "--status", "fault", "--json")
	})
}

// storyVoIPLine: a new subscriber's phone line on a VoIP adapter: its
// number and SIP account. get confirms it; a value of the wrong type
// shows the CPE's fault, one line per parameter, and changes nothing.
func storyVoIPLine(t *testing.T, s *storyCLI, voip string) {
	const line = "InternetGatewayDevice.Services.VoiceService.1.VoiceProfile.1.Line.1."
	const number, user, pass = "+31205550123", "story-sip-0123", "sip-Staple-Secret-77"
	s.secret(pass)
	out := s.ok(t, "set", voip, line+"DirectoryNumber="+number, line+"SIP.AuthUserName="+user, line+"SIP.AuthPassword="+pass)
	wantLines(t, "set", out,
		valueLine(line+"DirectoryNumber", number, "xsd:string"),
		valueLine(line+"SIP.AuthUserName", user, "xsd:string"),
		valueLine(line+"SIP.AuthPassword", storyMask, "xsd:string"))

	confirm := func(what string) {
		t.Helper()
		out := s.ok(t, "get", voip, line+"DirectoryNumber", line+"SIP.")
		wantLines(t, what, out,
			valueLine(line+"DirectoryNumber", number, "xsd:string"),
			valueLine(line+"SIP.AuthUserName", user, "xsd:string"),
			valueLine(line+"SIP.AuthPassword", storyMask, "xsd:string"))
	}
	confirm("get")

	// Line.Enable is a string in TR-104 ("Enabled"), so a boolean is the
	// wrong type (9006); CallerIDEnable is a boolean, and "maybe" is not
	// one (9007). The CPE refuses the whole SetParameterValues: the new
	// number in the same command is not applied.
	r := s.run(t, "set", voip, line+"Enable=abc:boolean", line+"CallingFeatures.CallerIDEnable=maybe", line+"DirectoryNumber=+31209999999")
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("want exit 1 and nothing on stdout:\n%s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 2 {
		t.Errorf("want one line per refused parameter (2):\n%s", r)
	}
	prefix := regexp.QuoteMeta("edgeacs set: " + voip + ": ")
	wantLines(t, "set", r.stderr,
		prefix+regexp.QuoteMeta(line+"Enable: fault 9006 Invalid parameter type")+`.*`+
			regexp.QuoteMeta("(sent as xsd:boolean; edgeacs get "+voip+" "+line+"Enable shows the device's type)"),
		prefix+regexp.QuoteMeta(line+"CallingFeatures.CallerIDEnable: fault 9007 Invalid parameter value")+`.*`)
	confirm("get after the refused set")

	var faults []fleet.FaultView
	s.okJSON(t, &faults, "faults", "list", "--device", voip)
	if len(faults) == 0 {
		t.Fatalf("faults list --device %s: none", voip)
	}
	if len(faults) != 1 || !strings.HasPrefix(faults[0].Detail[line+"Enable"], "9006 ") || !strings.HasPrefix(faults[0].Detail[line+"CallingFeatures.CallerIDEnable"], "9007 ") {
		t.Errorf("faults list --device %s: want the one fault, 9006 on Enable and 9007 on CallerIDEnable: %+v", voip, faults)
	}
	out = s.ok(t, "tasks", "show", faults[0].Task)
	wantLines(t, "tasks show", out, `Fault +9003 .*`,
		regexp.QuoteMeta(line+"Enable: 9006 Invalid parameter type")+`.*`)
}

// storySetTopBox: a customer calls about a slow set-top box. The operator
// refreshes its DeviceInfo, reads uptime and memory, reboots it and sees
// it come back with a "M Reboot" / "1 BOOT" inform. The simulator has no
// set-top box model; a TR-181 device (Device:2, the root TR-135 boxes
// use) stands in.
func storySetTopBox(t *testing.T, s *storyCLI, stb string) {
	const info = "Device.DeviceInfo."
	out := s.ok(t, "refresh", stb, info)
	wantLines(t, "refresh", out, regexp.QuoteMeta("refreshed "+info+" on "+stb)+".*")
	out = s.ok(t, "devices", "show", "--path", info, stb)
	wantLines(t, "devices show --path", out, regexp.QuoteMeta(info+"UpTime")+` +xsd:unsignedInt +\d+`,
		regexp.QuoteMeta(info+"MemoryStatus.Total")+` +xsd:unsignedInt +524288`)

	readValues := func() map[string]int {
		t.Helper()
		out := s.ok(t, "get", stb, info+"UpTime", info+"MemoryStatus.")
		vals := map[string]int{}
		for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(info)+`(\S+) = (\d+) \(xsd:unsignedInt\)$`).FindAllStringSubmatch(out, -1) {
			vals[m[1]], _ = strconv.Atoi(m[2])
		}
		if len(vals) != 3 {
			t.Fatalf("get UpTime and MemoryStatus.: want 3 unsignedInt values:\n%s", out)
		}
		return vals
	}
	before := readValues()
	if total, free := before["MemoryStatus.Total"], before["MemoryStatus.Free"]; total != 524288 || free <= 0 || free >= total {
		t.Errorf("memory: total %d, free %d; want 524288 and 0 < free < total", total, free)
	}

	rebooted := time.Now()
	out = s.ok(t, "reboot", stb)
	wantLines(t, "reboot", out, regexp.QuoteMeta("rebooting "+stb))
	var back fleet.DeviceView
	coreWait(t, "the set-top box to inform M Reboot and 1 BOOT", 20*time.Second, func() bool {
		back = s.device(t, stb)
		return !back.LastInform.Before(rebooted) && slices.Contains(back.LastEvents, "M Reboot") && slices.Contains(back.LastEvents, "1 BOOT")
	})
	out = s.ok(t, "devices", "show", stb)
	wantLines(t, "devices show", out, `Last inform +\S+ \((1 BOOT, M Reboot|M Reboot, 1 BOOT)\)`)
	after := readValues()
	if up, most := after["UpTime"], int(time.Since(rebooted)/time.Second)+1; up > most {
		t.Errorf("UpTime %d s after the reboot %v ago (it was %d before): the device did not restart", up, time.Since(rebooted).Round(time.Millisecond), before["UpTime"])
	}
}

// storyFirmware: firmware 2.5.0 goes to a wave of 50 devices (every
// device not tagged lab), with one bulk command; each reports the new
// SoftwareVersion. Then a script sends it to the 10 lab devices and reads
// each device's outcome from --json.
func storyFirmware(t *testing.T, s *storyCLI, lab []string) {
	const version = "2.5.0"
	const fw = "fw_v" + version + ".bin"
	img := bytes.Repeat([]byte("edgeacs firmware image "+version+"\n"), 2048)
	if err := os.WriteFile(filepath.Join(s.dir, fw), img, 0o644); err != nil {
		t.Fatal(err)
	}
	out := s.ok(t, "files", "upload", fw, "--version", version)
	wantLines(t, "files upload", out, regexp.QuoteMeta("uploaded "+fw+" (")+`.*1 Firmware Upgrade Image.*`)
	out = s.ok(t, "files", "list")
	wantLines(t, "files list", out, regexp.QuoteMeta(fw)+` +1 Firmware Upgrade Image +`+regexp.QuoteMeta(version)+` .*`)

	for _, id := range lab {
		s.ok(t, "devices", "tag", id, "+lab")
	}
	const wave = "Tags.lab IS NULL"
	if ids := s.deviceIDs(t, wave); len(ids) != 50 {
		t.Fatalf("%q selects %d devices, want 50", wave, len(ids))
	}
	const upgraded = "(InternetGatewayDevice.DeviceInfo.SoftwareVersion = '" + version + "' OR Device.DeviceInfo.SoftwareVersion = '" + version + "')"
	if ids := s.deviceIDs(t, upgraded); len(ids) != 0 {
		t.Fatalf("before the update %d devices run %s already: %v", len(ids), version, ids)
	}

	start := time.Now()
	r := s.run(t, "download", "--filter", wave, "--file", fw, "--timeout", "45s")
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%s", r)
	}
	t.Logf("download to 50 devices: %v", time.Since(start).Round(time.Millisecond))
	wantLines(t, "download --filter", r.stdout, regexp.QuoteMeta("download on 50 devices: 50 done, 0 fault, 0 pending"))
	if r.stderr != "" {
		t.Errorf("download --filter with no terminal: want nothing on stderr (no progress bar):\n%s", r)
	}
	// A task is done once the device reported TransferComplete, in the
	// session after its reboot; its new version is at the core by then or
	// soon after.
	var got []string
	coreWait(t, "the 50 devices to report SoftwareVersion "+version, 15*time.Second, func() bool {
		got = s.deviceIDs(t, wave+" AND "+upgraded)
		return len(got) == 50
	})
	if ids := s.deviceIDs(t, "Tags.lab IS NOT NULL AND "+upgraded); len(ids) != 0 {
		t.Errorf("%d lab devices, outside the wave, run %s: %v", len(ids), version, ids)
	}
	d := s.device(t, got[0])
	if !slices.Contains(d.LastEvents, "M Download") || !slices.Contains(d.LastEvents, "7 TRANSFER COMPLETE") {
		t.Errorf("%s: last events %q, want M Download and 7 TRANSFER COMPLETE", d.ID, d.LastEvents)
	}

	// The lab devices, by a script: one outcome per device.
	var outcomes []struct {
		Device string           `json:"device"`
		Task   string           `json:"task"`
		Status fleet.TaskStatus `json:"status"`
	}
	s.okJSON(t, &outcomes, "download", "--filter", "Tags.lab IS NOT NULL", "--file", fw, "--timeout", "45s")
	var devs []string
	for _, o := range outcomes {
		if o.Status != fleet.StatusDone || o.Task == "" {
			t.Errorf("download --json: %+v, want done with its task", o)
		}
		devs = append(devs, o.Device)
	}
	slices.Sort(devs)
	if want := slices.Sorted(slices.Values(lab)); !slices.Equal(devs, want) {
		t.Errorf("download --json names the devices %q, want the lab's %q", devs, want)
	}
	coreWait(t, "all 60 devices to report SoftwareVersion "+version, 15*time.Second, func() bool {
		return len(s.deviceIDs(t, upgraded)) == 60
	})
}

// edgeOpenSessions reads the edge's open CWMP sessions from its /metrics
// (-1 when it does not answer).
func edgeOpenSessions(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	m := regexp.MustCompile(`(?m)^edgeacs_edge_open_sessions (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	n, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return -1
	}
	return int(n)
}

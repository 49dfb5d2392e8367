package main

// The fleet commands against a real system in this process: a core, an
// edge synced to it over QUIC, and simulated CPEs informing the edge.
// Each command runs as `edgeacs ...` would (newApp().Run), with its
// output and exit code captured.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/edge"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// fleetSystem is a core, one edge and n simulated devices homed there.
type fleetSystem struct {
	core  *isoCore
	edge  *edge.Node
	fleet *sim.Fleet
	api   string // the core's API, for --api
}

func startFleetSystem(t *testing.T, n int) *fleetSystem {
	t.Helper()
	caDir := filepath.Join(t.TempDir(), "ca")
	if err := fleetsync.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		role fleetsync.Role
	}{{"n1", fleetsync.RoleCore}, {"pop1", fleetsync.RoleEdge}} {
		if err := fleetsync.IssueCert(caDir, c.id, c.role, ""); err != nil {
			t.Fatal(err)
		}
	}
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.CADir = "n1", t.TempDir(), caDir
	cfg.RaftAddr, cfg.APIAddr, cfg.SyncAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	cfg.RaftNoSync, cfg.RaftLogLevel = true, "warn"
	cfg.Bootstrap = true
	stageSecret(t, cfg.DataDir)
	c := startIsoCore(t, cfg)
	if _, err := c.node.WaitForLeader(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, c.node)

	// The edge as startIsoEdge wires it, with connection requests to a
	// device spaced by 10 ms rather than a second: the commands here
	// send several tasks to one device back to back.
	ecfg := edge.Config{
		ID: "pop1", DataDir: t.TempDir(), CWMPAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0",
		CPEAuth: edge.AuthDigest, Username: isoUser, Password: isoPass,
		Core: []string{c.sync}, CADir: caDir, ShutdownTimeout: 2 * time.Second,
		CRMinInterval: 10 * time.Millisecond,
	}
	log := (&isoLog{name: "edge pop1"}).logger()
	tlsConf, err := edgeSyncTLS(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	node, err := edge.New(ecfg, log)
	if err != nil {
		t.Fatal(err)
	}
	up, err := newEdgeUplink(ecfg, tlsConf, node, log)
	if err != nil {
		t.Fatal(err)
	}
	node.SetUplink(up)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("edge: %v", err)
		}
	})
	select {
	case <-node.Ready():
	case err := <-done:
		t.Fatalf("edge: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("edge not ready after 15s")
	}
	waitSecret(t, node.Cache())

	f := isoFleet(t, "http://"+node.Addrs().CWMP+"/", n, 47, 0)
	isoStartFleet(t, f)
	isoWait(t, "every device homed at the core and provisioned at its edge", 30*time.Second, func() bool {
		for i := range n {
			id := f.Device(i).ID()
			d, err := node.Cache().Device(id)
			if err != nil || d.CRPassword == "" {
				return false
			}
			if cd, err := c.node.FSM().Device(id, false); err != nil || cd.Edge != "pop1" {
				return false
			}
		}
		return true
	})
	return &fleetSystem{core: c, edge: node, fleet: f, api: "http://" + c.node.APIAddr()}
}

// cliMu serializes runCLI: cli.ErrWriter and cli.OsExiter are globals.
var cliMu sync.Mutex

// runCLI runs `edgeacs args...` in-process and returns what it wrote to
// stdout and stderr and its exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cliMu.Lock()
	defer cliMu.Unlock()
	oldExit, oldErr := cli.OsExiter, cli.ErrWriter
	defer func() { cli.OsExiter, cli.ErrWriter = oldExit, oldErr }()
	exited := false
	cli.OsExiter = func(c int) { code, exited = c, true }
	var out, errb bytes.Buffer
	cli.ErrWriter = &errb
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errb
	err := runOrdered(app, append([]string{"edgeacs"}, args...))
	var ec cli.ExitCoder
	switch {
	case exited:
	case errors.As(err, &ec):
		code = ec.ExitCode()
	case err != nil:
		code = 1
	}
	return out.String(), errb.String(), code
}

// the sim's data model paths, by root.
func simPath(root, tr098, tr181 string) string {
	if root == "Device." {
		return "Device." + tr181
	}
	return "InternetGatewayDevice." + tr098
}

func TestFleetCLI(t *testing.T) {
	s := startFleetSystem(t, 4)
	api := []string{"--api", s.api}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		// Flags after the arguments, as people type them.
		return runCLI(t, append(args, api...)...)
	}
	d098, d181 := s.fleet.Device(0), s.fleet.Device(1)
	if d098.Root() == d181.Root() {
		t.Fatalf("the mixed fleet's first two devices share the root %s", d098.Root())
	}

	t.Run("devices list", func(t *testing.T) {
		out, errOut, code := run("devices", "list")
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "ID ") {
			t.Fatalf("exit %d, stderr %q:\n%s", code, errOut, out)
		}
		for i := range s.fleet.Len() {
			if !strings.Contains(out, s.fleet.Device(i).ID()) {
				t.Errorf("device %s not listed:\n%s", s.fleet.Device(i).ID(), out)
			}
		}
		cd, err := s.core.node.FSM().Device(d098.ID(), false)
		if err != nil {
			t.Fatal(err)
		}
		out, _, code = run("devices", "list", "--json", "--filter", fmt.Sprintf("DeviceID.ProductClass = '%s' AND %sDeviceInfo.SoftwareVersion IS NOT NULL", cd.ProductClass, d098.Root()))
		var devs []fleet.DeviceView
		if code != 0 || json.Unmarshal([]byte(out), &devs) != nil {
			t.Fatalf("list --filter --json: exit %d:\n%s", code, out)
		}
		var got []string
		for _, d := range devs {
			got = append(got, d.ID)
		}
		want := []string{s.fleet.Device(0).ID(), s.fleet.Device(2).ID()}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("filtered list %v, want %v", got, want)
		}
		_, errOut, code = run("devices", "list", "--filter", "DeviceID.ProductClass = ")
		if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "line 1, column 25") {
			t.Errorf("a filter that does not parse: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("get set secret", func(t *testing.T) {
		for _, d := range []*sim.Device{d098, d181} {
			psk := simPath(d.Root(), "LANDevice.1.WLANConfiguration.1.KeyPassphrase", "WiFi.AccessPoint.1.Security.KeyPassphrase")
			code := simPath(d.Root(), "DeviceInfo.ProvisioningCode", "DeviceInfo.ProvisioningCode")
			secret := "cli-secret-" + d.Model()
			out, errOut, exit := run("set", d.ID(), psk+"="+secret, code+"=CLI"+d.Model())
			if exit != 0 || errOut != "" {
				t.Fatalf("%s: set: exit %d, stderr %q", d.Model(), exit, errOut)
			}
			if want := psk + " = ******** (xsd:string)\n"; !strings.Contains(out, want) || !strings.Contains(out, code+" = CLI"+d.Model()+" (xsd:string)") {
				t.Errorf("%s: set printed:\n%s", d.Model(), out)
			}
			if v, _ := d.Get(psk); v != secret {
				t.Errorf("%s: the device holds %q, want the value set", d.Model(), v)
			}
			getOut, errOut, exit := run("get", d.ID(), psk, code)
			if exit != 0 || errOut != "" || !strings.Contains(getOut, psk+" = ********") || !strings.Contains(getOut, code+" = CLI"+d.Model()+" (xsd:string)") {
				t.Errorf("%s: get: exit %d, stderr %q:\n%s", d.Model(), exit, errOut, getOut)
			}
			jsonOut, _, exit := run("get", d.ID(), psk, "--json")
			var tv fleet.TaskView
			if exit != 0 || json.Unmarshal([]byte(jsonOut), &tv) != nil || tv.Result == nil || len(tv.Result.ParameterValues) != 1 ||
				tv.Result.ParameterValues[0].Value != secretMask {
				t.Errorf("%s: get --json: exit %d:\n%s", d.Model(), exit, jsonOut)
			}
			showOut, _, exit := run("devices", "show", d.ID(), "--path", psk)
			if exit != 0 || !strings.Contains(showOut, psk) || !strings.Contains(showOut, secretMask) {
				t.Errorf("%s: devices show: exit %d:\n%s", d.Model(), exit, showOut)
			}
			showJSON, _, _ := run("devices", "show", d.ID(), "--json")
			tasksOut, _, _ := run("tasks", "list", "--device", d.ID(), "--json")
			for what, o := range map[string]string{"set": out, "get": getOut, "get --json": jsonOut, "show": showOut, "show --json": showJSON, "tasks list": tasksOut} {
				if strings.Contains(o, secret) {
					t.Errorf("%s: %s shows the secret:\n%s", d.Model(), what, o)
				}
			}
		}
	})

	t.Run("fault", func(t *testing.T) {
		interval := simPath(d098.Root(), "ManagementServer.PeriodicInformInterval", "")
		out, errOut, code := run("set", d098.ID(), interval+"=600:unsignedInt")
		if code != 0 || out != interval+" = 600 (xsd:unsignedInt)\n" {
			t.Errorf("set with a type: exit %d, stderr %q:\n%s", code, errOut, out)
		}
		_, errOut, code = run("set", d098.ID(), interval+"=soon:unsignedInt")
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, interval+": fault 9007 Invalid parameter value") {
			t.Errorf("a bad value: exit %d, stderr %q", code, errOut)
		}
		uptime := simPath(d098.Root(), "DeviceInfo.NoSuchParameter", "")
		_, errOut, code = run("get", d098.ID(), uptime)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "fault 9005 ") {
			t.Errorf("an unknown parameter: exit %d, stderr %q", code, errOut)
		}
		out, _, code = run("faults", "list", "--device", d098.ID(), "--json")
		var faults []fleet.FaultView
		if code != 0 || json.Unmarshal([]byte(out), &faults) != nil || len(faults) != 2 {
			t.Fatalf("faults list: exit %d:\n%s", code, out)
		}
		if out, _, code := run("faults", "clear", faults[0].ID); code != 0 || !strings.Contains(out, "cleared fault "+faults[0].ID) {
			t.Errorf("faults clear: exit %d: %s", code, out)
		}
		if _, errOut, code := run("faults", "clear", faults[0].ID); code != 1 || !strings.Contains(errOut, "not found") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("faults clear twice: exit %d: %q", code, errOut)
		}
	})

	t.Run("bulk reboot", func(t *testing.T) {
		for _, i := range []int{1, 2, 3} {
			if _, errOut, code := run("devices", "tag", s.fleet.Device(i).ID(), "+bulk", "-nothing"); code != 0 {
				t.Fatalf("tag: exit %d: %s", code, errOut)
			}
		}
		out, errOut, code := run("reboot", "--filter", "Tags.bulk IS NOT NULL", "--json")
		var outcomes []bulkOutcome
		if code != 0 || json.Unmarshal([]byte(out), &outcomes) != nil || len(outcomes) != 3 {
			t.Fatalf("reboot --filter: exit %d, stderr %q:\n%s", code, errOut, out)
		}
		for k, o := range outcomes {
			if o.Device != s.fleet.Device(k+1).ID() && !slices.ContainsFunc([]int{1, 2, 3}, func(i int) bool { return s.fleet.Device(i).ID() == o.Device }) {
				t.Errorf("outcome for an untagged device: %+v", o)
			}
			if o.Status != fleet.StatusDone || o.Task == "" {
				t.Errorf("outcome %+v", o)
			}
		}
		// Each rebooted device informs M Reboot once it is back.
		isoWait(t, "the rebooted devices to inform M Reboot", 30*time.Second, func() bool {
			for _, o := range outcomes {
				d, err := s.core.node.FSM().Device(o.Device, false)
				if err != nil || !slices.Contains(d.LastEvents, "M Reboot") {
					return false
				}
			}
			return true
		})
		out, _, code = run("reboot", "--filter", "Tags.bulk IS NOT NULL AND DeviceID.ID = 'none'")
		if code != 0 || out != "" {
			t.Errorf("a filter that selects nothing: exit %d: %s", code, out)
		}
	})

	t.Run("async and tasks", func(t *testing.T) {
		uptime := simPath(d181.Root(), "", "DeviceInfo.UpTime")
		out, _, code := run("get", d181.ID(), uptime, "--async")
		id := strings.TrimSpace(out)
		if code != 0 || len(id) != 26 {
			t.Fatalf("get --async: exit %d: %q", code, out)
		}
		isoWait(t, "the async task to end", 15*time.Second, func() bool {
			tk, err := s.core.node.FSM().Task(id)
			return err == nil && tk.Status.Final()
		})
		out, _, code = run("tasks", "show", id)
		if code != 0 || !strings.Contains(out, "getParameterValues") || !strings.Contains(out, uptime+" = ") {
			t.Errorf("tasks show: exit %d:\n%s", code, out)
		}
		out, _, code = run("tasks", "list", "--device", d181.ID(), "--status", "done")
		if code != 0 || !strings.Contains(out, id) || !strings.HasPrefix(out, "TASK ") {
			t.Errorf("tasks list: exit %d:\n%s", code, out)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		// The fleet informs only when woken: --no-wake waits in vain.
		_, errOut, code := run("reboot", d098.ID(), "--no-wake", "--timeout", "700ms")
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "is still pending after 700ms") {
			t.Errorf("single task past --timeout: exit %d: %q", code, errOut)
		}
		out, errOut, code := run("reboot", "--filter", "Tags.bulk IS NOT NULL", "--no-wake", "--timeout", "700ms", "--json")
		var outcomes []bulkOutcome
		if code != 1 || json.Unmarshal([]byte(out), &outcomes) != nil || len(outcomes) != 3 || !strings.Contains(errOut, "3 tasks still pending") {
			t.Errorf("bulk past --timeout: exit %d, stderr %q:\n%s", code, errOut, out)
		}
		for _, o := range outcomes {
			if o.Status != fleet.StatusPending || o.Device == "" {
				t.Errorf("outcome %+v", o)
			}
		}
		// Cancel them all, so no later wake runs them.
		out, _, code = run("tasks", "list", "--status", "pending", "--json")
		var pending []fleet.TaskView
		if code != 0 || json.Unmarshal([]byte(out), &pending) != nil || len(pending) != 4 {
			t.Fatalf("pending tasks: exit %d:\n%s", code, out)
		}
		for _, tk := range pending {
			if out, _, code := run("tasks", "cancel", tk.ID); code != 0 || !strings.Contains(out, "cancelled task "+tk.ID) {
				t.Errorf("cancel: exit %d: %s", code, out)
			}
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"get"},
			{"get", d098.ID()},
			{"set", d098.ID(), "no-equals-sign"},
			{"set-attrs", d098.ID(), "A.B", "--notify", "loud"},
			{"devices", "list", "--bogus"},
			{"devices", "show"},
			{"reboot", d098.ID(), "extra"},
			{"download", d098.ID()},
			{"tasks", "list", "--status", "finished"},
			{"get", d098.ID(), "A.B", "--timeout"},
		} {
			out, errOut, code := run(args...)
			if code != 2 || strings.Count(errOut, "\n") != 1 || out != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line", args, code, out, errOut)
			}
		}
		// An API that does not answer: one line naming it, no HTTP dump.
		if _, errOut, code := runCLI(t, "get", d098.ID(), "A.B", "--api", "127.0.0.1:1"); code != 1 || strings.Count(errOut, "\n") != 1 ||
			!strings.Contains(errOut, "cannot reach the API at http://127.0.0.1:1") || strings.Contains(errOut, "Post") {
			t.Errorf("unreachable API: exit %d: %q", code, errOut)
		}
		// An unknown device is the API's answer: one line, exit 1.
		if _, errOut, code := run("reboot", "no-such-device"); code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "no-such-device") {
			t.Errorf("unknown device: exit %d: %q", code, errOut)
		}
	})
}

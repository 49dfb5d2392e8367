package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/fleet"
)

// cmdCore is an in-process core node for the fleet commands' tests.
type cmdCore struct {
	node *core.Node
	api  string
	stop func()
}

// startCmdCore runs a core node; with join == "" it founds a one-node
// cluster holding testSecret, else it joins the node at that Raft address.
func startCmdCore(t *testing.T, id, join string) *cmdCore {
	t.Helper()
	dir := t.TempDir()
	cfg := core.Config{ID: id, DataDir: dir, RaftAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0",
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond, RaftNoSync: true}
	if join == "" {
		stageSecret(t, dir)
		cfg.Bootstrap = true
	} else {
		cfg.Join = join
	}
	n, err := core.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	var once sync.Once
	c := &cmdCore{node: n, api: "http://" + n.APIAddr(), stop: func() { once.Do(func() { cancel(); <-done }) }}
	t.Cleanup(c.stop)
	if join == "" {
		if _, err := n.WaitForLeader(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	waitSecret(t, n)
	return c
}

// mustRun runs a command that must succeed.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
	}
	t.Logf("%s\n%s", strings.Join(args, " "), out)
	return out
}

// mustFail runs a command that must exit with code, saying one line on
// standard error that matches want.
func mustFail(t *testing.T, code int, want string, args ...string) string {
	t.Helper()
	out, errs, got := runCLI(t, args...)
	if got != code || strings.Count(errs, "\n") != 1 || !regexp.MustCompile(want).MatchString(errs) {
		t.Fatalf("%v: exit %d, stderr %q (stdout %q); want exit %d and one line matching %q", args, got, errs, out, code, want)
	}
	t.Logf("exit %d: %s", got, strings.TrimSpace(errs))
	return errs
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFleetResourceCommands runs the files, presets, provisions, edges
// and cluster commands against one in-process core, with their error
// paths: usage errors exit 2, failures 1, each with one line.
func TestFleetResourceCommands(t *testing.T) {
	c := startCmdCore(t, "n1", "")
	api := []string{"--api", c.api}
	dir := t.TempDir()
	a := func(args ...string) []string { return append(args, api...) }

	t.Run("files", func(t *testing.T) {
		fw := writeFile(t, dir, "fw-2.1.bin", strings.Repeat("firmware", 1000))
		var bar bytes.Buffer
		old := resProgressTTY
		resProgressTTY = func(w io.Writer) bool { return true }
		defer func() { resProgressTTY = old }()
		outOut, errs, code := runCLI(t, a("files", "upload", fw, "--version", "2.1", "--oui", "00D09E")...)
		resProgressTTY = old
		bar.WriteString(errs)
		if code != 0 || !strings.Contains(outOut, "uploaded fw-2.1.bin (8.0 kB, 1 Firmware Upgrade Image, sha256 ") {
			t.Fatalf("upload: exit %d %q %q", code, outOut, errs)
		}
		if !strings.Contains(bar.String(), "uploading fw-2.1.bin") {
			t.Fatalf("no progress bar on a terminal: %q", bar.String())
		}
		if out := mustRun(t, a("files", "upload", fw, "--name", "acme.cfg", "--type", "3")...); !strings.Contains(out, "3 Vendor Configuration File") {
			t.Fatalf("upload --type 3: %q", out)
		}
		out := mustRun(t, a("files", "list")...)
		if !regexp.MustCompile(`fw-2\.1\.bin\s+1 Firmware Upgrade Image\s+2\.1\s+00D09E\s+8\.0 kB`).MatchString(out) || !strings.Contains(out, "acme.cfg") {
			t.Fatalf("files list:\n%s", out)
		}
		var fs []client.FileMeta
		if err := json.Unmarshal([]byte(mustRun(t, a("files", "list", "--json")...)), &fs); err != nil || len(fs) != 2 || fs[1].Size != 8000 {
			t.Fatalf("files list --json: %v %+v", err, fs)
		}
		if out := mustRun(t, a("files", "show", "fw-2.1.bin")...); !strings.Contains(out, "8000 bytes") || !strings.Contains(out, "00D09E") {
			t.Fatalf("files show:\n%s", out)
		}
		mustFail(t, 1, `^edgeacs files delete: file "?ghost"?: not found`, a("files", "delete", "ghost")...)
		mustFail(t, 1, `^edgeacs files show: .*not found`, a("files", "show", "ghost")...)
		mustFail(t, 2, `^edgeacs files upload: open .*absent.bin: no such file`, a("files", "upload", filepath.Join(dir, "absent.bin"))...)
		mustFail(t, 2, `^edgeacs files upload: "a/b" is not a file name`, a("files", "upload", fw, "--name", "a/b")...)
		mustFail(t, 2, `^edgeacs files upload: .* is not a regular file`, a("files", "upload", dir)...)
		mustFail(t, 2, `^edgeacs files upload: give exactly one file PATH`, a("files", "upload")...)
		mustFail(t, 2, `^edgeacs files delete: give exactly one file NAME`, a("files", "delete", "a", "b")...)
		if out := mustRun(t, a("files", "delete", "acme.cfg")...); out != "deleted file acme.cfg\n" {
			t.Fatalf("files delete: %q", out)
		}
		if out := mustRun(t, a("files", "list")...); strings.Contains(out, "acme.cfg") {
			t.Fatalf("deleted file still listed:\n%s", out)
		}
	})

	t.Run("presets", func(t *testing.T) {
		yml := writeFile(t, dir, "inform.yaml", "weight: 10\nevents: {\"1 BOOT\": true}\nprecondition: DeviceID.ProductClass = \"HG8245\"\n"+
			"provisions:\n  - [value, Device.ManagementServer.PeriodicInformInterval, 300]\n")
		if out := mustRun(t, a("presets", "apply", "-f", yml)...); out != "applied preset inform\n" {
			t.Fatalf("apply: %q", out)
		}
		out := mustRun(t, a("presets", "list")...)
		if !regexp.MustCompile(`inform\s+10\s+-\s+1 BOOT\s+DeviceID.ProductClass = "HG8245"\s+value`).MatchString(out) {
			t.Fatalf("presets list:\n%s", out)
		}
		// show prints what apply takes: the round trip changes nothing.
		shown := mustRun(t, a("presets", "show", "inform")...)
		js := writeFile(t, dir, "copy.json", shown)
		if out := mustRun(t, a("presets", "apply", "-f", js)...); out != "applied preset inform\n" {
			t.Fatalf("apply of show's output went to %q, not the preset's _id", out)
		}
		if again := mustRun(t, a("presets", "show", "inform")...); again != shown {
			t.Fatalf("round trip changed the preset:\n%s\n%s", shown, again)
		}
		if out := mustRun(t, a("presets", "apply", "-f", js, "--name", "inform2")...); out != "applied preset inform2\n" {
			t.Fatalf("apply --name: %q", out)
		}
		// Bad files: the line and column, in one line, not a stored preset.
		bad := writeFile(t, dir, "bad.yaml", "weight: 1\nprovisions:\n  - [refresh, A.]\n  x: : 3\n")
		mustFail(t, 2, `^edgeacs presets apply: .*bad\.yaml:4:\d+: `, a("presets", "apply", "-f", bad)...)
		typo := writeFile(t, dir, "typo.json", "{\"weight\": 1,\n  \"provisons\": [[\"refresh\", \"A.\"]]}\n")
		mustFail(t, 2, `^edgeacs presets apply: .*typo\.json:2:\d+: unknown field "provisons"`, a("presets", "apply", "-f", typo)...)
		cond := writeFile(t, dir, "cond.json", `{"precondition": "DeviceID.ProductClass = = 1", "provisions": [["refresh", "A."]]}`)
		mustFail(t, 2, `^edgeacs presets apply: .*cond\.json: preset "?cond"?: precondition: line 1, column \d+: `, a("presets", "apply", "-f", cond)...)
		noprov := writeFile(t, dir, "noprov.yaml", "weight: 1\n")
		mustFail(t, 2, `^edgeacs presets apply: .*noprov\.yaml: .*provisions`, a("presets", "apply", "-f", noprov)...)
		empty := writeFile(t, dir, "empty.yaml", "\n")
		mustFail(t, 2, `empty\.yaml: empty file`, a("presets", "apply", "-f", empty)...)
		mustFail(t, 2, `^edgeacs presets apply: give the preset file with -f FILE`, a("presets", "apply")...)
		mustFail(t, 2, `^edgeacs presets apply: open .*no-such\.yaml`, a("presets", "apply", "-f", filepath.Join(dir, "no-such.yaml"))...)
		for _, name := range []string{"cond", "noprov", "bad", "typo"} {
			mustFail(t, 1, `not found`, a("presets", "show", name)...)
		}
		mustFail(t, 1, `^edgeacs presets delete: preset "?ghost"?: not found`, a("presets", "delete", "ghost")...)

		// A secret a preset sets is hidden in every output unless asked
		// for, and a file holding the placeholder is refused.
		const psk, pw = "Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "hunter2-wifi"
		wifi := writeFile(t, dir, "wifi.yaml", "provisions:\n  - [value, "+psk+", "+pw+"]\n"+
			"  - [value, Device.ManagementServer.Password, acs-pass-1]\n  - [value, Device.WiFi.SSID.1.SSID, home]\n")
		if out := mustRun(t, a("presets", "apply", "-f", wifi, "--json")...); strings.Contains(out, pw) || !strings.Contains(out, "home") {
			t.Fatalf("apply --json shows the secret:\n%s", out)
		}
		for _, args := range [][]string{{"presets", "show", "wifi"}, {"presets", "list", "--json"}, {"presets", "list"}} {
			if out := mustRun(t, a(args...)...); strings.Contains(out, pw) || strings.Contains(out, "acs-pass-1") {
				t.Fatalf("%v shows a secret:\n%s", args, out)
			}
		}
		hidden := writeFile(t, dir, "wifi-shown.json", mustRun(t, a("presets", "show", "wifi")...))
		mustFail(t, 2, `wifi-shown\.json: the value of `+regexp.QuoteMeta(psk)+` is the placeholder`, a("presets", "apply", "-f", hidden)...)
		shown = mustRun(t, a("presets", "show", "wifi", "--show-secrets")...)
		if !strings.Contains(shown, pw) || !strings.Contains(shown, "acs-pass-1") {
			t.Fatalf("--show-secrets hides:\n%s", shown)
		}
		mustRun(t, a("presets", "apply", "-f", writeFile(t, dir, "wifi-full.json", shown))...)
		mustRun(t, a("presets", "delete", "wifi")...)
		if out := mustRun(t, a("presets", "delete", "inform2")...); out != "deleted preset inform2\n" {
			t.Fatalf("presets delete: %q", out)
		}
	})

	t.Run("provisions", func(t *testing.T) {
		src := "const v = 300;\ndeclare(\"Device.ManagementServer.PeriodicInformInterval\", {value: 1}, {value: v});\n"
		js := writeFile(t, dir, "set-inform.js", src)
		if out := mustRun(t, a("provisions", "apply", "-f", js)...); !strings.HasPrefix(out, "applied provision set-inform (") {
			t.Fatalf("apply: %q", out)
		}
		if out := mustRun(t, a("provisions", "list")...); !regexp.MustCompile(`set-inform\s+2\s+\d+ B`).MatchString(out) {
			t.Fatalf("provisions list:\n%s", out)
		}
		if out := mustRun(t, a("provisions", "show", "set-inform")...); out != src {
			t.Fatalf("show: %q", out)
		}
		var p client.Provision
		if err := json.Unmarshal([]byte(mustRun(t, a("provisions", "show", "set-inform", "--json")...)), &p); err != nil || p.Script != src {
			t.Fatalf("show --json: %v %+v", err, p)
		}
		bad := writeFile(t, dir, "broken.js", "const a = 1;\nlet = ;\n")
		mustFail(t, 2, `^edgeacs provisions apply: .*broken\.js:2:\d+: `, a("provisions", "apply", "-f", bad)...)
		mustFail(t, 1, `not found`, a("provisions", "show", "broken")...)
		mustFail(t, 2, `give the script with -f`, a("provisions", "apply")...)
		mustFail(t, 1, `^edgeacs provisions delete: provision "?ghost"?: not found`, a("provisions", "delete", "ghost")...)
		if out := mustRun(t, a("provisions", "delete", "set-inform")...); out != "deleted provision set-inform\n" {
			t.Fatalf("delete: %q", out)
		}
	})

	t.Run("edges", func(t *testing.T) {
		if out := mustRun(t, a("edges", "list")...); !strings.Contains(out, "no edge has connected yet") {
			t.Fatalf("no edges: %q", out)
		}
		// What the sync server reports as an edge connects and heartbeats.
		if err := c.node.EdgeConnected(context.Background(), "pop1", "10.1.2.3:4433"); err != nil {
			t.Fatal(err)
		}
		c.node.EdgeHealth("pop1", fleet.EdgeHealth{Devices: 42, OutboxLen: 3, OldestUnsent: 1500 * time.Millisecond}, true)
		out := mustRun(t, a("edges", "list")...)
		if !regexp.MustCompile(`(?m)^pop1\s+10\.1\.2\.3:4433\s+up\s+\ds ago\s+3 \(1\.5s\)\s+42\s*$`).MatchString(out) {
			t.Fatalf("edges list:\n%s", out)
		}
		// The link closes: the device count stays, the outbox is unknown.
		c.node.EdgeHealth("pop1", fleet.EdgeHealth{}, false)
		out = mustRun(t, a("edges", "list")...)
		if !regexp.MustCompile(`(?m)^pop1\s+10\.1\.2\.3:4433\s+down\s+\ds ago\s+-\s+42\s*$`).MatchString(out) {
			t.Fatalf("edges list after the link closed:\n%s", out)
		}
		mustFail(t, 2, `^edgeacs edges revoke: `, a("edges", "revoke", "../x")...)
		if out := mustRun(t, a("edges", "revoke", "pop1")...); !strings.Contains(out, "revoked edge pop1") {
			t.Fatalf("revoke: %q", out)
		}
		if out := mustRun(t, a("edges", "list")...); !regexp.MustCompile(`pop1\s+\S+\s+revoked`).MatchString(out) {
			t.Fatalf("edges list after revoke:\n%s", out)
		}
		var es []client.Edge
		if err := json.Unmarshal([]byte(mustRun(t, a("edges", "list", "--json")...)), &es); err != nil || len(es) != 1 || es[0].Health.Devices != 42 || es[0].Revoked.IsZero() {
			t.Fatalf("edges list --json: %v %+v", err, es)
		}
	})

	t.Run("errors", func(t *testing.T) {
		// Every command refuses an unknown flag with exit 2, before any request.
		for _, cmd := range [][]string{
			{"files", "upload"}, {"files", "list"}, {"files", "show"}, {"files", "delete"},
			{"presets", "list"}, {"presets", "show"}, {"presets", "apply"}, {"presets", "delete"},
			{"provisions", "list"}, {"provisions", "show"}, {"provisions", "apply"}, {"provisions", "delete"},
			{"edges", "list"}, {"edges", "revoke"}, {"cluster", "status"}, {"cluster", "join"}, {"cluster", "remove"},
		} {
			mustFail(t, 2, `no-such-flag`, append(cmd, "--no-such-flag")...)
		}
		mustFail(t, 2, `takes no arguments`, a("files", "list", "extra")...)
		// A wrong token: exit 1, the API's reason, no hint about giving one.
		mustFail(t, 1, `^edgeacs presets list: .*(token|unauthorized)`, a("presets", "list", "--token", "eacs_wrong")...)
		// Nothing at the address: exit 1, one line.
		mustFail(t, 1, `^edgeacs files list: cannot reach the API at http://127\.0\.0\.1:1`, "files", "list", "--api", "127.0.0.1:1")
	})

	t.Run("cluster", func(t *testing.T) {
		out := mustRun(t, a("cluster", "status")...)
		if !regexp.MustCompile(`(?m)^n1\s+127\.0\.0\.1:\d+\s+127\.0\.0\.1:\d+\s+voter\s+leader\s*$`).MatchString(out) {
			t.Fatalf("cluster status:\n%s", out)
		}
		mustFail(t, 1, `^edgeacs cluster remove: .*ghost`, a("cluster", "remove", "ghost")...)
		mustFail(t, 2, `give exactly one node ID`, a("cluster", "remove", "--id", "a", "b")...)
		mustFail(t, 2, `--id and --raft-addr are required`, a("cluster", "join", "--id", "n2")...)
	})
}

// TestClusterStatusUnreachable: with one of three nodes stopped, `cluster
// status` lists it as unreachable, at once and after the election,
// whichever node it was; the survivors show their own states.
func TestClusterStatusUnreachable(t *testing.T) {
	n1 := startCmdCore(t, "n1", "")
	nodes := []*cmdCore{n1, startCmdCore(t, "n2", n1.node.RaftAddr()), startCmdCore(t, "n3", n1.node.RaftAddr())}
	var out string
	isoWait(t, "three members, each up", 15*time.Second, func() bool {
		var code int
		out, _, code = runCLI(t, "cluster", "status", "--api", n1.api)
		return code == 0 && len(regexp.MustCompile(`(?m)voter\s+(leader|follower)\s*$`).FindAllString(out, -1)) == 3 &&
			strings.Count(out, "leader") == 1
	})
	// Stop the leader: the hardest case, since the survivors still name it.
	var leader *cmdCore
	for _, n := range nodes {
		if n.node.IsLeader() {
			leader = n
		}
	}
	if leader == nil {
		t.Fatalf("no leader:\n%s", out)
	}
	leader.stop()
	var survivor *cmdCore
	for _, n := range nodes {
		if n != leader {
			survivor = n
		}
	}
	row := regexp.MustCompile(fmt.Sprintf(`(?m)^%s\s+\S+\s+\S+\s+voter\s+unreachable\s*$`, leader.node.ID()))
	out = mustRun(t, "cluster", "status", "--api", survivor.api)
	if !row.MatchString(out) {
		t.Fatalf("the stopped leader is not unreachable:\n%s", out)
	}
	isoWait(t, "a new leader", 15*time.Second, func() bool {
		out = mustRun(t, "cluster", "status", "--api", survivor.api)
		return row.MatchString(out) && strings.Count(out, " leader") == 1 && !strings.Contains(out, "no leader")
	})
	var st client.ClusterStatus
	if err := json.Unmarshal([]byte(mustRun(t, "cluster", "status", "--api", survivor.api, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Servers {
		if (s.ID == leader.node.ID()) != (s.State == client.StateUnreachable) || (s.State == client.StateUnreachable && s.Problem == "") {
			t.Fatalf("--json: %+v", st)
		}
	}
}

// TestEdgesListRealEdge: an edge linked over the real sync protocol is
// listed with the address its link came from, up, and the device count
// its heartbeats report.
func TestEdgesListRealEdge(t *testing.T) {
	s := startContractSystem(t)
	api := "http://" + s.core.node.APIAddr()
	row := regexp.MustCompile(`(?m)^pop1\s+127\.0\.0\.1:\d+\s+up\s+\d+s ago\s+\d+(\s\(\S+\))?\s+1\s*$`)
	var out string
	isoWait(t, "edges list to show pop1 with its device", 15*time.Second, func() bool {
		out, _, _ = runCLI(t, "edges", "list", "--api", api)
		return row.MatchString(out)
	})
	t.Logf("\n%s", out)
}

// TestHideSecrets: a value given with its type is hidden too, the preset
// passed in is not changed, and hiddenSecret finds the placeholder.
func TestHideSecrets(t *testing.T) {
	p := client.Preset{Provisions: [][]any{
		{"value", "Device.Users.User.1.Password", []any{"pw", "xsd:string"}},
		{"value", "Device.DeviceInfo.ProvisioningCode", "x"},
		{"refresh", "Device."},
	}}
	h := hideSecrets(p)
	if got := h.Provisions[0][2].([]any); got[0] != secretHidden || got[1] != "xsd:string" {
		t.Fatalf("hidden: %v", h.Provisions)
	}
	if p.Provisions[0][2].([]any)[0] != "pw" || h.Provisions[1][2] != "x" {
		t.Fatalf("original changed or non-secret hidden: %v / %v", p.Provisions, h.Provisions)
	}
	if hiddenSecret(p) != "" || hiddenSecret(h) != "Device.Users.User.1.Password" {
		t.Fatalf("hiddenSecret: %q %q", hiddenSecret(p), hiddenSecret(h))
	}
}

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/internal/testnet"
)

// coreRepoRoot finds the module root from this file's location.
func coreRepoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// coreBuild builds the edgeacs binary into a temp dir.
func coreBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgeacs")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/edgeacs")
	cmd.Dir = coreRepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build edgeacs: %v\n%s", err, out)
	}
	return bin
}

// coreFreeAddr reserves a loopback port (TCP and UDP) for a process under
// test, held against other test processes until t ends.
func coreFreeAddr(t *testing.T) string {
	t.Helper()
	return testnet.Addr(t)
}

type coreProc struct {
	id, api, raft string
	args          []string
	logPath       string
	cmd           *exec.Cmd
	exited        chan struct{}
}

func (p *coreProc) start(t *testing.T, bin string) {
	t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.id, err)
	}
	p.exited = make(chan struct{})
	go func() {
		p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
}

// stop sends SIGTERM and waits; a node that ignores it is killed.
func (p *coreProc) stop() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *coreProc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

func coreHTTP(method, url, body string, out any) (int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %q: %w", raw, err)
		}
	}
	return resp.StatusCode, nil
}

// coreWrite sends an idempotent write (a PUT, or a task creation whose
// identical repeat is answered with the first) until it gets want, as a
// client of a cluster should: a 502/503/504 or a refused connection is an
// election in progress (a busy box can miss a heartbeat and re-elect), so
// it retries for up to 30 s. Any other answer ends it.
func coreWrite(t *testing.T, method, url, body string, out any, want int) {
	t.Helper()
	if code, err := coreRetry(method, url, body, out); code != want {
		t.Fatalf("%s %s: %d %v, want %d", method, url, code, err, want)
	}
}

// coreRetry is coreWrite's loop: the first answer that is not an election
// in progress, or the last one after 30 s.
func coreRetry(method, url, body string, out any) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := coreHTTP(method, url, body, out)
		transient := err != nil || code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
		if !transient || time.Now().After(deadline) {
			return code, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func coreWait(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type coreStatus struct {
	Leader  string `json:"leader"`
	Servers []struct {
		ID      string `json:"id"`
		APIAddr string `json:"apiAddr"`
	} `json:"servers"`
}

// TestCoreClusterFromCLI is issue 6's done-line: three `edgeacs core`
// processes form a cluster from the command line, a task and a preset made
// through one node are visible on all, and SIGKILL of the leader loses
// nothing acknowledged. The killed node then restarts with its data.
func TestCoreClusterFromCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three processes")
	}
	bin := coreBuild(t)
	dir := t.TempDir()
	procs := make([]*coreProc, 3)
	for i := range procs {
		id := fmt.Sprintf("n%d", i+1)
		p := &coreProc{id: id, api: coreFreeAddr(t), raft: coreFreeAddr(t), logPath: filepath.Join(dir, id+".log")}
		p.args = []string{"core", "--id", id, "--data", filepath.Join(dir, id), "--raft-addr", p.raft, "--api-addr", p.api,
			"--sync-addr", coreFreeAddr(t), "--heartbeat-timeout", "500ms", "--election-timeout", "500ms"}
		procs[i] = p
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop()
		}
		if t.Failed() {
			for _, p := range procs {
				b, _ := os.ReadFile(p.logPath)
				t.Logf("---- %s log ----\n%s", p.id, b)
			}
		}
	})
	procs[0].args = append(procs[0].args, "--bootstrap")
	procs[0].start(t, bin)
	for _, p := range procs[1:] {
		p.args = append(p.args, "--join", procs[0].raft)
		p.start(t, bin)
	}
	// The founder writes the first admin token; commands and requests
	// use it, as an operator would.
	tok := readAdminToken(t, filepath.Join(dir, "n1"))
	t.Setenv("EDGEACS_TOKEN", tok)
	for _, p := range procs {
		useToken(p.api, tok)
	}

	// `edgeacs cluster status` shows three voters with a leader.
	var st coreStatus
	coreWait(t, "a three-node cluster", 30*time.Second, func() bool {
		out, err := exec.Command(bin, "cluster", "status", "--api", procs[2].api, "--json").Output()
		if err != nil || json.Unmarshal(out, &st) != nil || st.Leader == "" || len(st.Servers) != 3 {
			return false
		}
		for _, s := range st.Servers {
			if s.APIAddr == "" {
				return false
			}
		}
		return true
	})
	table, err := exec.Command(bin, "cluster", "status", "--api", procs[1].api).Output()
	if err != nil || !strings.Contains(string(table), "leader") {
		t.Fatalf("cluster status table: %v\n%s", err, table)
	}
	byID := map[string]*coreProc{}
	for _, p := range procs {
		byID[p.id] = p
	}
	leader := byID[st.Leader]
	var via *coreProc // a follower: its writes are forwarded
	for _, p := range procs {
		if p != leader {
			via = p
			break
		}
	}
	base := func(p *coreProc) string { return "http://" + p.api + "/api/v1" }

	coreWrite(t, "PUT", base(via)+"/devices/00AA11-CPE-0001", `{"oui": "00AA11", "productClass": "CPE", "serialNumber": "0001"}`, nil, 200)
	preset := `{"weight": 0, "channel": "", "events": {"1 BOOT": true}, "precondition": "", "provisions": [["refresh", "InternetGatewayDevice.DeviceInfo"]]}`
	coreWrite(t, "PUT", base(via)+"/presets/boot-refresh", preset, nil, 200)
	var first struct {
		ID string `json:"_id"`
	}
	coreWrite(t, "POST", base(via)+"/devices/00AA11-CPE-0001/tasks", `{"name": "getParameterValues", "parameterNames": ["InternetGatewayDevice.DeviceInfo.SoftwareVersion"]}`, &first, 202)
	for _, p := range procs {
		coreWait(t, "task and preset on "+p.id, 10*time.Second, func() bool {
			c1, _ := coreHTTP("GET", base(p)+"/tasks/"+first.ID, "", nil)
			c2, _ := coreHTTP("GET", base(p)+"/presets/boot-refresh", "", nil)
			return c1 == 200 && c2 == 200
		})
	}

	// Writers hammer every node while the leader is SIGKILLed.
	var mu sync.Mutex
	acked := []string{first.ID}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := procs[(w+i)%len(procs)]
				var tk struct {
					ID string `json:"_id"`
				}
				// A distinct commandKey per request: identical requests would
				// be answered with the pending first one (idempotent creation).
				body := fmt.Sprintf(`{"name": "reboot", "commandKey": "w%d-%d"}`, w, i)
				if code, err := coreHTTP("POST", base(p)+"/devices/00AA11-CPE-0001/tasks", body, &tk); err == nil && code == 202 && tk.ID != "" {
					mu.Lock()
					acked = append(acked, tk.ID)
					mu.Unlock()
				} else {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	coreWait(t, "writes before the kill", 20*time.Second, func() bool { return count() > 30 })
	// The leader now, which a re-election on a busy box may have moved.
	coreWait(t, "the current leader", 30*time.Second, func() bool {
		out, err := exec.Command(bin, "cluster", "status", "--api", procs[0].api, "--json").Output()
		return err == nil && json.Unmarshal(out, &st) == nil && byID[st.Leader] != nil
	})
	leader = byID[st.Leader]
	leader.kill()
	killedAt := count()
	var survivors []*coreProc
	for _, p := range procs {
		if p != leader {
			survivors = append(survivors, p)
		}
	}
	coreWait(t, "a new leader and more writes", 30*time.Second, func() bool { return count() > killedAt+30 })
	close(stop)
	wg.Wait()
	t.Logf("%d writes acknowledged (%d before SIGKILL of leader %s)", count(), killedAt, leader.id)
	// The SIGKILLed leader is listed as unreachable, not with its old role.
	table, err = exec.Command(bin, "cluster", "status", "--api", survivors[0].api).Output()
	if err != nil || !regexp.MustCompile(`(?m)^`+leader.id+`\s.*\svoter\s+unreachable\s*$`).Match(table) {
		t.Fatalf("cluster status after the kill: %v\n%s", err, table)
	}

	check := func(p *coreProc) {
		t.Helper()
		coreWait(t, "every acknowledged task on "+p.id, 20*time.Second, func() bool {
			var list []struct {
				ID string `json:"_id"`
			}
			if code, _ := coreHTTP("GET", base(p)+"/devices/00AA11-CPE-0001/tasks?limit=10000", "", &list); code != 200 {
				return false
			}
			have := map[string]bool{}
			for _, tk := range list {
				have[tk.ID] = true
			}
			for _, id := range acked {
				if !have[id] {
					return false
				}
			}
			return true
		})
		if code, _ := coreHTTP("GET", base(p)+"/presets/boot-refresh", "", nil); code != 200 {
			t.Fatalf("preset missing on %s: %d", p.id, code)
		}
	}
	for _, p := range survivors {
		check(p)
	}

	// The killed node restarts from its data dir (no --bootstrap) and catches up.
	leader.args = slicesWithout(leader.args, "--bootstrap")
	leader.start(t, bin)
	check(leader)
	var buf bytes.Buffer
	out, err := exec.Command(bin, "cluster", "status", "--api", leader.api, "--json").Output()
	buf.Write(out)
	if err != nil || json.Unmarshal(buf.Bytes(), &st) != nil || len(st.Servers) != 3 || st.Leader == "" {
		t.Fatalf("status after restart: %v %s", err, out)
	}

	// SIGTERM is a graceful shutdown: exit status 0 and a final log line.
	p := procs[2]
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s ignored SIGTERM", p.id)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM", p.id, code)
	}
	if logs, _ := os.ReadFile(p.logPath); !strings.Contains(string(logs), "core node stopped") {
		t.Fatalf("%s log lacks the shutdown line", p.id)
	}
}

func slicesWithout(args []string, drop string) []string {
	var out []string
	for _, a := range args {
		if a != drop {
			out = append(out, a)
		}
	}
	return out
}

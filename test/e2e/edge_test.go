package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/sim"
)

// edgeDevice is the part of GET /api/v1/devices/{id} the test reads.
type edgeDevice struct {
	ID              string    `json:"_id"`
	LastInform      time.Time `json:"lastInform"`
	LastEvents      []string  `json:"lastEvents"`
	SoftwareVersion string    `json:"softwareVersion"`
	CRUsername      string    `json:"connectionRequestUsername"`
	Parameters      map[string]struct {
		Value string `json:"value"`
	} `json:"parameters"`
}

type edgeTask struct {
	ID              string  `json:"_id"`
	Status          string  `json:"status"`
	ParameterValues [][]any `json:"parameterValues"`
	Fault           *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"fault"`
	Warning string `json:"warning"`
}

// TestEdgeStandaloneOperator is the issue's done-line: `edgeacs edge
// --standalone` serves 1,000 simulated devices, and an operator, with
// plain HTTP against the local API, reads a device, sets its Wi-Fi
// password, reboots it and upgrades its firmware, each confirmed by the
// device itself and by its next Inform.
func TestEdgeStandaloneOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs 1,000 simulated devices")
	}
	bin := coreBuild(t)
	dir := t.TempDir()
	cwmpAddr, apiAddr := coreFreeAddr(t), coreFreeAddr(t)
	logPath := filepath.Join(dir, "edge.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "edge", "--standalone", "--id", "e2e", "--data", filepath.Join(dir, "data"),
		"--cwmp-addr", cwmpAddr, "--api-addr", apiAddr, "--username", "cpe", "--password", "cpe-secret")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	defer func() {
		select {
		case <-waited:
		default:
			cmd.Process.Kill()
			<-waited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("edge log:\n%s", tail(string(out), 4000))
		}
	}()

	api := "http://" + apiAddr
	// A standalone edge writes its own first admin token.
	useToken(apiAddr, readAdminToken(t, filepath.Join(dir, "data")))
	waitUntil(t, 30*time.Second, "the edge to serve /healthz", func() bool {
		resp, err := http.Get(api + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	const n = 1000
	fleet, err := sim.New(sim.Config{
		ACSURL:          "http://" + cwmpAddr + "/",
		Count:           n,
		Model:           sim.ModelMixed,
		Seed:            42,
		Username:        "cpe",
		Password:        "cpe-secret",
		PoolConnections: true,
		RebootDelay:     100 * time.Millisecond,
		TimeScale:       0.01,
		Ramp:            2 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	if err := fleet.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 90*time.Second, "1,000 devices in the edge", func() bool {
		resp, err := http.Get(api + "/api/v1/devices?limit=1")
		if err != nil {
			return false
		}
		resp.Body.Close()
		c, _ := strconv.Atoi(resp.Header.Get("X-Total-Count"))
		return c >= n
	})

	d := fleet.Device(0) // TR-098
	path := api + "/api/v1/devices/" + url.PathEscape(d.ID())

	// 1. Read the device.
	dev := getDevice(t, path)
	if dev.ID != d.ID() || len(dev.Parameters) == 0 || dev.SoftwareVersion == "" {
		t.Fatalf("device read: %+v", dev)
	}
	// Its first session also set its connection-request credentials (the
	// default inform preset); wait for that so the connection requests
	// below can authenticate. The edge shows the username it keeps once a
	// session stored both.
	waitUntil(t, 30*time.Second, "connection-request credentials", func() bool {
		return getDevice(t, path).CRUsername != ""
	})

	// 2. Set its Wi-Fi password.
	pskName := d.Root() + "LANDevice.1.WLANConfiguration.1.KeyPassphrase"
	before := getDevice(t, path).LastInform
	task := postTask(t, path, `{"name":"setParameterValues","parameterValues":[["`+pskName+`","e2e-wifi-secret","xsd:string"]]}`)
	if task.Status != "done" {
		t.Fatalf("set Wi-Fi password: %+v", task)
	}
	if v, _ := d.Get(pskName); v != "e2e-wifi-secret" {
		t.Fatalf("device Wi-Fi password %q", v)
	}
	waitUntil(t, 15*time.Second, "the Inform of the SPV session", func() bool {
		dv := getDevice(t, path)
		return dv.LastInform.After(before) && slices.Contains(dv.LastEvents, "6 CONNECTION REQUEST")
	})

	// 3. Reboot it: the next Inform says M Reboot.
	task = postTask(t, path, `{"name":"reboot"}`)
	if task.Status != "done" {
		t.Fatalf("reboot: %+v", task)
	}
	waitUntil(t, 20*time.Second, "the Inform after the reboot", func() bool {
		ev := getDevice(t, path).LastEvents
		return slices.Contains(ev, "M Reboot") && slices.Contains(ev, "1 BOOT")
	})

	// 4. Upgrade its firmware from a file the edge serves.
	req, _ := http.NewRequest(http.MethodPut, api+"/api/v1/files/fw_v3.1.4.bin?fileType="+url.QueryEscape("1 Firmware Upgrade Image"),
		strings.NewReader(strings.Repeat("edgeacs-firmware", 8192)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("upload firmware: %s", resp.Status)
	}
	task = postTask(t, path, `{"name":"download","fileType":"1 Firmware Upgrade Image","fileName":"fw_v3.1.4.bin"}`)
	waitUntil(t, 30*time.Second, "the Inform with the new firmware", func() bool {
		dv := getDevice(t, path)
		return dv.SoftwareVersion == "3.1.4" && slices.Contains(dv.LastEvents, "M Download")
	})
	if v, _ := d.Get(d.Root() + "DeviceInfo.SoftwareVersion"); v != "3.1.4" {
		t.Fatalf("device firmware %q", v)
	}

	// The rest of the fleet kept being served: every device's sessions
	// complete (on a loaded box the last first sessions may still be in
	// flight here, so wait for them rather than sample once).
	deadline := time.Now().Add(60 * time.Second)
	for fleet.Stats().SessionsCompleted < n {
		if time.Now().After(deadline) {
			st := fleet.Stats()
			resp, _ := http.Get(api + "/metrics")
			var m []byte
			if resp != nil {
				m, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			var lines []string
			for _, l := range strings.Split(string(m), "\n") {
				if strings.Contains(l, "auth") || strings.Contains(l, "session") && !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			t.Fatalf("only %d sessions completed for %d devices: started %d, errors %d, retries %d\n%s",
				st.SessionsCompleted, n, st.SessionsStarted, st.SessionErrors, st.Retries, strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// SIGINT: a clean, prompt exit.
	fleet.Close()
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("edge exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("edge did not exit 20s after SIGINT")
	}
}

func getDevice(t *testing.T, path string) edgeDevice {
	t.Helper()
	resp, err := http.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d edgeDevice
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", path, resp.Status, raw)
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// postTask queues a task with a connection request and waits up to 20s.
func postTask(t *testing.T, path, body string) edgeTask {
	t.Helper()
	resp, err := http.Post(path+"/tasks?connection_request&wait=20s", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST task %s: %s %s", body, resp.Status, raw)
	}
	var task edgeTask
	if err := json.Unmarshal(raw, &task); err != nil {
		t.Fatalf("task reply %s: %v", raw, err)
	}
	if task.Warning != "" {
		t.Logf("task %s: %s", body, task.Warning)
	}
	return task
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("…%s", s[len(s)-n:])
}

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
)

// TestSyncFileToCPE: a firmware image uploaded to a follower core node
// reaches every core node (blob replication) and, when a download task
// created at the core needs it, the edge fetches it over the sync link;
// the CPE downloads it from the edge, reports TransferComplete, and the
// task is done at the core.
func TestSyncFileToCPE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs four processes")
	}
	s := newSystem(t, 3, "pop")
	e := s.startEdge("pop", s.syncAddrs())
	f := s.simulate(e, 2, 11)
	core0 := "http://" + s.cores[0].api
	coreWait(t, "2 devices at the core", 60*time.Second, func() bool {
		var devs []coreDevice
		code, err := coreHTTP("GET", core0+"/api/v1/devices", "", &devs)
		return err == nil && code == 200 && len(devs) == 2
	})

	var st coreStatus
	if code, err := coreHTTP("GET", core0+"/api/v1/cluster", "", &st); err != nil || code != 200 || st.Leader == "" {
		t.Fatalf("cluster status: %d %v %+v", code, err, st)
	}
	var follower, other *coreProc
	for _, c := range s.cores {
		switch {
		case c.id == st.Leader:
		case follower == nil:
			follower = c
		default:
			other = c
		}
	}
	// Larger than one QUIC stream window, so the fetch is a real stream.
	content := bytes.Repeat([]byte("edgeacs firmware 5.4.3 "), 120_000) // 2.7 MB
	const name = "fw_v5.4.3.bin"
	req, _ := http.NewRequest("PUT", "http://"+follower.api+"/api/v1/files/"+name, bytes.NewReader(content))
	req.Header.Set("fileType", "1 Firmware Upgrade Image")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload to follower %s: %s", follower.id, resp.Status)
	}

	// A download task through the other follower, with a connection request.
	d := f.Device(0)
	body := fmt.Sprintf(`{"name": "download", "fileType": "1 Firmware Upgrade Image", "fileName": %q}`, name)
	var task coreTask
	code, err := coreRetry("POST", "http://"+other.api+devicePath(d.ID())+"/tasks?connection_request&wait=30s", body, &task)
	if err != nil || (code != 200 && code != 202) || task.ID == "" {
		t.Fatalf("create download task: %d %v %+v", code, err, task)
	}
	for _, c := range s.cores {
		coreWait(t, "download task done at "+c.id, 60*time.Second, func() bool {
			var got coreTask
			code, err := coreHTTP("GET", "http://"+c.api+"/api/v1/tasks/"+task.ID, "", &got)
			if err == nil && code == 200 && got.Status != "pending" && got.Status != "running" && got.Status != "done" {
				t.Fatalf("download task ended %q at %s", got.Status, c.id)
			}
			return err == nil && code == 200 && got.Status == "done"
		})
	}
	waitUntil(t, 30*time.Second, "the new firmware at the edge", func() bool {
		return getDevice(t, "http://"+e.api+devicePath(d.ID())).SoftwareVersion == "5.4.3"
	})

	// Every core node holds the content; the edge serves the same bytes.
	for _, c := range s.cores {
		coreWait(t, "the file's content on "+c.id, 30*time.Second, func() bool {
			return bytes.Equal(getBytes(t, "http://"+c.api+"/api/v1/files/"+name+"/content"), content)
		})
	}
	// /files/ wants CPE credentials (or the signed URL a Download carries).
	cpeClient := &http.Client{Transport: &cwmp.DigestTransport{Username: "cpe", Password: "cpe-secret"}}
	resp, err = cpeClient.Get("http://" + e.cwmp + "/files/" + name)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
		t.Fatalf("the edge serves %s, %d bytes, want the %d uploaded", resp.Status, len(got), len(content))
	}
}

// getBytes returns a 200 answer's body, nil for anything else.
func getBytes(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return b
}

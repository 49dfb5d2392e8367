package edge

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestShutdownLeavesNoGoroutines runs an edge with simulated CPEs through
// sessions, a connection request (HTTP and UDP) and a task, stops both,
// and checks that no goroutine of the edge, the simulator or Badger
// outlives them.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	e := startEdge(t, "", nil)
	f := startFleet(t, e, 4, nil)
	waitInformed(t, e, f)
	d := f.Device(0)
	task := e.postTask(d.ID(), `{"name":"getParameterValues","parameterNames":["`+d.Root()+`DeviceInfo."]}`, "connection_request&wait=10s")
	if task.Status != "done" {
		t.Fatalf("task %s", task.Status)
	}
	f.Close()
	e.stop()

	var leaked []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = leaked[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "TestShutdownLeavesNoGoroutines") {
				continue
			}
			if strings.Contains(g, "edgeacs/edge.") || strings.Contains(g, "edgeacs/sim.") || strings.Contains(g, "dgraph-io/badger") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines outlived the edge:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

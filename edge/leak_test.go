package edge

import (
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/internal/leakcheck"
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

	leakcheck.NoGoroutines(t, 10*time.Second, "edgeacs/edge.", "edgeacs/sim.", "dgraph-io/badger")
}

package core

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/hashicorp/raft"
)

// BenchmarkDeviceDeltas measures device deltas applied per second
// through a 3-node loopback cluster, many concurrent writers sharing
// batched raft entries. One op is one delta (5 parameters).
func BenchmarkDeviceDeltas(b *testing.B) {
	// The 1-node case is the FSM's ceiling on this machine: in the 3-node
	// cases all three nodes share its cores, so every delta is applied
	// three times on the same CPUs.
	for _, mode := range []struct {
		name   string
		size   int
		noSync bool
	}{{"3node-fsync", 3, false}, {"3node-nosync", 3, true}, {"1node-nosync", 1, true}} {
		b.Run(mode.name, func(b *testing.B) {
			nodes := newCluster(b, mode.size, func(c *Config) { c.RaftNoSync = mode.noSync; c.ApplyTimeout = 30 * time.Second })
			leader := leaderOf(b, nodes)
			const writers = 2048
			params := []string{"A.DeviceInfo.UpTime", "A.WAN.BytesSent", "A.WAN.BytesReceived", "A.LAN.Hosts", "A.WiFi.Clients"}
			startIdx := leader.fsm.AppliedIndex()
			var next atomic.Int64
			var failed atomic.Int64
			var firstErr atomic.Value
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						dd := &fleet.DeviceDelta{Device: fmt.Sprintf("dev%05d", int(i)%20000), Edge: fmt.Sprintf("e%d", w%8), LastInform: time.Now().UTC()}
						for _, p := range params {
							dd.Parameters = append(dd.Parameters, fleet.ParameterValue{Name: p, Value: fmt.Sprint(i), Type: "xsd:unsignedInt"})
						}
						if r := leader.Apply(context.Background(), Command{Op: OpDeviceDelta, Delta: dd}); r.Err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, r.Err.Error())
						}
					}
				}()
			}
			wg.Wait()
			el, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d deltas failed, first: %v", f, firstErr.Load())
			}
			entries := leader.fsm.AppliedIndex() - startIdx
			b.ReportMetric(float64(b.N)/el.Seconds(), "deltas/s")
			// CPU per delta across all nodes: with every node on the same
			// cores this, not latency, is what bounds deltas/s.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/delta")
			if entries > 0 {
				b.ReportMetric(float64(b.N)/float64(entries), "cmds/entry")
			}
		})
	}
}

// BenchmarkTaskCreateAPI measures task creation latency through the REST
// API of a 3-node cluster, one client at a time, on the leader and through
// a follower (which forwards).
func BenchmarkTaskCreateAPI(b *testing.B) {
	nodes := newCluster(b, 3, nil)
	leader := leaderOf(b, nodes)
	mustApplyNode(b, leader, Command{Op: OpDeviceDelta, Delta: &fleet.DeviceDelta{Device: "dev1", Edge: "e1"}})
	waitFor(b, "replication", 10*time.Second, func() bool { return clusterReady(nodes) })
	for _, target := range []struct {
		name string
		node *testNode
	}{{"leader", leader}, {"follower", followerOf(nodes)}} {
		b.Run(target.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			url := api(target.node, "/devices/dev1/tasks")
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", strings.NewReader(`{"name": "reboot"}`))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 202 {
					b.Fatalf("status %d", resp.StatusCode)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkFSMApplyDeltas measures one FSM's CPU per delta without raft:
// pre-encoded entries of 300 deltas (5 parameters each, 20,000 devices)
// applied in raft-sized batches. It isolates the apply path that each node
// of a cluster runs, which is what bounds the cluster on shared cores.
func BenchmarkFSMApplyDeltas(b *testing.B) {
	f, err := OpenFSM(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const perEntry = 300
	params := []string{"A.DeviceInfo.UpTime", "A.WAN.BytesSent", "A.WAN.BytesReceived", "A.LAN.Hosts", "A.WiFi.Clients"}
	now := time.Now().UTC()
	var logs []*raft.Log
	for i := 0; i < b.N; i += perEntry {
		cmds := make([]Command, 0, perEntry)
		for j := i; j < min(i+perEntry, b.N); j++ {
			dd := &fleet.DeviceDelta{Device: fmt.Sprintf("dev%05d", j%20000), Edge: fmt.Sprintf("e%d", j%8), LastInform: now.Add(time.Duration(j))}
			for _, p := range params {
				dd.Parameters = append(dd.Parameters, fleet.ParameterValue{Name: p, Value: fmt.Sprint(j), Type: "xsd:unsignedInt"})
			}
			cmds = append(cmds, Command{V: CommandVersion, Op: OpDeviceDelta, Time: now, Delta: dd})
		}
		data, err := EncodeCommands(cmds)
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: data})
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < len(logs); i += 4 {
		for _, r := range f.ApplyBatch(logs[i:min(i+4, len(logs))]) {
			if rs := r.([]Result); rs[0].Err != nil {
				b.Fatal(rs[0].Err)
			}
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

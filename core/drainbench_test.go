package core

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/hashicorp/raft"
)

// BenchmarkFSMApplyDrain applies the records of cmd/edgeacs's
// BenchmarkUplinkDrain backlog as one node applies them: 512-record
// entries of deltas from 20,000 devices in turn, each device's first a
// bootstrap with ten parameters (the bench CPE's Inform), every later one
// its five counters. cpu-ns/op is the process's CPU per record, Badger's
// flushes and compactions included; device-bytes is a device record's
// stored size at the end.
func BenchmarkFSMApplyDrain(b *testing.B) {
	f, err := OpenFSM(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const (
		perEntry = 512
		devs     = 20_000
	)
	static := []fleet.ParameterValue{
		{Name: "InternetGatewayDevice.DeviceInfo.SoftwareVersion", Value: "1.0", Type: "xsd:string"},
		{Name: "InternetGatewayDevice.DeviceInfo.HardwareVersion", Value: "A1", Type: "xsd:string"},
		{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestURL", Value: "http://127.0.0.1:1/cr", Type: "xsd:string"},
		{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestUsername", Value: "cr-user", Type: "xsd:string"},
		{Name: "InternetGatewayDevice.ManagementServer.ConnectionRequestPassword", Value: "cr-pass", Type: "xsd:string"},
	}
	counters := []string{
		"InternetGatewayDevice.DeviceInfo.UpTime",
		"InternetGatewayDevice.WANDevice.1.WANCommonInterfaceConfig.TotalBytesSent",
		"InternetGatewayDevice.WANDevice.1.WANCommonInterfaceConfig.TotalBytesReceived",
		"InternetGatewayDevice.LANDevice.1.Hosts.HostNumberOfEntries",
		"InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.TotalAssociations",
	}
	now := time.Now().UTC()
	entry := func(first, n int) *raft.Log {
		cmds := make([]Command, 0, n)
		for i := first; i < first+n; i++ {
			dev, round := i%devs, i/devs
			dd := &fleet.DeviceDelta{Device: fmt.Sprintf("B0B0B0-Fill-FILL%06d", dev), Edge: "edge1",
				OUI: "B0B0B0", ProductClass: "Fill", SerialNumber: fmt.Sprintf("FILL%06d", dev), Manufacturer: "Bench",
				LastInform: now.Add(time.Duration(i) * time.Microsecond), Events: []string{"2 PERIODIC"}}
			if round == 0 {
				dd.Events, dd.Bootstrap = []string{"0 BOOTSTRAP", "1 BOOT"}, true
				dd.Parameters = append(dd.Parameters, static...)
			}
			for k, name := range counters {
				dd.Parameters = append(dd.Parameters, fleet.ParameterValue{Name: name, Value: strconv.Itoa(round*10 + k), Type: "xsd:unsignedInt"})
			}
			cmds = append(cmds, Command{V: CommandVersion, Op: OpUplink, Time: now, Edge: "edge1", Seq: uint64(i + 1), Prev: uint64(i), Record: record(b, dd)})
		}
		data, err := EncodeCommands(cmds)
		if err != nil {
			b.Fatal(err)
		}
		return &raft.Log{Type: raft.LogCommand, Data: data}
	}
	// Entries are built as they are applied (a million records' entries
	// would be most of the benchmark's memory), outside the timer.
	var idx uint64
	cpu := time.Duration(0)
	for i := 0; i < b.N; i += 4 * perEntry {
		b.StopTimer()
		var logs []*raft.Log
		for j := i; j < min(i+4*perEntry, b.N); j += perEntry {
			l := entry(j, min(perEntry, b.N-j))
			idx++
			l.Index = idx
			logs = append(logs, l)
		}
		b.StartTimer()
		cpu0 := cpuTime()
		for _, r := range f.ApplyBatch(logs) {
			for _, res := range r.([]Result) {
				if res.Err != nil || res.Noop {
					b.Fatalf("%+v", res)
				}
			}
		}
		cpu += cpuTime() - cpu0
	}
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	_ = f.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key(pDevice, "B0B0B0-Fill-FILL000000"))
		if err == nil {
			b.ReportMetric(float64(it.ValueSize()), "device-bytes")
		}
		return nil
	})
}

package core

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeacs/edgeacs/fleet"
)

// Online state (fleet.OnlineState) at the core: a device's last Inform
// against the PeriodicInformInterval its edge reported (the default
// inform preset reads it, so deltas carry it).

// intervalOf is the device's periodic inform interval among the
// parameters the core holds, 0 when unknown.
func intervalOf(nd *nbiDevice) time.Duration {
	for _, root := range [...]string{"InternetGatewayDevice", "Device"} {
		if v, _, ok := nd.Param(root + fleet.InformIntervalSuffix); ok {
			return fleet.ParseInformInterval(v)
		}
	}
	return 0
}

// DeviceStatesOf returns the online state at now of each device of ds
// (as listed: without parameters), by ID.
func (f *FSM) DeviceStatesOf(ds []*Device, now time.Time) (map[string]string, error) {
	out := make(map[string]string, len(ds))
	err := f.view(func(txn *badger.Txn) error {
		for _, d := range ds {
			b, err := getRaw(txn, key(pDevice, d.ID))
			if err != nil {
				continue // deleted since it was listed
			}
			nd := nbiDevice{txn: txn}
			ov, err := decodeDevice(b, &nd.d, true)
			if err != nil {
				return err
			}
			nd.ov = ov
			out[d.ID] = fleet.OnlineState(d.LastInform, intervalOf(&nd), now)
			if nd.err != nil {
				return nd.err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("device states: %w", err)
	}
	return out, nil
}

// EdgeState is a device count's labels: home edge and online state.
type EdgeState struct{ Edge, State string }

// DeviceStates counts every device by home edge and online state at now:
// a scan of all device records.
func (f *FSM) DeviceStates(now time.Time) (map[EdgeState]int, error) {
	out := map[EdgeState]int{}
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(pDevice), nil, func(_, v []byte) (bool, error) {
			nd := nbiDevice{txn: txn}
			ov, err := decodeDevice(v, &nd.d, true)
			if err != nil {
				return false, err
			}
			nd.ov = ov
			out[EdgeState{nd.d.Edge, fleet.OnlineState(nd.d.LastInform, intervalOf(&nd), now)}]++
			return true, nd.err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("device states: %w", err)
	}
	return out, nil
}

// stateCollector exports edgeacs_core_devices{edge,state} from this
// node's FSM. Counting scans every device, so scrapes share a count
// younger than statesMaxAge.
type stateCollector struct {
	desc   *prometheus.Desc
	counts fleet.StateCounts[EdgeState]
}

// statesMaxAge is how long a device-state count serves scrapes: states
// change on the scale of inform intervals (minutes).
const statesMaxAge = 15 * time.Second

func newStateCollector(count func(time.Time) (map[EdgeState]int, error)) *stateCollector {
	return &stateCollector{
		desc: prometheus.NewDesc("edgeacs_core_devices",
			"Devices by home edge and online state: last inform against the periodic inform interval "+
				"(online within 1 interval + 30 s, late within 3, offline after).", []string{"edge", "state"}, nil),
		counts: fleet.StateCounts[EdgeState]{Count: count, MaxAge: statesMaxAge},
	}
}

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	last := s.counts.Get(time.Now())
	edges := map[string]bool{}
	for k := range last {
		edges[k.Edge] = true
	}
	for e := range edges {
		for _, st := range fleet.DeviceStates {
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(last[EdgeState{e, st}]), e, st)
		}
	}
}

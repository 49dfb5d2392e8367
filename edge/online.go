package edge

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeacs/edgeacs/fleet"
)

// Online state (fleet.OnlineState): each device's last Inform against its
// ManagementServer.PeriodicInformInterval as the cached tree has it (the
// default inform preset reads and bounds it, so it is usually there).

// informInterval is d's periodic inform interval, 0 when unknown: the
// device record's copy, or for a record older than that copy the cached
// tree's value.
func informInterval(txn *badger.Txn, d *Device) time.Duration {
	switch {
	case d.InformInterval > 0:
		return d.InformInterval
	case d.InformInterval < 0 || d.Root == "":
		return 0
	}
	r, err := getParam(txn, d.ID, d.Root+fleet.InformIntervalSuffix[1:])
	if err != nil {
		return 0
	}
	return fleet.ParseInformInterval(r.Value)
}

// treeInterval is the InformInterval a device record under root keeps
// for tree.
func treeInterval(tree *devParams, root string) time.Duration {
	if root == "" {
		return 0
	}
	if r, ok := tree.get(root + fleet.InformIntervalSuffix[1:]); ok {
		if iv := fleet.ParseInformInterval(r.Value); iv > 0 {
			return iv
		}
	}
	return -1
}

// withStates fills the State of each view from its device's last Inform
// and cached interval, at now.
func (c *Cache) withStates(views []fleet.DeviceView, ds []*Device, now time.Time) {
	_ = c.db.View(func(txn *badger.Txn) error {
		for i, d := range ds {
			views[i].State = fleet.OnlineState(d.LastInform, informInterval(txn, d), now)
		}
		return nil
	})
}

// deviceStateFields are the fields of a device record (Device, same keys)
// that DeviceStates reads: decoding the whole record allocated every
// string of it, and a scrape of a 100k-device edge counts them all.
type deviceStateFields struct {
	ID             string        `cbor:"1,keyasint"`
	Root           string        `cbor:"6,keyasint,omitempty"`
	LastInform     time.Time     `cbor:"8,keyasint"`
	InformInterval time.Duration `cbor:"51,keyasint,omitempty"`
}

// DeviceStates counts the devices in each online state at now: a scan of
// every device record (and, for a record older than its InformInterval,
// one parameter read).
func (c *Cache) DeviceStates(now time.Time) (map[string]int, error) {
	out := map[string]int{}
	err := c.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pDevice), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		var f deviceStateFields
		for it.Rewind(); it.Valid(); it.Next() {
			f = deviceStateFields{}
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &f) }); err != nil {
				return fmt.Errorf("decode device %s: %w", it.Item().Key(), err)
			}
			d := Device{ID: f.ID, Root: f.Root, LastInform: f.LastInform, InformInterval: f.InformInterval}
			out[fleet.OnlineState(d.LastInform, informInterval(txn, &d), now)]++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("device states: %w", err)
	}
	return out, nil
}

// stateCollector exports edgeacs_edge_devices{state}. Counting scans
// every device, so a scrape reuses a count younger than statesMaxAge.
type stateCollector struct {
	desc   *prometheus.Desc
	counts fleet.StateCounts[string]
}

// statesMaxAge is how long a device-state count serves scrapes: a state
// changes on the scale of inform intervals (minutes).
const statesMaxAge = 15 * time.Second

func newStateCollector(count func(time.Time) (map[string]int, error)) *stateCollector {
	return &stateCollector{
		desc: prometheus.NewDesc("edgeacs_edge_devices", "Devices by online state: last inform against the periodic inform interval "+
			"(online within 1 interval + 30 s, late within 3, offline after).", []string{"state"}, nil),
		counts: fleet.StateCounts[string]{Count: count, MaxAge: statesMaxAge},
	}
}

func (s *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *stateCollector) Collect(ch chan<- prometheus.Metric) {
	last := s.counts.Get(time.Now())
	for _, st := range fleet.DeviceStates {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(last[st]), st)
	}
}

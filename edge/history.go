package edge

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
)

// Parameter history (fleet.HistoryPoint): the values of the parameters
// the presets' history lists name, one series per device and parameter
// under y/<device>/<path> (CBOR: [unix ns, value] pairs, oldest first),
// trimmed to CacheOptions.HistoryPoints and HistoryMaxAge at every write.
// A point is recorded where a value enters the cache changed (it joins
// a DeviceDelta then): an Inform, a task's or a preset's read or write;
// the delta carries the points to the core.

// pHistory is the prefix of the series: y/<device>/<path>.
const pHistory = "y/"

// historySet is the presets' history patterns at a preset generation.
type historySet struct {
	gen      uint64
	patterns []string
}

// historyPatterns returns what the stored presets' history lists name,
// recomputed after a change of the presets.
func (c *Cache) historyPatterns() []string {
	gen := c.presets.gen.Load()
	if s := c.history.Load(); s != nil && s.gen == gen {
		return s.patterns
	}
	var pats []string
	ps, err := c.Presets()
	if err != nil {
		c.log.Error("presets not loaded for history", "err", err)
		return nil
	}
	for _, p := range ps {
		for _, h := range p.History {
			if !slices.Contains(pats, h) {
				pats = append(pats, h)
			}
		}
	}
	c.history.Store(&historySet{gen: gen, patterns: pats})
	return pats
}

// recordHistory adds, in txn, a point at now for each of delta's values
// that a history pattern names, and lists the points in delta.History.
func (c *Cache) recordHistory(txn *badger.Txn, delta *fleet.DeviceDelta, now time.Time) error {
	pats := c.historyPatterns()
	if len(pats) == 0 || len(delta.Parameters) == 0 {
		return nil
	}
	for _, pv := range delta.Parameters {
		if !slices.ContainsFunc(pats, func(p string) bool { return fleet.HistoryMatch(p, pv.Name) }) {
			continue
		}
		k := pHistory + delta.Device + "/" + pv.Name
		var recs []fleet.HistoryRecord
		if err := getCBOR(txn, k, &recs); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("history of %s: %w", pv.Name, err)
		}
		recs = fleet.AppendHistory(recs, []fleet.HistorySample{{Time: now, Value: pv.Value}}, c.opts.HistoryPoints, c.opts.HistoryMaxAge)
		if err := setCBOR(txn, k, &recs); err != nil {
			return fmt.Errorf("history of %s: %w", pv.Name, err)
		}
		delta.History = append(delta.History, fleet.HistoryPoint{Path: pv.Name, Time: now, Value: pv.Value})
	}
	return nil
}

// History returns the device's recorded series, oldest point first:
// path's alone when path is set (none when it has no points), else every
// series, in path order. Points past HistoryMaxAge are left out.
func (c *Cache) History(id, path string) ([]fleet.HistorySeries, error) {
	if !validID(id) {
		return nil, fmt.Errorf("history of %q: %w", id, ErrNotFound)
	}
	cut := time.Now().Add(-c.opts.HistoryMaxAge)
	out := []fleet.HistorySeries{}
	add := func(p string, b []byte) error {
		var recs []fleet.HistoryRecord
		if err := cborDec.Unmarshal(b, &recs); err != nil {
			return fmt.Errorf("decode history %s: %w", p, err)
		}
		if s, ok := fleet.SeriesSince(p, recs, cut); ok {
			out = append(out, s)
		}
		return nil
	}
	err := c.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(pDevice + id)); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if path != "" {
			item, err := txn.Get([]byte(pHistory + id + "/" + path))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			return item.Value(func(b []byte) error { return add(path, b) })
		}
		pre := pHistory + id + "/"
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pre), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			p := strings.TrimPrefix(string(it.Item().Key()), pre)
			if err := it.Item().Value(func(b []byte) error { return add(p, b) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	return out, nil
}

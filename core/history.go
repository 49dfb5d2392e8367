package core

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
)

// Parameter history (fleet.HistoryPoint): the edges record the points and
// send them on their DeviceDeltas; the core keeps the same bounded series
// under y/<device>\0<path> (a record of [unix ns, value] pairs, oldest
// first, fleet.HistoryRecord), trimmed at every apply by
// fleet.AppendHistory to fleet.HistoryPoints points no older than
// fleet.HistoryMaxAge before the newest (the entry's own times, so every
// node trims alike; a delta applied again adds no point twice).

// pHistory is the prefix of the series.
const pHistory = "y/"

// applyHistory appends a delta's points to the device's series.
func (p processor) applyHistory(w *wtx, id string, pts []fleet.HistoryPoint) error {
	byPath := map[string][]fleet.HistorySample{}
	var order []string
	for _, hp := range pts {
		if _, ok := byPath[hp.Path]; !ok {
			order = append(order, hp.Path)
		}
		byPath[hp.Path] = append(byPath[hp.Path], fleet.HistorySample{Time: hp.Time, Value: hp.Value})
	}
	for _, path := range order {
		k := key(pHistory, id, path)
		var recs []fleet.HistoryRecord
		b, ok, err := w.get(k)
		if err != nil {
			return storageError{err}
		}
		if ok {
			if err := decodeRecord(b, &recs); err != nil {
				return storageError{err}
			}
		}
		recs = fleet.AppendHistory(recs, byPath[path], fleet.HistoryPoints, fleet.HistoryMaxAge)
		if err := p.putRecord(w, k, recs); err != nil {
			return err
		}
	}
	return nil
}

// checkHistory refuses a delta's history points before anything of the
// delta is applied.
func checkHistory(dd *fleet.DeviceDelta) error {
	for _, hp := range dd.History {
		if hp.Path == "" || len(hp.Path) > 256 || hp.Path[len(hp.Path)-1] == '.' {
			return fmt.Errorf("%w: delta for %s: bad history path %q", ErrBadRequest, dd.Device, hp.Path)
		}
	}
	return nil
}

// History returns a device's series as the edges recorded them, oldest
// point first: path's alone when set, else every series in path order.
// Points older than fleet.HistoryMaxAge are left out.
func (f *FSM) History(id, path string) ([]fleet.HistorySeries, error) {
	cut := time.Now().Add(-fleet.HistoryMaxAge)
	out := []fleet.HistorySeries{}
	add := func(p string, b []byte) error {
		var recs []fleet.HistoryRecord
		if err := decodeRecord(b, &recs); err != nil {
			return err
		}
		if s, ok := fleet.SeriesSince(p, recs, cut); ok {
			out = append(out, s)
		}
		return nil
	}
	err := f.view(func(txn *badger.Txn) error {
		if _, err := getRaw(txn, key(pDevice, id)); err != nil {
			return err
		}
		if path != "" {
			b, err := getRaw(txn, key(pHistory, id, path))
			if errors.Is(err, ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			return add(path, b)
		}
		pre := key(pHistory, id, "")
		return scan(txn, pre, nil, func(k, v []byte) (bool, error) {
			return true, add(string(k[len(pre):]), v)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	return out, nil
}

func (n *Node) getDeviceHistory(w http.ResponseWriter, r *http.Request) {
	hs, err := n.fsm.History(r.PathValue("id"), r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, hs)
}

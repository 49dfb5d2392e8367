package edge

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// presetCache holds the stored presets compiled, so a session matches
// them without reading or parsing anything: they are compiled again only
// after a change (presetsChanged), by the first session that follows.
type presetCache struct {
	gen  atomic.Uint64 // bumped by every change of the stored presets
	set  atomic.Pointer[compiledSet]
	mu   sync.Mutex // one compiler at a time
	errs atomic.Int64
}

type compiledSet struct {
	gen  uint64
	list []*preset.Compiled
}

// presetsChanged marks the compiled presets stale. Whatever stores or
// deletes s/ records calls it after the commit (the downlink does; so
// must a local preset route).
func (c *Cache) presetsChanged() { c.presets.gen.Add(1) }

// presetsToRun returns the stored presets or, on an edge that has never
// heard from its core, the interim ones (CacheOptions.InterimPresets).
// Both are read in one view: read apart, the downlink that brings the
// core's presets could land between the two reads, and a session would
// find neither the interim presets nor the core's. A bootstrap missed
// that way is never made good (its next session has no 0 BOOTSTRAP), and
// a device with no periodic inform never comes back for credentials.
func (c *Cache) presetsToRun() ([]fleet.Preset, error) {
	var stored []fleet.Preset
	err := c.db.View(func(txn *badger.Txn) error {
		var err error
		if stored, err = listRecords[fleet.Preset](txn, pPreset); err != nil {
			return err
		}
		if c.afterPresetsListed != nil {
			c.afterPresetsListed()
		}
		if len(stored) > 0 || len(c.opts.InterimPresets) == 0 {
			return nil
		}
		shared, err := getSeq(txn, kDownShared)
		if err != nil {
			return fmt.Errorf("read shared downlink position: %w", err)
		}
		if shared == 0 {
			stored = c.opts.InterimPresets // never heard from the core yet
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list presets: %w", err)
	}
	return stored, nil
}

// compiledPresets returns the stored presets compiled, in name order. A
// preset that does not compile (the core checks them at PUT; one from an
// older core may not pass) is logged and left out.
func (c *Cache) compiledPresets() []*preset.Compiled {
	pc := &c.presets
	gen := pc.gen.Load()
	if s := pc.set.Load(); s != nil && s.gen == gen {
		return s.list
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	gen = pc.gen.Load()
	if s := pc.set.Load(); s != nil && s.gen == gen {
		return s.list
	}
	stored, err := c.presetsToRun()
	if err != nil {
		c.log.Error("presets not loaded", "err", err)
		if s := pc.set.Load(); s != nil {
			return s.list
		}
		return nil
	}
	list := make([]*preset.Compiled, 0, len(stored))
	for i := range stored {
		cp, err := preset.Compile(&stored[i])
		if err != nil {
			pc.errs.Add(1)
			c.log.Warn("preset skipped: it does not compile", "preset", stored[i].Name, "err", err)
			continue
		}
		list = append(list, cp)
	}
	pc.set.Store(&compiledSet{gen: gen, list: list})
	return list
}

// faultedChannels returns the stored faults of the device's preset
// channels (IDs "<device>:<channel>"), by channel: their presets wait for
// the retry (retryAt) or for the fault to be cleared. One scan of the
// device's faults.
func (c *Cache) faultedChannels(id string) (map[string]DeviceFault, error) {
	out := map[string]DeviceFault{}
	prefix := pFault + id + "/" + id + ":"
	err := c.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var f DeviceFault
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &f) }); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
			out[string(it.Item().Key()[len(prefix):])] = f
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("faults of %s: %w", id, err)
	}
	return out, nil
}

// retryAt is when a channel's fault lets a session retry its presets:
// the fault's time plus the retry delay doubled per retry that faulted
// again, at most MaxProvisionRetryDelay.
func (c *Cache) retryAt(f DeviceFault) time.Time {
	d := c.opts.ProvisionRetryDelay
	for i := 0; i < f.Retries && d < MaxProvisionRetryDelay; i++ {
		d *= 2
	}
	return f.Timestamp.Add(min(d, MaxProvisionRetryDelay))
}

// DeleteFault clears a preset channel's fault by its GenieACS ID,
// "<device>:<channel>" (device IDs never contain ':'); the channel's
// presets run again from the device's next session. The core is told
// (a cleared ChannelFault in the outbox). An unknown fault is
// ErrNotFound.
func (c *Cache) DeleteFault(faultID string) error {
	dev, ch, ok := strings.Cut(faultID, ":")
	if !ok || !validID(dev) || strings.ContainsRune(faultID, 0) {
		return fmt.Errorf("delete fault %q: %w", faultID, ErrNotFound)
	}
	key := pFault + dev + "/" + faultID
	err := c.updateOutbox(func(txn *badger.Txn, ob *outboxTxn) error {
		var f DeviceFault
		if err := getCBOR(txn, key, &f); err != nil {
			return err
		}
		if err := txn.Delete([]byte(key)); err != nil {
			return err
		}
		return ob.add(&fleet.ChannelFault{Device: dev, Channel: ch, Timestamp: f.Timestamp, Cleared: true})
	})
	if err != nil {
		return fmt.Errorf("delete fault %s: %w", faultID, err)
	}
	return nil
}

// clearChannelFault applies a DownFaultClear: the channel's fault is
// deleted unless the edge recorded a newer one since the core's.
func clearChannelFault(txn *badger.Txn, cf *fleet.ChannelFault) error {
	key := pFault + cf.Device + "/" + cf.ID()
	var f DeviceFault
	switch err := getCBOR(txn, key, &f); {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	case f.Timestamp.After(cf.Timestamp):
		return nil // faulted again since: the core hears of the new one
	}
	return txn.Delete([]byte(key))
}

// deleteFault is DELETE /api/v1/faults/{id}.
func (a *api) deleteFault(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Cache.DeleteFault(r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// commit writes in End's transaction what the presets did: the tree's
// changes as one DeviceDelta, and the channel faults: a new one, one
// that faulted again at its retry (one more retry, a longer wait), and
// the faults of channels whose retry ran clean (deleted), each reported
// to the core as a ChannelFault.
func (p *provSession) commit(txn *badger.Txn, ob *outboxTxn, faults map[string]provision.Fault, cleared []string) error {
	id := p.w.dev.ID
	delta := &fleet.DeviceDelta{Device: id, Edge: p.w.c.opts.EdgeID}
	if err := p.tree.commit(txn, delta); err != nil {
		return err
	}
	for _, ch := range slices.Sorted(maps.Keys(faults)) {
		f := faults[ch]
		df := DeviceFault{ID: ChannelFaultID(id, ch), Device: id, Channel: ch, Code: f.Code, Message: f.Message,
			Detail: f.Detail, Timestamp: p.now}
		if old, ok := p.retrying[ch]; ok {
			df.Retries = old.Retries + 1
		}
		if err := setCBOR(txn, pFault+id+"/"+df.ID, &df); err != nil {
			return fmt.Errorf("fault of channel %q: %w", ch, err)
		}
		if err := ob.add(&fleet.ChannelFault{Device: id, Channel: ch, Code: df.Code, Message: df.Message,
			Detail: df.Detail, Timestamp: df.Timestamp, Retries: df.Retries}); err != nil {
			return err
		}
	}
	for _, ch := range cleared {
		old := p.retrying[ch]
		key := pFault + id + "/" + ChannelFaultID(id, ch)
		var cur DeviceFault
		if err := getCBOR(txn, key, &cur); err != nil || !cur.Timestamp.Equal(old.Timestamp) {
			continue // deleted (or replaced) meanwhile
		}
		if err := txn.Delete([]byte(key)); err != nil {
			return fmt.Errorf("clear fault of channel %q: %w", ch, err)
		}
		if err := ob.add(&fleet.ChannelFault{Device: id, Channel: ch, Timestamp: old.Timestamp, Cleared: true}); err != nil {
			return err
		}
	}
	if len(delta.Parameters) > 0 || len(delta.Removed) > 0 {
		if err := p.w.c.recordHistory(txn, delta, p.now); err != nil {
			return err
		}
		return ob.add(delta)
	}
	return nil
}

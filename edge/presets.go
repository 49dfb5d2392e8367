package edge

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

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
	stored, err := c.Presets()
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

// faultedChannels returns the preset channels of a device with a stored
// fault (IDs "<device>:<channel>"): their presets wait until it is
// cleared. One key-only scan of the device's faults.
func (c *Cache) faultedChannels(id string) (map[string]bool, error) {
	out := map[string]bool{}
	prefix := pFault + id + "/" + id + ":"
	err := c.db.View(func(txn *badger.Txn) error {
		for _, k := range keysWithPrefix(txn, prefix) {
			out[k[len(prefix):]] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("faults of %s: %w", id, err)
	}
	return out, nil
}

// DeleteFault clears a preset channel's fault by its GenieACS ID,
// "<device>:<channel>" (device IDs never contain ':'); the channel's
// presets run again from the device's next session. An unknown fault is
// ErrNotFound.
func (c *Cache) DeleteFault(faultID string) error {
	dev, _, ok := strings.Cut(faultID, ":")
	if !ok || !validID(dev) || strings.ContainsRune(faultID, 0) {
		return fmt.Errorf("delete fault %q: %w", faultID, ErrNotFound)
	}
	key := []byte(pFault + dev + "/" + faultID)
	err := c.update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		return txn.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete fault %s: %w", faultID, err)
	}
	return nil
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
// changes as one DeviceDelta, and the channel faults.
func (p *provSession) commit(txn *badger.Txn, ob *outboxTxn, faults map[string]provision.Fault) error {
	id := p.w.dev.ID
	delta := &fleet.DeviceDelta{Device: id, Edge: p.w.c.opts.EdgeID}
	if err := p.tree.commit(txn, delta); err != nil {
		return err
	}
	if at, ok := p.tree.listedRoot(); ok {
		var dev Device
		switch err := getCBOR(txn, pDevice+id, &dev); {
		case errors.Is(err, ErrNotFound):
			// Deleted through the API meanwhile.
		case err != nil:
			return fmt.Errorf("load device: %w", err)
		default:
			dev.RootListed = at
			if err := setCBOR(txn, pDevice+id, &dev); err != nil {
				return fmt.Errorf("store device: %w", err)
			}
		}
	}
	for ch, f := range faults {
		df := DeviceFault{ID: ChannelFaultID(id, ch), Device: id, Channel: ch, Code: f.Code, Message: f.Message,
			Detail: f.Detail, Timestamp: p.now}
		if err := setCBOR(txn, pFault+id+"/"+df.ID, &df); err != nil {
			return fmt.Errorf("fault of channel %q: %w", ch, err)
		}
	}
	if len(delta.Parameters) > 0 || len(delta.Removed) > 0 {
		return ob.add(delta)
	}
	return nil
}

package edge

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Presets, provision scripts and virtual parameters an edge stores come
// from two places: the core, over the downlink, and, on a standalone
// edge, its own API (and its default presets). The core is the fleet's
// source of truth, so an edge synced to a core runs only the core's: the
// ones it made itself are marked (l/<record key>) and dropped when it
// starts synced, as its own API tokens are. A core record of the same
// name replaces a local one and clears its mark.

// provisioningPrefixes are the record prefixes DropLocalProvisioning
// covers.
var provisioningPrefixes = []string{pPreset, pProv, pVParam}

// setLocalRecord stores a record made at this edge and marks it local.
func setLocalRecord(txn *badger.Txn, key string, v any) error {
	if err := setRecord(txn, key, v); err != nil {
		return err
	}
	return txn.Set([]byte(pLocal+key), nil)
}

// setCoreRecord stores a record the core sent: it replaces a local one
// of the same key, mark and all.
func setCoreRecord(txn *badger.Txn, key string, v any) error {
	if err := txn.Delete([]byte(pLocal + key)); err != nil {
		return err
	}
	return setRecord(txn, key, v)
}

// deleteCoreRecord deletes a record as the core asked, mark and all.
func deleteCoreRecord(txn *badger.Txn, key string) error {
	if err := txn.Delete([]byte(pLocal + key)); err != nil {
		return err
	}
	return txn.Delete([]byte(key))
}

// DropLocalProvisioning deletes the presets, provision scripts and virtual
// parameters this edge made itself (standalone), and returns their keys
// (s/<preset>, pr/<provision>, vp/<virtual parameter>). An edge that never
// stored a fleet-wide downlink record has only records of its own (made
// before they were marked, too), so it drops every one.
func (c *Cache) DropLocalProvisioning() ([]string, error) {
	_, sharedPos, err := c.DownlinkAcked()
	if err != nil {
		return nil, fmt.Errorf("drop local provisioning: %w", err)
	}
	var dropped []string
	err = c.update(func(txn *badger.Txn) error {
		dropped = dropped[:0]
		marks := keysWithPrefix(txn, pLocal)
		for _, m := range marks {
			if err := txn.Delete([]byte(m)); err != nil {
				return err
			}
			k := strings.TrimPrefix(m, pLocal)
			if _, err := txn.Get([]byte(k)); err == nil {
				dropped = append(dropped, k)
			}
			if err := txn.Delete([]byte(k)); err != nil {
				return err
			}
		}
		if sharedPos > 0 {
			return nil
		}
		for _, pre := range provisioningPrefixes {
			keys, err := deletePrefix(txn, pre)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if !slices.Contains(dropped, k) {
					dropped = append(dropped, k)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("drop local provisioning: %w", err)
	}
	if len(dropped) > 0 {
		c.presetsChanged()
		c.provisionsChanged()
	}
	return dropped, c.durable()
}

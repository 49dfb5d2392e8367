package core

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
)

// DeviceFilter selects devices. Zero fields match everything; a device
// must match every field that is set.
type DeviceFilter struct {
	IDPrefix        string    `json:"id,omitempty"`
	Edge            string    `json:"edge,omitempty"`
	Tag             string    `json:"tag,omitempty"`
	LastInformAfter time.Time `json:"lastInformAfter,omitzero"`
	// Expr is an expression in the language of preset preconditions
	// (provision/expr, evaluated as filter.go describes); a device matches
	// when it evaluates to true.
	Expr string `json:"expr,omitempty"`
}

func (df DeviceFilter) match(d *Device) bool {
	if df.Edge != "" && d.Edge != df.Edge {
		return false
	}
	if df.Tag != "" {
		found := false
		for _, t := range d.Tags {
			if t == df.Tag {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return df.LastInformAfter.IsZero() || d.LastInform.After(df.LastInformAfter)
}

// TaskFilter selects tasks. Zero fields match everything.
type TaskFilter struct {
	Device string
	Status fleet.TaskStatus
}

// view runs fn in a read transaction on the current DB.
func (f *FSM) view(fn func(txn *badger.Txn) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrClosed
	}
	return f.db.View(fn)
}

func getRaw(txn *badger.Txn, k []byte) ([]byte, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// after returns the smallest key greater than base+cursor, or nil for no cursor.
func after(base []byte, cursor string) []byte {
	if cursor == "" {
		return nil
	}
	return append(append(append([]byte{}, base...), cursor...), 0)
}

// scan calls fn for each key/value under prefix, starting at start when it
// sorts after prefix, until fn returns false.
func scan(txn *badger.Txn, prefix, startAt []byte, fn func(k, v []byte) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	start := prefix
	if string(startAt) > string(prefix) {
		start = startAt
	}
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		more, err := fn(item.Key(), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Device returns one device; with params it includes the parameter tree.
func (f *FSM) Device(id string, params bool) (*Device, error) {
	var d Device
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pDevice, id))
		if err != nil {
			return err
		}
		ov, err := decodeDevice(b, &d, params)
		if err != nil {
			return err
		}
		if params {
			d.Parameters, err = readParams(txn, id, ov)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
	return &d, nil
}

// Devices lists devices matching df in ID order, after cursor (an ID),
// at most limit (0 = no limit). It returns the cursor for the next page,
// empty when there is none: the ID of the page's last device, so the next
// page continues the scan after it, whatever the filter skipped. An
// expression that does not parse is ErrBadRequest (see compileFilter).
func (f *FSM) Devices(df DeviceFilter, cursor string, limit int) ([]*Device, string, error) {
	ex, err := compileFilter(df.Expr, "filter")
	if err != nil {
		return nil, "", err
	}
	params := ex != nil && needsParams(ex)
	now := time.Now()
	var out []*Device
	next := ""
	pre := key(pDevice, df.IDPrefix)
	err = f.view(func(txn *badger.Txn) error {
		return scan(txn, pre, after([]byte(pDevice), cursor), func(_, v []byte) (bool, error) {
			fd := filterDevice{nbiDevice: nbiDevice{txn: txn}, now: now}
			ov, err := decodeDevice(v, &fd.d, params)
			if err != nil {
				return false, err
			}
			fd.ov = ov
			if !df.match(&fd.d) {
				return true, nil
			}
			if ex != nil {
				ok := ex.Holds(fd.env())
				if fd.err != nil {
					return false, fd.err
				}
				if !ok {
					return true, nil
				}
			}
			if limit > 0 && len(out) == limit {
				next = out[len(out)-1].ID
				return false, nil
			}
			d := fd.d
			out = append(out, &d)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	return out, next, nil
}

// DeviceCount counts the devices: a key-only scan that reads no values,
// for the X-Total-Count of an unfiltered device list.
func (f *FSM) DeviceCount() (int, error) {
	n := 0
	err := f.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(pDevice)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count devices: %w", err)
	}
	return n, nil
}

// Task returns one task.
func (f *FSM) Task(id string) (*fleet.Task, error) {
	var t fleet.Task
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pTask, id))
		if err != nil {
			return err
		}
		return fleet.Unmarshal(b, &t)
	})
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	return &t, nil
}

// Tasks lists tasks matching tf in ID (creation) order, after cursor, at
// most limit (0 = no limit), with the next page's cursor.
func (f *FSM) Tasks(tf TaskFilter, cursor string, limit int) ([]*fleet.Task, string, error) {
	var out []*fleet.Task
	next := ""
	add := func(t *fleet.Task) bool {
		if tf.Status != "" && t.Status != tf.Status {
			return true
		}
		if limit > 0 && len(out) == limit {
			next = out[len(out)-1].ID
			return false
		}
		out = append(out, t)
		return true
	}
	err := f.view(func(txn *badger.Txn) error {
		if tf.Device != "" {
			pre := key(pDevTask, tf.Device, "")
			return scan(txn, pre, after(pre, cursor), func(k, _ []byte) (bool, error) {
				b, err := getRaw(txn, key(pTask, string(k[len(pre):])))
				if err != nil {
					return false, err
				}
				var t fleet.Task
				if err := fleet.Unmarshal(b, &t); err != nil {
					return false, err
				}
				return add(&t), nil
			})
		}
		return scan(txn, []byte(pTask), after([]byte(pTask), cursor), func(_, v []byte) (bool, error) {
			var t fleet.Task
			if err := fleet.Unmarshal(v, &t); err != nil {
				return false, err
			}
			return add(&t), nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("list tasks: %w", err)
	}
	return out, next, nil
}

// Preset returns one preset.
func (f *FSM) Preset(name string) (*fleet.Preset, error) {
	var p fleet.Preset
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pPreset, name))
		if err != nil {
			return err
		}
		return fleet.Unmarshal(b, &p)
	})
	if err != nil {
		return nil, fmt.Errorf("preset %s: %w", name, err)
	}
	return &p, nil
}

// Presets lists every preset by name.
func (f *FSM) Presets() ([]*fleet.Preset, error) {
	var out []*fleet.Preset
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(pPreset), nil, func(_, v []byte) (bool, error) {
			var p fleet.Preset
			if err := fleet.Unmarshal(v, &p); err != nil {
				return false, err
			}
			out = append(out, &p)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list presets: %w", err)
	}
	return out, nil
}

// Provision returns one provision script.
func (f *FSM) Provision(name string) (*fleet.Provision, error) {
	var p fleet.Provision
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pProv, name))
		if err != nil {
			return err
		}
		return fleet.Unmarshal(b, &p)
	})
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", name, err)
	}
	return &p, nil
}

// VirtualParameter returns one virtual parameter script.
func (f *FSM) VirtualParameter(name string) (*fleet.VirtualParameter, error) {
	var v fleet.VirtualParameter
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pVParam, name))
		if err != nil {
			return err
		}
		return fleet.Unmarshal(b, &v)
	})
	if err != nil {
		return nil, fmt.Errorf("virtual parameter %s: %w", name, err)
	}
	return &v, nil
}

// VirtualParameters lists every virtual parameter script by name.
func (f *FSM) VirtualParameters() ([]*fleet.VirtualParameter, error) {
	var out []*fleet.VirtualParameter
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(pVParam), nil, func(_, v []byte) (bool, error) {
			var vp fleet.VirtualParameter
			if err := fleet.Unmarshal(v, &vp); err != nil {
				return false, err
			}
			out = append(out, &vp)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list virtual parameters: %w", err)
	}
	return out, nil
}

// PresetsSeeded reports whether the default presets were stored
// (OpSeedPresets applied), whatever happened to them since.
func (f *FSM) PresetsSeeded() bool {
	err := f.view(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(kSeeded))
		return err
	})
	return err == nil
}

// Provisions lists every provision script by name.
func (f *FSM) Provisions() ([]*fleet.Provision, error) {
	var out []*fleet.Provision
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(pProv), nil, func(_, v []byte) (bool, error) {
			var p fleet.Provision
			if err := fleet.Unmarshal(v, &p); err != nil {
				return false, err
			}
			out = append(out, &p)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list provisions: %w", err)
	}
	return out, nil
}

// File returns one file's metadata.
func (f *FSM) File(name string) (*fleet.FileMeta, error) {
	var m fleet.FileMeta
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pFile, name))
		if err != nil {
			return err
		}
		return fleet.Unmarshal(b, &m)
	})
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", name, err)
	}
	return &m, nil
}

// Files lists every file's metadata by name.
func (f *FSM) Files() ([]*fleet.FileMeta, error) {
	var out []*fleet.FileMeta
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(pFile), nil, func(_, v []byte) (bool, error) {
			var m fleet.FileMeta
			if err := fleet.Unmarshal(v, &m); err != nil {
				return false, err
			}
			out = append(out, &m)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list files: %w", err)
	}
	return out, nil
}

// Edges lists every edge the core has heard of.
func (f *FSM) Edges() ([]*Edge, error) {
	var out []*Edge
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(pEdge), nil, func(_, v []byte) (bool, error) {
			var e Edge
			if err := decodeRecord(v, &e); err != nil {
				return false, err
			}
			out = append(out, &e)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list edges: %w", err)
	}
	return out, nil
}

// Faults lists task faults, for one device or all.
func (f *FSM) Faults(device string) ([]*Fault, error) {
	var out []*Fault
	pre := []byte(pFault)
	if device != "" {
		pre = key(pFault, device, "")
	}
	err := f.view(func(txn *badger.Txn) error {
		return scan(txn, pre, nil, func(_, v []byte) (bool, error) {
			var ft Fault
			if err := decodeRecord(v, &ft); err != nil {
				return false, err
			}
			out = append(out, &ft)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list faults: %w", err)
	}
	return out, nil
}

// Node returns the API address registered for a raft server ID.
func (f *FSM) Node(id string) (*NodeInfo, error) {
	var n NodeInfo
	err := f.view(func(txn *badger.Txn) error {
		b, err := getRaw(txn, key(pNode, id))
		if err != nil {
			return err
		}
		return decodeRecord(b, &n)
	})
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", id, err)
	}
	return &n, nil
}

package core

import (
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision"
	"github.com/edgeacs/edgeacs/provision/expr"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// The expression filter of device lists and filter tasks: the language of
// preset preconditions (provision/expr), so an operator who can write a
// precondition can select the same devices from a terminal. It is
// evaluated here against the core's record of each device, which is less
// than an edge knows in a session: identity, tags, the last inform and
// the parameter values the edges reported. What the core does not keep
// (writable flags, attributes, the virtual Reboot/Downloads roots) reads
// as NULL.

// compileFilter parses a DeviceFilter's expression; nil when it has
// none. field names the input in the error ("filter" for the query
// parameter, "filter.expr" in a POST body). A syntax error wraps
// ErrBadRequest and the *expr.Error (its position, for the 400 body); an
// expression that names a secret parameter is refused: matching on a
// secret would let any reader guess it one value at a time, which is why
// the edge's ?param= refuses it too.
func compileFilter(src, field string) (*expr.Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	e, err := expr.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadRequest, field, err)
	}
	for _, p := range e.Paths() {
		if fleet.IsSecretParameter(p) {
			return nil, fmt.Errorf("%w: %s: cannot compare the secret parameter %s", ErrBadRequest, field, p)
		}
	}
	return e, nil
}

// filterErrorBody is the 400 answer to a filter that does not parse: the
// message, the input at fault, and the error's position, as a preset's
// precondition error gives them (presetErrorBody).
func filterErrorBody(err error, field string) map[string]any {
	body := presetErrorBody(err)
	body["field"] = field
	return body
}

// filterDevice is a stored device as a filter expression reads it, in a
// read transaction: identity from the record, parameters (exact paths)
// from the overlay or their own keys as nbiDevice reads them, and, for a
// path with wildcards or alias filters, the whole tree, loaded once.
type filterDevice struct {
	nbiDevice
	tree *provision.MemTree
	now  time.Time
}

// env is the expression environment over d.
func (d *filterDevice) env() expr.Env { return expr.Env{Lookup: d.lookup, Now: d.now} }

// lookup resolves an expression path as the edge's precondition lookup
// does (edge/provision.go), from what the core keeps:
//
//   - DeviceID.ID, .Manufacturer, .OUI, .ProductClass, .SerialNumber;
//   - Tags.<tag>: true when the device has the tag, else NULL;
//   - Events.Inform: the last inform's time; Events.Registered: when the
//     device was first known; Events.<code> (0_BOOTSTRAP, 1_BOOT, ...):
//     the last inform's time if that inform carried the event, else NULL
//     (the core does not keep older sessions);
//   - any other path: the parameter's cached value with its type; for a
//     pattern, the first leaf that matches.
func (d *filterDevice) lookup(path string) (expr.Value, bool) {
	dev := &d.d
	root, rest, _ := strings.Cut(path, ".")
	switch root {
	case provision.RootDeviceID:
		switch rest {
		case "ID":
			return expr.StringValue(dev.ID), true
		case "Manufacturer":
			return expr.StringValue(dev.Manufacturer), true
		case "OUI":
			return expr.StringValue(dev.OUI), true
		case "ProductClass":
			return expr.StringValue(dev.ProductClass), true
		case "SerialNumber":
			return expr.StringValue(dev.SerialNumber), true
		}
		return expr.Value{}, false
	case provision.RootTags:
		for _, t := range dev.Tags {
			if t == rest {
				return expr.BoolValue(true), true
			}
		}
		return expr.Value{}, false
	case provision.RootEvents:
		var at time.Time
		switch rest {
		case "Inform":
			at = dev.LastInform
		case "Registered":
			at = dev.Registered
		default:
			for _, ev := range dev.LastEvents {
				if preset.EventKey(ev) == rest {
					at = dev.LastInform
					break
				}
			}
		}
		if at.IsZero() {
			return expr.Value{}, false
		}
		return expr.TimeValue(at), true
	case provision.RootReboot, provision.RootFactoryReset, provision.RootDownloads, provision.RootVirtualParameters:
		return expr.Value{}, false // the edge's, not kept here
	}
	if !strings.ContainsAny(path, "*[") {
		v, typ, ok := d.Param(path)
		if !ok {
			return expr.Value{}, false
		}
		return expr.FromCWMP(v, typ), true
	}
	if d.tree == nil {
		d.tree = provision.NewMemTree()
		params, err := readParams(d.txn, dev.ID, d.ov)
		if err != nil {
			d.err = firstErr(d.err, err)
			return expr.Value{}, false
		}
		for name, p := range params {
			at := p.Updated
			if at.IsZero() {
				at = time.Unix(0, 1) // known, time not recorded: Match wants a non-zero one
			}
			d.tree.Put(provision.Entry{Path: name, Value: p.Value, Type: p.Type, PathTime: at, ValueTime: at})
		}
	}
	matches, err := provision.Match(d.tree, path)
	if err != nil {
		return expr.Value{}, false
	}
	for _, m := range matches {
		if !m.Object && !m.ValueTime.IsZero() {
			return expr.FromCWMP(m.Value, m.Type), true
		}
	}
	return expr.Value{}, false
}

// readParams reads a device's whole parameter tree in txn: the
// per-parameter keys, then the overlay ov (from the device's record),
// which is newer.
func readParams(txn *badger.Txn, id string, ov overlay) (map[string]Param, error) {
	params := map[string]Param{}
	pre := key(pParam, id, "")
	err := scan(txn, pre, nil, func(k, v []byte) (bool, error) {
		p, err := decodeParam(v)
		if err != nil {
			return false, err
		}
		params[string(k[len(pre):])] = p
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range ov {
		p, err := decodeParam(e.enc)
		if err != nil {
			return nil, fmt.Errorf("overlay %s: %w", e.name, err)
		}
		params[string(e.name)] = p
	}
	return params, nil
}

// needsParams reports whether e reads any stored parameter (a path
// outside the identity roots), so a scan decodes overlays only then.
func needsParams(e *expr.Expr) bool {
	for _, p := range e.Paths() {
		root, _, _ := strings.Cut(p, ".")
		switch root {
		case provision.RootDeviceID, provision.RootTags, provision.RootEvents:
		default:
			return true
		}
	}
	return false
}

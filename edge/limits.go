package edge

import (
	"errors"
	"fmt"

	"github.com/edgeacs/edgeacs/cwmp"
)

// Sizes of the identifiers a CPE sends, checked before anything is stored
// (they become cache keys, and Badger refuses keys over 64 KB with an
// error that dumps the key). From TR-069's DeviceIdStruct and EventStruct
// and TR-106's parameter names, loosened where CPEs in the field exceed
// them and nothing depends on the bound.
const (
	// maxOUILen: TR-069 says six hex digits, but CPEs send dashed forms,
	// vendor strings and longer numbers; 64 like the other fields.
	maxOUILen          = 64
	maxProductClassLen = 64  // string(64)
	maxSerialLen       = 64  // string(64)
	maxManufacturerLen = 256 // string(64), but it is only a value: lenient
	maxEventCodeLen    = 64  // string(64)
	maxEvents          = 64  // EventStruct[64]
	// maxParamPathLen: TR-106 caps a full parameter path at 256 characters.
	maxParamPathLen = 256
)

// ErrTooLong means a CPE sent an identifier longer than the standards
// allow (the CWMP listener answers 400 and stores nothing).
var ErrTooLong = errors.New("edge: identifier too long")

// checkLimits checks the identifiers of a CPE's message against the limits
// above. The error names the field and its size, never the value whole.
// A parameter list entry with an over-long name is left out (and recorded
// in env.Skipped) rather than refusing the message.
func checkLimits(env *cwmp.Envelope) error {
	switch m := env.Body.(type) {
	case *cwmp.Inform:
		for _, f := range []struct {
			name, v string
			max     int
		}{
			{"OUI", m.DeviceId.OUI, maxOUILen},
			{"ProductClass", m.DeviceId.ProductClass, maxProductClassLen},
			{"SerialNumber", m.DeviceId.SerialNumber, maxSerialLen},
			{"Manufacturer", m.DeviceId.Manufacturer, maxManufacturerLen},
		} {
			if len(f.v) > f.max {
				return fmt.Errorf("%w: DeviceId %s is %d bytes, at most %d", ErrTooLong, f.name, len(f.v), f.max)
			}
		}
		if len(m.Event) > maxEvents {
			return fmt.Errorf("%w: %d events, at most %d", ErrTooLong, len(m.Event), maxEvents)
		}
		for _, e := range m.Event {
			if len(e.Code) > maxEventCodeLen {
				return fmt.Errorf("%w: EventCode is %d bytes, at most %d", ErrTooLong, len(e.Code), maxEventCodeLen)
			}
		}
		m.ParameterList = dropLongPaths(env, m.ParameterList, func(p cwmp.ParameterValue) string { return p.Name })
	case *cwmp.GetParameterValuesResponse:
		m.ParameterList = dropLongPaths(env, m.ParameterList, func(p cwmp.ParameterValue) string { return p.Name })
	case *cwmp.GetParameterNamesResponse:
		m.ParameterList = dropLongPaths(env, m.ParameterList, func(p cwmp.ParameterInfo) string { return p.Name })
	case *cwmp.GetParameterAttributesResponse:
		m.ParameterList = dropLongPaths(env, m.ParameterList, func(p cwmp.ParameterAttribute) string { return p.Name })
	}
	return nil
}

// dropLongPaths leaves out the entries of a CPE's parameter list whose
// name is over maxParamPathLen, recording each in env.Skipped like the
// codec's malformed entries: one bad entry does not cost the others.
func dropLongPaths[T any](env *cwmp.Envelope, list []T, name func(T) string) []T {
	out := list[:0]
	for i, it := range list {
		if n := name(it); len(n) > maxParamPathLen {
			env.SkippedTotal++
			if len(env.Skipped) < 64 {
				env.Skipped = append(env.Skipped, cwmp.SkippedEntry{List: "ParameterList", Index: i, Field: "Name", Reason: "name_too_long",
					Value: fmt.Sprintf("%.48s… (%d bytes, at most %d)", n, len(n), maxParamPathLen)})
			}
			continue
		}
		out = append(out, it)
	}
	return out
}

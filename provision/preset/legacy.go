package preset

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/edgeacs/edgeacs/provision/expr"
)

// parseLegacy reads a precondition GenieACS 1.1 stored as a MongoDB query
// in a JSON string, e.g. {"_tags": "beta", "Device.X": {"$ne": "1"}}, and
// converts it the way GenieACS 1.2 does on load: a conjunction of its keys,
// $and/$or, comparisons ($eq $ne $lt $lte $gt $gte; $ne also matches a
// missing parameter), and tag tests (_tags, Tags.x) as IS [NOT] NULL.
// edgeacs also maps the device-ID keys (_id, _deviceId._SerialNumber, ...)
// to DeviceID.*, drops a trailing "._value", and reads {"x": null} as
// x IS NULL, MongoDB's meaning.
func parseLegacy(src string) (*expr.Expr, error) {
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var q map[string]any
	if err := dec.Decode(&q); err != nil {
		return nil, fmt.Errorf("%w: a precondition starting with '{' is a legacy MongoDB-style query, and this one is not valid JSON: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: legacy query: trailing data after the JSON object", ErrInvalid)
	}
	tree, err := legacyQuery(q, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: legacy query: %v", ErrInvalid, err)
	}
	e, err := expr.FromJSON(tree)
	if err != nil {
		return nil, fmt.Errorf("%w: legacy query: %w", ErrInvalid, err)
	}
	return e, nil
}

// legacyIDKeys maps GenieACS's device-ID document keys to parameters.
var legacyIDKeys = map[string]string{
	"_id":                     "DeviceID.ID",
	"_deviceId._OUI":          "DeviceID.OUI",
	"_deviceId._ProductClass": "DeviceID.ProductClass",
	"_deviceId._SerialNumber": "DeviceID.SerialNumber",
	"_deviceId._Manufacturer": "DeviceID.Manufacturer",
}

func param(p string) []any { return []any{"PARAM", p} }

// legacyQuery converts one query object into GenieACS's array form. Keys are
// taken in sorted order: a query is a conjunction, so the order changes
// only how the result prints, and sorting makes that stable.
func legacyQuery(q map[string]any, depth int) (any, error) {
	if depth > expr.MaxDepth {
		return nil, fmt.Errorf("nested more than %d deep", expr.MaxDepth)
	}
	var conj []any
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q[k]
		switch {
		case k == "$and" || k == "$or":
			list, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("%s takes an array of queries", k)
			}
			op := strings.ToUpper(k[1:])
			sub := []any{op}
			for i, item := range list {
				m, ok := item.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s[%d] is not a query object", k, i)
				}
				e, err := legacyQuery(m, depth+1)
				if err != nil {
					return nil, err
				}
				sub = append(sub, e)
			}
			switch len(sub) {
			case 1:
				conj = append(conj, op == "AND") // empty $and holds, empty $or does not
			case 2:
				conj = append(conj, sub[1])
			default:
				conj = append(conj, sub)
			}
		case strings.HasPrefix(k, "$"):
			return nil, fmt.Errorf("operator %s is not supported", clip(k))
		case k == "_tags":
			e, err := legacyTags(v)
			if err != nil {
				return nil, err
			}
			conj = append(conj, e)
		default:
			e, err := legacyField(k, v)
			if err != nil {
				return nil, err
			}
			conj = append(conj, e)
		}
	}
	switch len(conj) {
	case 0:
		return true, nil
	case 1:
		return conj[0], nil
	}
	return append([]any{"AND"}, conj...), nil
}

func tagParam(tag string) ([]any, error) {
	p := "Tags." + tag
	if err := expr.CheckPath(p); err != nil {
		return nil, fmt.Errorf("tag %q cannot be named in an expression", clip(tag))
	}
	return param(p), nil
}

func legacyTags(v any) (any, error) {
	switch x := v.(type) {
	case string:
		p, err := tagParam(x)
		if err != nil {
			return nil, err
		}
		return []any{"IS NOT NULL", p}, nil
	case map[string]any:
		var conj []any
		for _, op := range slices.Sorted(maps.Keys(x)) {
			tag, ok := x[op].(string)
			if !ok {
				return nil, fmt.Errorf("_tags: only string values are allowed")
			}
			p, err := tagParam(tag)
			if err != nil {
				return nil, err
			}
			switch op {
			case "$eq":
				conj = append(conj, []any{"IS NOT NULL", p})
			case "$ne":
				conj = append(conj, []any{"IS NULL", p})
			default:
				return nil, fmt.Errorf("_tags: operator %s is not supported", clip(op))
			}
		}
		return andOf(conj), nil
	}
	return nil, fmt.Errorf("_tags: want a tag name or {\"$eq\"/\"$ne\": tag}")
}

func andOf(conj []any) any {
	switch len(conj) {
	case 0:
		return true
	case 1:
		return conj[0]
	}
	return append([]any{"AND"}, conj...)
}

func legacyField(k string, v any) (any, error) {
	path := strings.TrimSuffix(k, "._value")
	if p, ok := legacyIDKeys[path]; ok {
		path = p
	} else if strings.HasPrefix(path, "_") {
		return nil, fmt.Errorf("key %q is not supported", clip(k))
	}
	if err := expr.CheckPath(path); err != nil {
		return nil, fmt.Errorf("key %q: %v", clip(k), err)
	}
	p := param(path)
	if strings.HasPrefix(path, "Tags.") {
		exists, err := legacyTagTest(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", clip(k), err)
		}
		if exists {
			return []any{"IS NOT NULL", p}, nil
		}
		return []any{"IS NULL", p}, nil
	}
	ops, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return []any{"IS NULL", p}, nil
		}
		if n, ok := v.(json.Number); ok && !isScalar(n) {
			return nil, fmt.Errorf("%s: number %s is out of range", clip(k), clip(n.String()))
		}
		if !isScalar(v) {
			return nil, fmt.Errorf("%s: want a value or {operator: value}", clip(k))
		}
		return []any{"=", p, v}, nil
	}
	var conj []any
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		val := ops[op]
		if !isScalar(val) || val == nil {
			return nil, fmt.Errorf("%s: %s takes a string, number or boolean", clip(k), clip(op))
		}
		switch op {
		case "$eq":
			conj = append(conj, []any{"=", p, val})
		case "$ne":
			conj = append(conj, []any{"OR", []any{"<>", p, val}, []any{"IS NULL", p}})
		case "$lt", "$lte", "$gt", "$gte":
			sym := map[string]string{"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}[op]
			conj = append(conj, []any{sym, p, val})
		default:
			return nil, fmt.Errorf("%s: operator %s is not supported", clip(k), clip(op))
		}
	}
	if len(conj) == 0 {
		return nil, fmt.Errorf("%s: empty operator object", clip(k))
	}
	return andOf(conj), nil
}

// legacyTagTest reads the value tested against a Tags.x key: a boolean,
// or {$eq|$ne|$exists: boolean}.
func legacyTagTest(v any) (bool, error) {
	if b, ok := v.(bool); ok {
		return b, nil
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for op, val := range m {
			b, ok := val.(bool)
			if !ok {
				break
			}
			switch op {
			case "$eq", "$exists":
				return b, nil
			case "$ne":
				return !b, nil
			}
		}
	}
	return false, fmt.Errorf("invalid tag query")
}

func isScalar(v any) bool {
	switch x := v.(type) {
	case nil, bool, string:
		return true
	case json.Number:
		_, err := x.Float64()
		return err == nil
	}
	return false
}

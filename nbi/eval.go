package nbi

import (
	"slices"
	"strings"
	"time"
)

// scalar is one value of a device field, pre-parsed into the forms its
// type allows.
type scalar struct {
	raw    string
	num    number
	isNum  bool
	t      time.Time
	isDate bool
	b      bool
	isBool bool
}

// paramScalar reads a parameter value by its CWMP type. An untyped value
// (some CPEs omit types) is whatever its text looks like.
func paramScalar(value, xsdType string) scalar {
	s := scalar{raw: value}
	switch kindOf(xsdType) {
	case kindInt, kindUint, kindFloat:
		s.num, s.isNum = parseNumber(value)
	case kindBool:
		s.b, s.isBool = parseBool(value)
	case kindDate:
		s.t, s.isDate = parseDate(value)
	case kindUntyped:
		if s.num, s.isNum = parseNumber(value); s.isNum {
			break
		}
		if strings.EqualFold(value, "true") || strings.EqualFold(value, "false") {
			s.b, s.isBool = parseBool(value)
			break
		}
		s.t, s.isDate = parseDate(value)
	}
	return s
}

func timeScalar(t time.Time) scalar {
	return scalar{raw: formatTime(t), t: t, isDate: true}
}

// compare orders a device value against a query value in the richest form
// both have: number, date, boolean, else their text. ok is false only for
// null, which orders against nothing.
func compare(s scalar, l *literal) (c int, ok bool) {
	switch {
	case l.null:
		return 0, false
	case s.isNum && l.isNum:
		return s.num.cmp(l.num), true
	case s.isDate && l.isDate:
		return s.t.Compare(l.t), true
	case s.isBool && l.isBool:
		switch {
		case s.b == l.b:
			return 0, true
		case l.b:
			return -1, true
		}
		return 1, true
	}
	return strings.Compare(s.raw, l.str), true
}

func equal(s scalar, l *literal) bool {
	if l.pattern != nil && l.pattern.MatchString(s.raw) {
		return true
	}
	c, ok := compare(s, l)
	return ok && c == 0
}

// values reads a field of d into buf: one scalar for most fields, one per
// tag for _tags. present is false for a missing parameter, no tags, or a
// zero time.
func (f field) values(d Device, buf []scalar) (vals []scalar, present bool) {
	one := func(s scalar) ([]scalar, bool) { return append(buf, s), true }
	str := func(v string) ([]scalar, bool) { return one(scalar{raw: v}) }
	tm := func(t time.Time) ([]scalar, bool) {
		if t.IsZero() {
			return buf, false
		}
		return one(timeScalar(t))
	}
	switch f.kind {
	case fParam:
		v, t, ok := d.Param(f.path)
		if !ok {
			return buf, false
		}
		return one(paramScalar(v, t))
	case fID:
		return str(d.ID())
	case fTags:
		for _, t := range d.Tags() {
			buf = append(buf, scalar{raw: t})
		}
		return buf, len(buf) > 0
	case fLastInform:
		return tm(d.LastInform())
	case fRegistered:
		return tm(d.Registered())
	case fLastBoot, fLastBootstrap:
		b, ok := d.(Boots)
		if !ok {
			return buf, false
		}
		if f.kind == fLastBoot {
			return tm(b.LastBoot())
		}
		return tm(b.LastBootstrap())
	}
	id := d.DeviceID()
	switch f.kind {
	case fManufacturer:
		return str(id.Manufacturer)
	case fOUI:
		return str(id.OUI)
	case fProductClass:
		return str(id.ProductClass)
	default:
		return str(id.SerialNumber)
	}
}

func (n *node) match(d Device) bool {
	switch n.op {
	case opAnd:
		for _, k := range n.kids {
			if !k.match(d) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range n.kids {
			if k.match(d) {
				return true
			}
		}
		return false
	case opNor:
		for _, k := range n.kids {
			if k.match(d) {
				return false
			}
		}
		return true
	}
	var buf [1]scalar
	vals, present := n.field.values(d, buf[:0])
	return n.pred.eval(vals, present)
}

// eval applies MongoDB's rules for a field that may hold several values
// (_tags): most operators hold when any value satisfies them; $ne and $nin
// hold when none equals; a missing field equals null.
func (p *pred) eval(vals []scalar, present bool) bool {
	switch p.op {
	case pEq, pNe:
		return p.eqAny(vals, present, &p.lit) == (p.op == pEq)
	case pIn, pNin:
		in := false
		for i := range p.lits {
			if p.eqAny(vals, present, &p.lits[i]) {
				in = true
				break
			}
		}
		return in == (p.op == pIn)
	case pGt, pGte, pLt, pLte:
		for _, v := range vals {
			c, ok := compare(v, &p.lit)
			if !ok {
				continue
			}
			if (p.op == pGt && c > 0) || (p.op == pGte && c >= 0) ||
				(p.op == pLt && c < 0) || (p.op == pLte && c <= 0) {
				return true
			}
		}
		return false
	case pRegex:
		for _, v := range vals {
			if p.re.MatchString(v.raw) {
				return true
			}
		}
		return false
	case pExists:
		return present == p.want
	case pNot:
		return !p.kids[0].eval(vals, present)
	default: // pAll
		for _, k := range p.kids {
			if !k.eval(vals, present) {
				return false
			}
		}
		return true
	}
}

func (p *pred) eqAny(vals []scalar, present bool, l *literal) bool {
	if l.null {
		return !present
	}
	for _, v := range vals {
		if equal(v, l) {
			return true
		}
	}
	return false
}

// idSet returns the IDs a node can match at most: see Query.IDs.
func (n *node) idSet() ([]string, bool) {
	switch n.op {
	case opField:
		if n.field.kind != fID {
			return nil, false
		}
		return n.pred.idSet()
	case opAnd:
		var out []string
		found := false
		for _, k := range n.kids {
			ids, ok := k.idSet()
			if !ok {
				continue
			}
			if !found {
				out, found = ids, true
				continue
			}
			out = slices.DeleteFunc(out, func(id string) bool {
				_, in := slices.BinarySearch(ids, id)
				return !in
			})
		}
		return out, found
	case opOr:
		var out []string
		for _, k := range n.kids {
			ids, ok := k.idSet()
			if !ok {
				return nil, false
			}
			out = append(out, ids...)
		}
		slices.Sort(out)
		return slices.Compact(out), true
	}
	return nil, false
}

func (p *pred) idSet() ([]string, bool) {
	exact := func(l *literal) bool { return !l.null && l.pattern == nil }
	switch p.op {
	case pEq:
		if exact(&p.lit) {
			return []string{p.lit.str}, true
		}
	case pIn:
		out := make([]string, 0, len(p.lits))
		for i := range p.lits {
			if !exact(&p.lits[i]) {
				return nil, false
			}
			out = append(out, p.lits[i].str)
		}
		slices.Sort(out)
		return slices.Compact(out), true
	case pAll:
		return (&node{op: opAnd, kids: wrapPreds(p.kids)}).idSet()
	}
	return nil, false
}

func wrapPreds(ps []*pred) []*node {
	out := make([]*node, len(ps))
	for i, p := range ps {
		out[i] = &node{op: opField, field: field{kind: fID}, pred: p}
	}
	return out
}

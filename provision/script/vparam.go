package script

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/dop251/goja"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/provision"
)

// VirtualAttributes are a virtual parameter's attributes as GenieACS
// passes them to its script: the times they were learnt (or, declared,
// how fresh they must be) and their values.
type VirtualAttributes struct {
	// ValueTime and WritableTime: zero means absent.
	ValueTime, WritableTime time.Time
	// Value is the value [v, type]; nil means absent. A declared value
	// is the one to set.
	Value *provision.Value
	// Writable is the writable flag; nil means absent.
	Writable *bool
}

// VirtualArgs are a virtual parameter script's inputs. The script sees
// them as GenieACS passes them, in args:
//
//	args[0]  declared timestamps   {value: ms, writable: ms}
//	args[1]  declared values       {value: [v, type]}   (a value to set)
//	args[2]  current timestamps    {value: ms, writable: ms}
//	args[3]  current values        {value: [v, type], writable: bool}
type VirtualArgs struct {
	Declared, Current VirtualAttributes
}

// VirtualValue is what a virtual parameter script returned, checked as
// GenieACS checks it.
type VirtualValue struct {
	// Writable is the returned writable flag; nil when not returned.
	Writable *bool
	// Value is the returned value with its type (given, or inferred:
	// number xsd:int, boolean xsd:boolean, Date xsd:dateTime, otherwise
	// xsd:string); nil when not returned.
	Value *provision.Value
}

// RunVirtualParameter runs a virtual parameter script once with the same
// sandbox as a provision: declare(), clear(), commit(), log() and the
// limits behave alike, and a Blocked result is replayed the same way
// (StartVirtualParameter does it). A Finished result carries the checked
// return value; a script that returns nothing usable, or omits an
// attribute that was declared or is cached, fails with FaultScript.
func (s *Script) RunVirtualParameter(ctx context.Context, env Env, args VirtualArgs) (VirtualValue, Result, error) {
	res, err := s.run(ctx, env, &args)
	var out VirtualValue
	if res.virtual != nil {
		out = *res.virtual
	}
	return out, res, err
}

// Virtual returns the value a virtual parameter's Exec settled on, once
// it is done and did not fail.
func (e *Exec) Virtual() (VirtualValue, bool) {
	if !e.done || e.res.Status != Finished || e.res.virtual == nil {
		return VirtualValue{}, false
	}
	return *e.res.virtual, true
}

func (sb *sandbox) setVirtualArgs(a VirtualArgs) {
	sb.vargs = &a
	rt := sb.rt
	stamps := func(v VirtualAttributes) *goja.Object {
		o := rt.NewObject()
		if !v.ValueTime.IsZero() {
			_ = o.Set(attrValue, v.ValueTime.UnixMilli())
		}
		if !v.WritableTime.IsZero() {
			_ = o.Set(attrWritable, v.WritableTime.UnixMilli())
		}
		return o
	}
	values := func(v VirtualAttributes, declared bool) *goja.Object {
		o := rt.NewObject()
		if v.Value != nil {
			if declared && v.Value.Type == "" {
				_ = o.Set(attrValue, rt.NewArray(v.Value.Value))
			} else {
				typ := typeOrString(cwmp.NormalizeType(v.Value.Type))
				_ = o.Set(attrValue, rt.NewArray(sb.jsValue(v.Value.Value, typ), typ))
			}
		}
		if v.Writable != nil {
			_ = o.Set(attrWritable, *v.Writable)
		}
		return o
	}
	sb.args = rt.NewArray(stamps(a.Declared), values(a.Declared, true), stamps(a.Current), values(a.Current, false))
}

// validTypes are the types a virtual parameter's value may have
// (GenieACS's list).
var validTypes = map[string]bool{
	cwmp.TypeInt: true, cwmp.TypeUnsignedInt: true, cwmp.TypeBoolean: true, cwmp.TypeString: true,
	cwmp.TypeDateTime: true, cwmp.TypeBase64: true, cwmp.TypeHexBinary: true,
}

// virtualResult checks a virtual parameter script's return value. It may
// run the script's getters: it is called while the watchdog runs.
func (sb *sandbox) virtualResult(ret goja.Value) (out *VirtualValue, f *provision.Fault) {
	name := sb.s.name
	bad := func(msg string) (*VirtualValue, *provision.Fault) {
		return nil, &provision.Fault{Code: FaultScript, Message: msg}
	}
	defer func() {
		if recover() != nil {
			out, f = bad("Invalid virtual parameter return value")
		}
	}()
	obj, ok := ret.(*goja.Object)
	if !ok || goja.IsNull(ret) {
		return bad("Invalid virtual parameter return value")
	}
	a := sb.vargs
	out = &VirtualValue{}
	if w := obj.Get(attrWritable); w != nil && !goja.IsUndefined(w) && !goja.IsNull(w) {
		b := w.ToBoolean()
		out.Writable = &b
	} else if !a.Declared.WritableTime.IsZero() || a.Declared.Writable != nil {
		return bad("Virtual parameter '" + clip(name, 64) + "' must provide 'writable' attribute")
	}
	v := obj.Get(attrValue)
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		if !a.Declared.ValueTime.IsZero() || a.Declared.Value != nil {
			return bad("Virtual parameter '" + clip(name, 64) + "' must provide 'value' attribute")
		}
		return out, nil
	}
	typ := ""
	if arr, ok := v.(*goja.Object); ok && arr.ClassName() == "Array" {
		if t := arr.Get("1"); t != nil && !goja.IsUndefined(t) && !goja.IsNull(t) {
			typ = t.String()
		}
		v = arr.Get("0")
	}
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return bad("Invalid virtual parameter value attribute")
	}
	var val string
	switch x := v.Export().(type) {
	case bool:
		val = strconv.FormatBool(x)
		if typ == "" {
			typ = cwmp.TypeBoolean
		}
	case int64, float64:
		f := v.ToFloat()
		if typ == "" {
			typ = cwmp.TypeInt
		}
		if typ == cwmp.TypeDateTime && !math.IsNaN(f) && !math.IsInf(f, 0) {
			val = time.UnixMilli(int64(f)).UTC().Format("2006-01-02T15:04:05.000Z")
		} else {
			val = v.String()
		}
	case time.Time:
		val = x.UTC().Format("2006-01-02T15:04:05.000Z")
		if typ == "" {
			typ = cwmp.TypeDateTime
		}
	default:
		val = v.String()
		if typ == "" {
			typ = cwmp.TypeString
		}
	}
	if !validTypes[typ] {
		return bad("Invalid virtual parameter value attribute")
	}
	if len(val) > sb.lim.Value {
		return bad("virtual parameter value longer than " + strconv.Itoa(sb.lim.Value) + " bytes")
	}
	if typ == cwmp.TypeInt || typ == cwmp.TypeUnsignedInt {
		// GenieACS keeps integers as numbers; a fractional one is
		// truncated as parseInt would.
		if f, err := strconv.ParseFloat(val, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			val = strconv.FormatFloat(math.Trunc(f), 'f', -1, 64)
		}
	}
	out.Value = &provision.Value{Value: val, Type: typ}
	return out, nil
}

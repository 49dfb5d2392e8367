package core

import (
	"strings"

	"github.com/edgeacs/edgeacs/fleet"
)

// view is d as the API shows it (fleet.DeviceView, the edge's shape too);
// with its parameters when d was read with them, secrets hidden.
func (d *Device) view() fleet.DeviceView {
	v := fleet.DeviceView{
		ID: d.ID, OUI: d.OUI, ProductClass: d.ProductClass, SerialNumber: d.SerialNumber, Manufacturer: d.Manufacturer,
		Edge: d.Edge, Registered: d.Registered, LastInform: d.LastInform, LastEvents: d.LastEvents, Tags: d.Tags,
	}
	if d.Parameters != nil {
		v.Parameters = publicParams(d.Parameters)
	}
	return v
}

// publicParams is a parameter tree as the API shows it. The core keeps
// what the edges report (value, type, when): an object node is known by
// its path, writability and attributes are the edge's.
func publicParams(ps map[string]Param) map[string]fleet.Parameter {
	out := make(map[string]fleet.Parameter, len(ps))
	for path, p := range ps {
		out[path] = fleet.Parameter{Value: p.Value, Type: p.Type, Timestamp: p.Updated, Object: strings.HasSuffix(path, ".")}
	}
	return fleet.PublicParameters(out)
}

// deviceViews is view of each; never nil, so a list answers [].
func deviceViews(ds []*Device) []fleet.DeviceView {
	out := make([]fleet.DeviceView, len(ds))
	for i, d := range ds {
		out[i] = d.view()
	}
	return out
}

// view is f as the API lists it (fleet.FaultView): a task's fault,
// identified by the task, or a preset channel's, by "<device>:<channel>"
// as at the edge.
func (f *Fault) view() fleet.FaultView {
	if f.Channel != "" {
		return fleet.FaultView{ID: f.Device + ":" + f.Channel, Device: f.Device, Channel: f.Channel, Retries: f.Retries,
			Code: f.Fault.Code, Message: f.Fault.Message, Detail: f.Fault.Detail, Timestamp: f.Time}
	}
	return fleet.FaultView{ID: f.TaskID, Device: f.Device, Task: f.TaskID, Code: f.Fault.Code, Message: f.Fault.Message,
		Detail: f.Fault.Detail, Timestamp: f.Time}
}

// faultViews is view of each; never nil.
func faultViews(fs []*Fault) []fleet.FaultView {
	out := make([]fleet.FaultView, len(fs))
	for i, f := range fs {
		out[i] = f.view()
	}
	return out
}

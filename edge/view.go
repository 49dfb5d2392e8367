package edge

import "github.com/edgeacs/edgeacs/fleet"

// view is d as the API shows it (fleet.DeviceView), homed at edgeID:
// identity, the session facts only an edge knows, never a credential.
func (d *Device) view(edgeID string) fleet.DeviceView {
	return fleet.DeviceView{
		ID: d.ID, OUI: d.OUI, ProductClass: d.ProductClass, SerialNumber: d.SerialNumber, Manufacturer: d.Manufacturer,
		Edge: edgeID, Registered: d.Registered, LastInform: d.LastInform, LastEvents: d.LastEvents,
		Root: d.Root, SoftwareVersion: d.SoftwareVersion, LastBoot: d.LastBoot, LastBootstrap: d.LastBootstrap,
		RemoteAddr: d.RemoteAddr, ConnectionRequestURL: d.ConnectionRequestURL,
		UDPConnectionRequestAddress: d.UDPConnectionRequestAddress, STUNEnable: d.STUNEnable,
		ConnectionRequestUsername: d.CRUsername,
	}
}

// deviceViews is view of each; never nil, so a list answers [].
func deviceViews(ds []*Device, edgeID string) []fleet.DeviceView {
	out := make([]fleet.DeviceView, len(ds))
	for i, d := range ds {
		out[i] = d.view(edgeID)
	}
	return out
}

// view is f as the API lists it.
func (f DeviceFault) view() fleet.FaultView {
	return fleet.FaultView{ID: f.ID, Device: f.Device, Task: f.Task, Channel: f.Channel, Retries: f.Retries, Code: f.Code,
		Message: f.Message, Detail: f.Detail, Timestamp: f.Timestamp}
}

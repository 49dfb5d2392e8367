package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
)

// The API's JSON shapes are package fleet's views, which the core and the
// edges answer with (a contract test holds both to them); the client
// names them rather than copying them, so a field added there is a field
// here.
type (
	// Device is a device as the API shows it; Parameters is set (perhaps
	// empty) by Device, absent in lists.
	Device = fleet.DeviceView
	// Parameter is one node of a device's parameter tree. A secret's Value
	// is "" and Secret is set.
	Parameter = fleet.Parameter
	// ParameterValue is one [name, value, type] triple.
	ParameterValue = fleet.ParameterValue
	// ParameterAttribute is a parameter's notification and access list.
	ParameterAttribute = fleet.ParameterAttribute
	// ParameterInfo is one entry of a getParameterNames result.
	ParameterInfo = fleet.ParameterInfo
	// Task is a task as the API shows it: secrets' values "" and named in
	// Redacted.
	Task = fleet.TaskView
	// TaskResult is what the CPE answered.
	TaskResult = fleet.TaskResult
	// TaskFault is why a task ended in fault.
	TaskFault = fleet.TaskFault
	// TaskStatus is pending, running, done, fault or expired.
	TaskStatus = fleet.TaskStatus
	// Fault is a fault recorded against a device.
	Fault = fleet.FaultView
)

// DeviceFilter selects devices; each field that is set must match. It is
// the filter of POST /api/v1/tasks as the API reads it.
type DeviceFilter struct {
	// IDPrefix selects devices whose ID starts with it.
	IDPrefix string `json:"id,omitempty"`
	// Edge selects the devices homed at this edge.
	Edge string `json:"edge,omitempty"`
	// Tag selects the devices with this tag.
	Tag string `json:"tag,omitempty"`
	// LastInformAfter selects the devices that informed after it.
	LastInformAfter time.Time `json:"lastInformAfter,omitzero"`
	// Expr is an expression in the language of preset preconditions,
	// e.g. `DeviceID.ProductClass LIKE 'HG8%' AND Tags.beta IS NULL`.
	Expr string `json:"expr,omitempty"`
}

// IsZero reports whether f selects every device.
func (f DeviceFilter) IsZero() bool { return f == DeviceFilter{} }

func (f DeviceFilter) query(q url.Values) {
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("id", f.IDPrefix)
	set("edge", f.Edge)
	set("tag", f.Tag)
	set("filter", f.Expr)
	if !f.LastInformAfter.IsZero() {
		q.Set("lastInformAfter", f.LastInformAfter.Format(time.RFC3339Nano))
	}
}

// DeviceQuery is one page of a device list.
type DeviceQuery struct {
	DeviceFilter
	// Limit is the page size (the API's default when 0, at most 10000).
	Limit int
	// Cursor is where the page starts: the previous page's next cursor.
	Cursor string
}

// pageQuery adds limit and cursor to q.
func pageQuery(q url.Values, limit int, cursor string) {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
}

// withQuery is path with q, if any.
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// Devices lists one page of devices, in ID order, without their
// parameters; next is the cursor of the next page, "" after the last.
// An expression that does not parse is an *APIError (400) whose message
// names its line and column.
func (c *Client) Devices(ctx context.Context, q DeviceQuery) (devs []Device, next string, err error) {
	v := url.Values{}
	q.DeviceFilter.query(v)
	pageQuery(v, q.Limit, q.Cursor)
	h, err := c.DoHeader(ctx, http.MethodGet, withQuery("/api/v1/devices", v), nil, &devs)
	if err != nil {
		return nil, "", err
	}
	return devs, h.Get("X-Next-Cursor"), nil
}

// listPage is the page size AllDevices and AllTasks ask for.
const listPage = 1000

// AllDevices yields every device q's filter selects, from q.Cursor on,
// fetching pages of q.Limit (1000 when 0) as it goes. It stops at the
// first error, which it yields.
func (c *Client) AllDevices(ctx context.Context, q DeviceQuery) iter.Seq2[Device, error] {
	if q.Limit <= 0 {
		q.Limit = listPage
	}
	return func(yield func(Device, error) bool) {
		for {
			devs, next, err := c.Devices(ctx, q)
			if err != nil {
				yield(Device{}, err)
				return
			}
			for _, d := range devs {
				if !yield(d, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			q.Cursor = next
		}
	}
}

// Device returns one device with its parameter tree (secrets hidden).
func (c *Client) Device(ctx context.Context, id string) (Device, error) {
	var d Device
	err := c.Do(ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(id), nil, &d)
	return d, err
}

// DeviceParams returns a device's parameter tree by path.
func (c *Client) DeviceParams(ctx context.Context, id string) (map[string]Parameter, error) {
	var ps map[string]Parameter
	err := c.Do(ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(id)+"/params", nil, &ps)
	return ps, err
}

// DeviceHistory reads a device's recorded parameter series (path's
// alone when set), oldest point first.
func (c *Client) DeviceHistory(ctx context.Context, id, path string) ([]fleet.HistorySeries, error) {
	u := "/api/v1/devices/" + url.PathEscape(id) + "/history"
	if path != "" {
		u += "?path=" + url.QueryEscape(path)
	}
	var hs []fleet.HistorySeries
	err := c.Do(ctx, http.MethodGet, u, nil, &hs)
	return hs, err
}

// DeleteDevice forgets a device, its tasks and faults.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/devices/"+url.PathEscape(id), nil, nil)
}

// TagDevice adds tag to a device; adding a tag it has changes nothing.
func (c *Client) TagDevice(ctx context.Context, id, tag string) error {
	return c.Do(ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(id)+"/tags/"+url.PathEscape(tag), nil, nil)
}

// UntagDevice removes tag from a device.
func (c *Client) UntagDevice(ctx context.Context, id, tag string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/devices/"+url.PathEscape(id)+"/tags/"+url.PathEscape(tag), nil, nil)
}

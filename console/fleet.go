package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

// ---- overview ----

type overviewData struct {
	Devices  map[string]int
	Total    int
	Edges    []edgeRow
	InFlight map[string]int
	Running  []client.Task
	Faults   []faultCount
	// Rollouts are those still running or paused.
	Rollouts []RolloutSummary
	Now      time.Time
}

type edgeRow struct {
	client.Edge
	Heard     time.Time
	OutboxLen int64
	Lag       time.Duration
}

type faultCount struct {
	Code, Meaning string
	Count         int
}

// RolloutSummary is one running rollout as the overview shows it.
type RolloutSummary struct {
	ID, Name, State string
	Done, Total     int
}

// unfinishedRollouts lists the rollouts still under way (running or
// paused) for the overview, with their progress.
func unfinishedRollouts(ctx context.Context, api *client.Client) ([]RolloutSummary, error) {
	rs, err := api.Rollouts(ctx)
	if err != nil {
		return nil, err
	}
	var out []RolloutSummary
	for _, r := range rs {
		if r.Finished() {
			continue
		}
		state := r.State
		if r.Reason != "" {
			state += ": " + r.Reason
		}
		out = append(out, RolloutSummary{ID: r.Name, Name: r.Name, State: state, Done: r.Done, Total: r.Total})
	}
	return out, nil
}

// overview is the fleet at a glance. The device counts scan the device
// list once (no parameters); at 100k devices that is ten pages of 10 000.
func (c *Console) overview(w http.ResponseWriter, q *req) error {
	now := c.now()
	d := overviewData{Devices: map[string]int{}, InFlight: map[string]int{}, Now: now}
	for dev, err := range q.api.AllDevices(q.ctx, client.DeviceQuery{Limit: 10000}) {
		if err != nil {
			return err
		}
		d.Total++
		d.Devices[DeviceState(dev, now)]++
	}
	if c.has.Edges {
		edges, err := q.api.Edges(q.ctx)
		if err != nil {
			return err
		}
		for _, e := range edges {
			r := edgeRow{Edge: e, Heard: e.Heard()}
			if e.Health != nil {
				r.OutboxLen, r.Lag = e.Health.OutboxLen, e.Health.OldestUnsent
			}
			d.Edges = append(d.Edges, r)
		}
	}
	if err := c.inFlight(q, &d); err != nil {
		return err
	}
	faults, err := q.api.Faults(q.ctx, "")
	if err != nil {
		return err
	}
	byCode := map[string]int{}
	for _, f := range faults {
		if now.Sub(f.Timestamp) <= time.Hour {
			byCode[f.Code]++
		}
	}
	for code, n := range byCode {
		d.Faults = append(d.Faults, faultCount{Code: code, Meaning: faultMeaning(code), Count: n})
	}
	slices.SortFunc(d.Faults, func(a, b faultCount) int { return b.Count - a.Count })
	if c.has.Rollouts {
		if d.Rollouts, err = unfinishedRollouts(q.ctx, q.api); err != nil {
			return err
		}
	}
	return c.render(w, q, http.StatusOK, "overview", "Overview", "overview", d)
}

// inFlight counts the pending and running tasks and keeps the first ten.
// An API without TaskQuery (a standalone edge's) lists every task it
// keeps; the statuses are picked here.
func (c *Console) inFlight(q *req, d *overviewData) error {
	add := func(t client.Task) {
		d.InFlight[string(t.Status)]++
		if len(d.Running) < 10 {
			d.Running = append(d.Running, t)
		}
	}
	if !c.has.TaskQuery {
		for t, err := range q.api.AllTasks(q.ctx, client.TaskQuery{}) {
			if err != nil {
				return err
			}
			if t.Status == fleet.StatusPending || t.Status == fleet.StatusRunning {
				add(t)
			}
		}
		return nil
	}
	for _, st := range []fleet.TaskStatus{fleet.StatusPending, fleet.StatusRunning} {
		for t, err := range q.api.AllTasks(q.ctx, client.TaskQuery{Status: st}) {
			if err != nil {
				return err
			}
			add(t)
		}
	}
	return nil
}

// ---- devices ----

// pageSize is the device table's page.
const pageSize = 50

// maxSoftwareSort bounds the devices a sort by software version may
// scan: the core's list does not carry it, so each device's tree is read.
const maxSoftwareSort = 20000

type devicesData struct {
	Filter      string
	FilterError string
	ErrLine     int
	ErrColumn   int
	Sort        string
	Desc        bool
	Rows        []deviceRow
	Total       int // -1 unknown
	Page        int
	Next        string // cursor (id order) or page number
	Prev        string
	First       int
	Now         time.Time
	Columns     []column
}

type deviceRow struct {
	client.Device
	State string
}

type column struct {
	Key, Label, Href, Aria string
	Active, Desc           bool
}

func (c *Console) devices(w http.ResponseWriter, q *req) error {
	v := q.URL.Query()
	d := devicesData{Filter: v.Get("filter"), Sort: v.Get("sort"), Desc: v.Get("dir") == "desc", Total: -1, Now: c.now()}
	if _, ok := sortColumns[d.Sort]; !ok || d.Sort == "tags" && !c.has.Tags {
		d.Sort = "id"
	}
	page, _ := strconv.Atoi(v.Get("page"))
	d.Page = max(page, 1)
	d.Columns = columns(d, c.has.Tags)
	f := client.DeviceFilter{Expr: d.Filter}
	if !c.has.Filter {
		// The box is an ID prefix where expressions are not understood.
		f = client.DeviceFilter{IDPrefix: d.Filter}
	}
	status := http.StatusOK
	var devs []client.Device
	var err error
	if d.Sort == "id" && !d.Desc {
		// The API's own order: a cursor page, as fast at 100k as at 10.
		var next string
		devs, next, err = q.api.Devices(q.ctx, client.DeviceQuery{DeviceFilter: f, Limit: pageSize, Cursor: v.Get("cursor")})
		if err == nil {
			d.Next = next
			if f.IsZero() {
				var h http.Header
				h, err = q.api.DoHeader(q.ctx, http.MethodGet, "/api/v1/devices?limit=1", nil, nil)
				if err == nil {
					d.Total, _ = strconv.Atoi(h.Get("X-Total-Count"))
				}
			}
		}
	} else {
		key := q.s.hash + "\x00" + d.Filter
		var all []client.Device
		all, err = c.index.get(q.ctx, key, d.Sort, d.Desc, func(ctx context.Context) ([]client.Device, error) {
			return c.scanDevices(ctx, q.api, f, d.Sort == "software")
		})
		if err == nil {
			d.Total = len(all)
			lo := min((d.Page-1)*pageSize, len(all))
			hi := min(lo+pageSize, len(all))
			devs = all[lo:hi]
			d.First = lo
			if hi < len(all) {
				d.Next = strconv.Itoa(d.Page + 1)
			}
			if d.Page > 1 {
				d.Prev = strconv.Itoa(d.Page - 1)
			}
		}
	}
	if err != nil {
		var ae *client.APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
			d.FilterError, d.ErrLine, d.ErrColumn = ae.Message, ae.Line, ae.Column
		case !errors.As(err, &ae) && errors.Is(err, client.ErrBadRequest):
			d.FilterError = err.Error()
		default:
			return err
		}
		status = http.StatusBadRequest
		devs = nil
	}
	if d.Sort != "software" {
		if err := softwareVersions(q.ctx, q.api, devs); err != nil {
			return err
		}
	}
	for _, dev := range devs {
		d.Rows = append(d.Rows, deviceRow{Device: dev, State: DeviceState(dev, d.Now)})
	}
	return c.render(w, q, status, "devices", "Devices", "devices", d)
}

// columns are the table's headers, each a link that sorts by it (again:
// reverses).
// Without tags (an API that has none) there is no Tags column.
func columns(d devicesData, tags bool) []column {
	cols := []column{{Key: "id", Label: "ID"}, {Key: "model", Label: "Model"}, {Key: "software", Label: "Software"},
		{Key: "lastInform", Label: "Last inform"}, {Key: "edge", Label: "Edge"}, {Key: "tags", Label: "Tags"}}
	if !tags {
		cols = cols[:len(cols)-1]
	}
	for i := range cols {
		col := &cols[i]
		col.Active = col.Key == d.Sort
		col.Desc = col.Active && d.Desc
		v := url.Values{}
		if d.Filter != "" {
			v.Set("filter", d.Filter)
		}
		if col.Key != "id" {
			v.Set("sort", col.Key)
		}
		if col.Active && !d.Desc {
			v.Set("sort", col.Key)
			v.Set("dir", "desc")
		}
		col.Href = Prefix + "devices"
		if len(v) > 0 {
			col.Href += "?" + v.Encode()
		}
		switch {
		case col.Active && d.Desc:
			col.Aria = "descending"
		case col.Active:
			col.Aria = "ascending"
		default:
			col.Aria = "none"
		}
	}
	return cols
}

// scanDevices lists every device f selects, for a sort. With software set
// it reads each one's software version too (see maxSoftwareSort).
func (c *Console) scanDevices(ctx context.Context, api *client.Client, f client.DeviceFilter, software bool) ([]client.Device, error) {
	var out []client.Device
	for dev, err := range api.AllDevices(ctx, client.DeviceQuery{DeviceFilter: f, Limit: 10000}) {
		if err != nil {
			return nil, err
		}
		if len(out) == maxSortScan || software && len(out) == maxSoftwareSort {
			return nil, fmt.Errorf("%w: more than %d devices match; narrow the filter to sort by this column", client.ErrBadRequest, len(out))
		}
		out = append(out, dev)
	}
	if software {
		for i := 0; i < len(out); i += 500 {
			if err := softwareVersions(ctx, api, out[i:min(i+500, len(out))]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// softwareVersionPaths are where TR-098 and TR-181 keep it.
var softwareVersionPaths = []string{"InternetGatewayDevice.DeviceInfo.SoftwareVersion", "Device.DeviceInfo.SoftwareVersion"}

// softwareVersions fills the SoftwareVersion of devs that lack it (the
// core's list does not carry it) with one GenieACS NBI query for all of
// them, projected on the two paths.
func softwareVersions(ctx context.Context, api *client.Client, devs []client.Device) error {
	var ids []string
	at := map[string]int{}
	for i, d := range devs {
		if d.SoftwareVersion == "" {
			ids = append(ids, d.ID)
			at[d.ID] = i
		}
	}
	if len(ids) == 0 {
		return nil
	}
	query, _ := json.Marshal(map[string]any{"_id": map[string]any{"$in": ids}})
	v := url.Values{"query": {string(query)}, "projection": {strings.Join(softwareVersionPaths, ",")}}
	var docs []map[string]any
	if err := api.Do(ctx, http.MethodGet, "/devices/?"+v.Encode(), nil, &docs); err != nil {
		return err
	}
	for _, doc := range docs {
		id, _ := doc["_id"].(string)
		i, ok := at[id]
		if !ok {
			continue
		}
		for _, p := range softwareVersionPaths {
			if s := docValue(doc, p); s != "" {
				devs[i].SoftwareVersion = s
				break
			}
		}
	}
	return nil
}

// docValue is the _value at a dotted path of an NBI document, as text.
func docValue(doc map[string]any, path string) string {
	var cur any = doc
	for seg := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[seg]
	}
	m, ok := cur.(map[string]any)
	if !ok || m["_value"] == nil {
		return ""
	}
	return fmt.Sprint(m["_value"])
}

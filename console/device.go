package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
)

// recentTasks is how many of a device's tasks its page lists.
const recentTasks = 10

// maxSearchResults bounds a parameter search's answer.
const maxSearchResults = 200

type deviceData struct {
	Device client.Device
	State  string
	Tree   treeData
	Tasks  []client.Task
	Faults []client.Fault
	Files  []client.FileMeta
	// Task is the task the page was opened to watch (?task=), after a
	// form post without JavaScript.
	Task *taskView
	Now  time.Time
}

// treeData is one level of the parameter tree (or a search's matches).
type treeData struct {
	// CanWrite and CSRF are the session's, for the set-value forms.
	CanWrite bool
	CSRF     string
	Device   string
	Path     string
	Search   string
	Nodes    []treeNode
	More     int // matches left out of a search
}

// session gives d and its opened levels the session's rights.
func (d *treeData) session(canWrite bool, csrf string) {
	d.CanWrite, d.CSRF = canWrite, csrf
	for i := range d.Nodes {
		if ch := d.Nodes[i].Children; ch != nil {
			ch.session(canWrite, csrf)
		}
	}
}

// treeNode is one parameter or object of the tree.
type treeNode struct {
	Path, Name string
	Object     bool
	Value      string
	Type       string
	InputType  string // for the set-value form: text, number, checkbox...
	Secret     bool
	Age        string
	Children   *treeData // an object opened in the page's first render
}

func (c *Console) device(w http.ResponseWriter, q *req) error {
	id := q.PathValue("id")
	dev, err := q.api.Device(q.ctx, id)
	if err != nil {
		return err
	}
	now := c.now()
	d := deviceData{Device: dev, State: DeviceState(dev, now), Now: now}
	d.Tree = treeLevel(dev.ID, dev.Parameters, q.URL.Query().Get("path"), now)
	if s := q.URL.Query().Get("q"); s != "" {
		d.Tree = treeSearch(dev.ID, dev.Parameters, s, now)
	}
	d.Tree.session(q.canWrite(), q.s.csrf)
	if d.Tasks, err = c.deviceTasks(q, id); err != nil {
		return err
	}
	if d.Faults, err = q.api.Faults(q.ctx, id); err != nil {
		return err
	}
	if q.canWrite() {
		if d.Files, err = q.api.Files(q.ctx); err != nil {
			return err
		}
	}
	if tid := q.URL.Query().Get("task"); tid != "" {
		t, err := q.api.Task(q.ctx, tid)
		if err != nil {
			return err
		}
		tv := describeTask(t)
		d.Task = &tv
	}
	return c.render(w, q, http.StatusOK, "device", dev.ID, "devices", d)
}

// deviceTasks is the device's most recent tasks, newest first.
func (c *Console) deviceTasks(q *req, id string) ([]client.Task, error) {
	var all []client.Task
	if !c.has.TaskQuery {
		// The device's own list (a standalone edge's API): all of them.
		if err := q.api.Do(q.ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(id)+"/tasks", nil, &all); err != nil {
			return nil, err
		}
		if len(all) > recentTasks {
			all = all[len(all)-recentTasks:]
		}
		slices.Reverse(all)
		return all, nil
	}
	for t, err := range q.api.AllTasks(q.ctx, client.TaskQuery{Device: id}) {
		if err != nil {
			return nil, err
		}
		all = append(all, t)
		if len(all) > 4*recentTasks {
			all = all[len(all)-recentTasks:]
		}
	}
	if len(all) > recentTasks {
		all = all[len(all)-recentTasks:]
	}
	slices.Reverse(all)
	return all, nil
}

// deviceTree is one level of the tree (?path=, htmx's lazy expand) or a
// search (?q=), as a fragment.
func (c *Console) deviceTree(w http.ResponseWriter, q *req) error {
	id := q.PathValue("id")
	params, err := q.api.DeviceParams(q.ctx, id)
	if err != nil {
		return err
	}
	now := c.now()
	var d treeData
	if s := q.URL.Query().Get("q"); s != "" {
		d = treeSearch(id, params, s, now)
	} else {
		path := q.URL.Query().Get("path")
		if path != "" && !strings.HasSuffix(path, ".") {
			path += "."
		}
		d = children(id, params, path, now)
	}
	d.session(q.canWrite(), q.s.csrf)
	if q.Header.Get("HX-Request") == "" {
		// Without JavaScript, expanding is a link to the device page
		// opened at that level.
		v := url.Values{"path": {d.Path}}
		if d.Search != "" {
			v = url.Values{"q": {d.Search}}
		}
		http.Redirect(w, q.Request, Prefix+"devices/"+url.PathEscape(id)+"?"+v.Encode(), http.StatusSeeOther)
		return nil
	}
	return c.fragment(w, "device", "tree", d)
}

// treeLevel is the children of path ("" the roots) in params. path is an
// object path ending in '.'; the levels above it are opened too, so a
// link to a deep level shows where it is.
func treeLevel(id string, params map[string]client.Parameter, path string, now time.Time) treeData {
	if path != "" && !strings.HasSuffix(path, ".") {
		path += "."
	}
	// Open each level from the root down to path.
	var open []string
	for p := path; p != ""; {
		open = append(open, p)
		i := strings.LastIndexByte(strings.TrimSuffix(p, "."), '.')
		p = p[:i+1]
	}
	root := children(id, params, "", now)
	cur := &root
	for i := len(open) - 1; i >= 0; i-- {
		found := false
		for j := range cur.Nodes {
			n := &cur.Nodes[j]
			if n.Object && n.Path == open[i] {
				ch := children(id, params, n.Path, now)
				n.Children = &ch
				cur, found = n.Children, true
				break
			}
		}
		if !found {
			break
		}
	}
	return root
}

// children lists the nodes directly under prefix.
func children(id string, params map[string]client.Parameter, prefix string, now time.Time) treeData {
	d := treeData{Device: id, Path: prefix}
	seen := map[string]bool{}
	for path, p := range params {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok || rest == "" {
			continue
		}
		seg, _, deeper := strings.Cut(rest, ".")
		if deeper || strings.HasSuffix(path, ".") {
			obj := prefix + seg + "."
			if !seen[obj] {
				seen[obj] = true
				d.Nodes = append(d.Nodes, treeNode{Path: obj, Name: seg, Object: true})
			}
			continue
		}
		d.Nodes = append(d.Nodes, leaf(path, seg, p, now))
	}
	slices.SortFunc(d.Nodes, func(a, b treeNode) int { return comparePath(a.Name, b.Name) })
	return d
}

// comparePath orders instance numbers as numbers (2 before 10).
func comparePath(a, b string) int {
	na, ea := strconv.Atoi(a)
	nb, eb := strconv.Atoi(b)
	if ea == nil && eb == nil {
		return na - nb
	}
	return strings.Compare(a, b)
}

func leaf(path, name string, p client.Parameter, now time.Time) treeNode {
	n := treeNode{Path: path, Name: name, Value: p.Value, Type: p.Type, Secret: p.Secret || fleet.IsSecretParameter(path)}
	if n.Secret {
		n.Value = ""
	}
	if !p.Timestamp.IsZero() {
		n.Age = age(now.Sub(p.Timestamp))
	}
	switch cwmp.NormalizeType(p.Type) {
	case cwmp.TypeBoolean:
		n.InputType = "boolean"
	case cwmp.TypeInt, cwmp.TypeUnsignedInt, cwmp.TypeLong, cwmp.TypeUnsignedLong:
		n.InputType = "number"
	default:
		n.InputType = "text"
	}
	if n.Secret {
		n.InputType = "password"
	}
	return n
}

// treeSearch lists the parameters whose path contains s (any case).
func treeSearch(id string, params map[string]client.Parameter, s string, now time.Time) treeData {
	d := treeData{Device: id, Search: s}
	low := strings.ToLower(s)
	for path, p := range params {
		if strings.HasSuffix(path, ".") || !strings.Contains(strings.ToLower(path), low) {
			continue
		}
		d.Nodes = append(d.Nodes, leaf(path, path, p, now))
	}
	slices.SortFunc(d.Nodes, func(a, b treeNode) int { return strings.Compare(a.Path, b.Path) })
	if len(d.Nodes) > maxSearchResults {
		d.More = len(d.Nodes) - maxSearchResults
		d.Nodes = d.Nodes[:maxSearchResults]
	}
	return d
}

// age is a duration as "12 s", "5 min", "3 h" or "4 d".
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d d", int(d.Hours()/24))
}

// ---- tags ----

func (c *Console) addTag(w http.ResponseWriter, q *req) error {
	id := q.PathValue("id")
	tag := strings.TrimSpace(q.PostFormValue("tag"))
	if tag == "" {
		return fmt.Errorf("%w: a tag cannot be empty", client.ErrBadRequest)
	}
	if err := q.api.TagDevice(q.ctx, id, tag); err != nil {
		return err
	}
	redirect(w, q.Request, Prefix+"devices/"+url.PathEscape(id), "Tagged "+tag+".")
	return nil
}

func (c *Console) removeTag(w http.ResponseWriter, q *req) error {
	id, tag := q.PathValue("id"), q.PathValue("tag")
	if err := q.api.UntagDevice(q.ctx, id, tag); err != nil {
		return err
	}
	redirect(w, q.Request, Prefix+"devices/"+url.PathEscape(id), "Removed tag "+tag+".")
	return nil
}

// ---- actions and tasks ----

// deviceAction queues the task a device page's form asks for, with a
// connection request so it runs now, and answers its live status (htmx)
// or the device page watching it.
func (c *Console) deviceAction(w http.ResponseWriter, q *req) error {
	id := q.PathValue("id")
	tr, err := actionTask(q)
	if err != nil {
		return c.actionError(w, q, id, err)
	}
	t, err := q.api.CreateTask(q.ctx, id, tr, client.CreateOptions{Wake: true})
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			return c.actionError(w, q, id, errors.New(ae.Message))
		}
		return err
	}
	if q.Header.Get("HX-Request") != "" {
		return c.fragment(w, "device", "task", describeTask(t))
	}
	http.Redirect(w, q.Request, Prefix+"devices/"+url.PathEscape(id)+"?task="+url.QueryEscape(t.ID), http.StatusSeeOther)
	return nil
}

// actionError shows why a form's values were refused, next to the form
// (htmx) or as the page's error.
func (c *Console) actionError(w http.ResponseWriter, q *req, id string, err error) error {
	if q.Header.Get("HX-Request") != "" {
		return c.fragment(w, "device", "task", taskView{Refused: err.Error()})
	}
	c.fail(w, q.Request, q.s, http.StatusBadRequest, err.Error())
	return nil
}

// actionTask is the task a device form asks for, its values checked.
func actionTask(q *req) (client.TaskRequest, error) {
	switch a := q.PostFormValue("action"); a {
	case "set":
		path, typ := q.PostFormValue("path"), q.PostFormValue("type")
		val := q.PostFormValue("value")
		if path == "" || strings.HasSuffix(path, ".") {
			return client.TaskRequest{}, errors.New("choose a parameter (not an object) to set")
		}
		if typ == "" {
			typ = cwmp.TypeString
		}
		if cwmp.NormalizeType(typ) == cwmp.TypeBoolean && val == "" {
			val = "false"
		}
		if err := cwmp.ValidateValue(typ, val); err != nil {
			return client.TaskRequest{}, fmt.Errorf("%s: %q is not a valid %s value", path, val, typ)
		}
		return client.TaskRequest{Name: fleet.TaskSetParameterValues, ParameterValues: []client.ParameterValue{{Name: path, Value: val, Type: typ}}}, nil
	case "refresh":
		// "" refreshes the whole tree.
		return client.TaskRequest{Name: fleet.TaskRefreshObject, ObjectName: q.PostFormValue("path")}, nil
	case "reboot":
		return client.TaskRequest{Name: fleet.TaskReboot}, nil
	case "factoryReset":
		if q.PostFormValue("confirm") != "yes" {
			return client.TaskRequest{}, errors.New("tick the box to confirm a factory reset: it erases the device's configuration")
		}
		return client.TaskRequest{Name: fleet.TaskFactoryReset}, nil
	case "download":
		name := q.PostFormValue("file")
		if name == "" {
			return client.TaskRequest{}, errors.New("choose a file to download")
		}
		return client.TaskRequest{Name: fleet.TaskDownload, FileName: name}, nil
	default:
		return client.TaskRequest{}, fmt.Errorf("unknown action %q", a)
	}
}

// taskView is a task in words, for the live status panel.
type taskView struct {
	ID, Device, Name string
	Status           string
	Final, OK        bool
	Headline         string
	Lines            []string
	Warning          string
	Refused          string
}

// describeTask says where a task stands and what came of it.
func describeTask(t client.Task) taskView {
	v := taskView{ID: t.ID, Device: t.Device, Name: t.Name, Status: string(t.Status), Final: t.Status.Final(), Warning: t.Warning}
	what := taskWords(t)
	switch t.Status {
	case fleet.StatusPending:
		v.Headline = what + ": queued, waiting for the device to connect."
	case fleet.StatusRunning:
		v.Headline = what + ": running on the device"
		if t.Attempts > 1 {
			v.Headline += fmt.Sprintf(" (attempt %d)", t.Attempts)
		}
		v.Headline += "."
	case fleet.StatusDone:
		v.OK = true
		v.Headline = what + ": done."
		if t.Result != nil {
			for _, pv := range t.Result.ParameterValues {
				val := pv.Value
				if fleet.IsSecretParameter(pv.Name) {
					val = "(hidden)"
				}
				v.Lines = append(v.Lines, pv.Name+" = "+val)
			}
			if t.Result.Status == 1 {
				v.Lines = append(v.Lines, "The device applies it after its next reboot.")
			}
		}
		if t.Name == fleet.TaskSetParameterValues {
			for _, pv := range t.ParameterValues {
				val := pv.Value
				if fleet.IsSecretParameter(pv.Name) {
					val = "(hidden)"
				}
				v.Lines = append(v.Lines, pv.Name+" is now "+val)
			}
		}
	case fleet.StatusFault:
		v.Headline = what + ": failed."
		if f := t.Fault; f != nil {
			v.Lines = append(v.Lines, faultWords(f.Code, f.Message))
			keys := make([]string, 0, len(f.Detail))
			for k := range f.Detail {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				code, msg, _ := strings.Cut(f.Detail[k], " ")
				v.Lines = append(v.Lines, k+": "+faultWords(code, msg))
			}
		}
	case fleet.StatusExpired:
		v.Headline = what + ": expired; the device did not connect in time."
	default:
		v.Headline = what + ": " + string(t.Status) + "."
	}
	return v
}

// taskWords names what a task does.
func taskWords(t client.Task) string {
	switch t.Name {
	case fleet.TaskSetParameterValues:
		names := make([]string, len(t.ParameterValues))
		for i, pv := range t.ParameterValues {
			names[i] = pv.Name
		}
		return "Set " + strings.Join(names, ", ")
	case fleet.TaskRefreshObject:
		if t.ObjectName == "" {
			return "Refresh all parameters"
		}
		return "Refresh " + t.ObjectName
	case fleet.TaskReboot:
		return "Reboot"
	case fleet.TaskFactoryReset:
		return "Factory reset"
	case fleet.TaskDownload:
		return "Download " + t.FileName
	}
	return t.Name
}

// faultWords is a fault as an operator reads it: the CWMP meaning of its
// code, and what the device or the edge said.
func faultWords(code, msg string) string {
	m := faultMeaning(code)
	switch {
	case m == "":
		return fmt.Sprintf("%s: %s", code, msg)
	case msg == "" || strings.EqualFold(msg, m):
		return fmt.Sprintf("The device answered fault %s (%s).", code, m)
	}
	return fmt.Sprintf("The device answered fault %s (%s): %s", code, m, msg)
}

// faultMeaning is the CWMP meaning of a numeric fault code, or the edge's
// own codes in words; "" when unknown.
func faultMeaning(code string) string {
	switch code {
	case "timeout":
		return "the device did not answer in time"
	case "session_terminated":
		return "the session ended before the device answered"
	case "invalid_response":
		return "the device's answer was not valid CWMP"
	case "expired":
		return "the task expired before the device connected"
	}
	n, err := strconv.ParseUint(code, 10, 32)
	if err != nil {
		return ""
	}
	return cwmp.FaultMessage(uint32(n))
}

// task is a task's live status (htmx polls it until the task is final).
func (c *Console) task(w http.ResponseWriter, q *req) error {
	t, err := q.api.Task(q.ctx, q.PathValue("id"))
	if err != nil {
		return err
	}
	if q.Header.Get("HX-Request") == "" {
		http.Redirect(w, q.Request, Prefix+"devices/"+url.PathEscape(t.Device)+"?task="+url.QueryEscape(t.ID), http.StatusSeeOther)
		return nil
	}
	return c.fragment(w, "device", "task", describeTask(t))
}

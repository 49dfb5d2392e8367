package main

// The one API shape: an edge and the core it syncs with, holding the same
// device, tasks, fault and file (the device informs at the edge, the tasks
// are made at the core and run at the edge, the file is uploaded to the
// core and reaches the edge), answer the same requests with the same JSON
// shapes: the same keys with the same kinds of value, recursively. Values
// may differ; keys only one side has must be in contractOneSided, with the
// reason.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/internal/testauth"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// contractOneSided lists the keys one side may have without the other,
// as "<resource>.<key path>" ("*" for any map key or list index) → the
// side that has them and why.
var contractOneSided = map[string]string{
	// What only the edge serving the device learns in its sessions.
	"device.root":                        "edge: the data model root it saw",
	"device.softwareVersion":             "edge: from the inform",
	"device.lastBoot":                    "edge: session history",
	"device.lastBootstrap":               "edge: session history",
	"device.remoteAddr":                  "edge: where the session came from",
	"device.connectionRequestURL":        "edge: how to wake the device",
	"device.udpConnectionRequestAddress": "edge: how to wake the device",
	"device.stunEnable":                  "edge: how to wake the device",
	"device.connectionRequestUsername":   "edge: how to wake the device",
	"device.tags":                        "core: tags are the core's",
	"device.parameters.*.writable":       "edge: learnt from GetParameterNames; deltas carry values only",
	"device.parameters.*.notification":   "edge: learnt from GetParameterAttributes",
	"device.parameters.*.accessList":     "edge: learnt from GetParameterAttributes",
	// A task that names no parameterKey is sent with its ID as the key;
	// the edge records that on its copy, the core's keeps the request.
	"task.parameterKey": "edge: the ParameterKey it sent the CPE",
}

// contractSystem is a single core node and one edge synced to it, with one
// simulated device homed at the edge.
type contractSystem struct {
	core   *isoCore
	edge   *isoEdge
	client *http.Client
	dev    string
}

func startContractSystem(t *testing.T) *contractSystem {
	t.Helper()
	caDir := filepath.Join(t.TempDir(), "ca")
	if err := fleetsync.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	if err := fleetsync.IssueCert(caDir, "n1", fleetsync.RoleCore, ""); err != nil {
		t.Fatal(err)
	}
	if err := fleetsync.IssueCert(caDir, "pop1", fleetsync.RoleEdge, ""); err != nil {
		t.Fatal(err)
	}
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.CADir = "n1", t.TempDir(), caDir
	cfg.RaftAddr, cfg.APIAddr, cfg.SyncAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	cfg.RaftNoSync, cfg.RaftLogLevel = true, "warn"
	cfg.Bootstrap = true
	stageSecret(t, cfg.DataDir)
	c := startIsoCore(t, cfg)
	if _, err := c.node.WaitForLeader(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, c.node)
	e := startIsoEdge(t, "pop1", caDir, []string{c.sync}, map[string]string{c.sync: "n1"})
	// The edge accepts the fleet's tokens once the core has sent them.
	waitSecret(t, e.node.Cache())
	s := &contractSystem{core: c, edge: e,
		client: &http.Client{Timeout: 20 * time.Second, Transport: testauth.Transport{Base: &http.Transport{Proxy: nil}, Token: func(*http.Request) string { return testSecret }}}}
	t.Cleanup(s.client.CloseIdleConnections)

	f := isoFleet(t, e.acs, 1, 91, 0)
	s.dev = f.Device(0).ID()
	isoStartFleet(t, f)
	isoWait(t, "the device homed at the core and provisioned at its edge", 30*time.Second, func() bool {
		d, err := e.node.Cache().Device(s.dev)
		if err != nil || d.CRPassword == "" {
			return false
		}
		cd, err := c.node.FSM().Device(s.dev, false)
		return err == nil && cd.Edge == e.id
	})
	return s
}

func (s *contractSystem) url(api, path string) string { return "http://" + api + path }

// call does method path on the API at api and returns the status and the
// decoded JSON body.
func (s *contractSystem) call(t *testing.T, api, method, path, body string, hdr ...string) (int, http.Header, any) {
	t.Helper()
	req, err := http.NewRequest(method, s.url(api, path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, s.url(api, path), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, resp.Header, v
}

func TestAPIContractEdgeCore(t *testing.T) {
	s := startContractSystem(t)
	coreAPI, edgeAPI := s.core.node.APIAddr(), s.edge.api
	dev := url.PathEscape(s.dev)
	devPath := "/api/v1/devices/" + dev

	// A task that runs (done, with a result), one that faults (an unknown
	// parameter), and a download with a transfer password left pending.
	mkTask := func(body, query string) fleet.TaskView {
		t.Helper()
		code, _, v := s.call(t, coreAPI, "POST", devPath+"/tasks"+query, body)
		raw, _ := json.Marshal(v)
		var tv fleet.TaskView
		if err := json.Unmarshal(raw, &tv); err != nil || code/100 != 2 || tv.Task == nil || tv.ID == "" {
			t.Fatalf("create %s: %d %s", body, code, raw)
		}
		return tv
	}
	root := "InternetGatewayDevice."
	if d, err := s.edge.node.Cache().Device(s.dev); err == nil && d.Root != "" {
		root = d.Root
	}
	done := mkTask(`{"name": "getParameterValues", "parameterNames": ["`+root+`DeviceInfo.SoftwareVersion"]}`, "?connection_request&wait=15s")
	faulted := mkTask(`{"name": "getParameterValues", "parameterNames": ["`+root+`NoSuchThing.Anywhere"]}`, "?connection_request&wait=15s")
	if done.Status != fleet.StatusDone || faulted.Status != fleet.StatusFault {
		t.Fatalf("tasks did not end as planned: %s %s", done.Status, faulted.Status)
	}
	// The download is to stay pending (no wake): not picked up by the
	// session that ran the tasks above, which lingers for follow-ups.
	isoWait(t, "the device's session to end", 15*time.Second, func() bool { return s.edge.node.Server().OpenSessions() == 0 })
	download := mkTask(`{"name": "download", "url": "http://files.example/fw.bin", "username": "ftp", "password": "transfer-secret"}`, "")
	// A tag (the core's alone) and a file, uploaded to the core.
	if code, _, v := s.call(t, coreAPI, "POST", devPath+"/tags/contract", ""); code != 204 {
		t.Fatalf("tag: %d %v", code, v)
	}
	if code, _, v := s.call(t, coreAPI, "PUT", "/api/v1/files/contract.bin?fileType="+url.QueryEscape("1 Firmware Upgrade Image"), "firmware bytes"); code != 201 {
		t.Fatalf("upload: %d %v", code, v)
	}

	// Wait until the edge holds all of it and the core holds the outcomes.
	isoWait(t, "the edge and the core agree on tasks, fault and file", 30*time.Second, func() bool {
		c := s.edge.node.Cache()
		if _, err := c.Task(download.ID); err != nil {
			return false
		}
		if fs, err := c.Faults(s.dev); err != nil || len(fs) == 0 {
			return false
		}
		if code, _, _ := s.call(t, edgeAPI, "GET", "/api/v1/files/contract.bin", ""); code != 200 {
			return false
		}
		fs, err := s.core.node.FSM().Faults(s.dev)
		if err != nil || len(fs) == 0 {
			return false
		}
		for _, id := range []string{done.ID, faulted.ID} {
			ct, err := s.core.node.FSM().Task(id)
			et, err2 := c.Task(id)
			if err != nil || err2 != nil || ct.Status != et.Status || !ct.Status.Final() {
				return false
			}
		}
		return true
	})
	// The core's tree is what the edge reported: wait for the last delta.
	isoWait(t, "the core's parameter tree to match the edge's", 15*time.Second, func() bool {
		_, _, ev := s.call(t, edgeAPI, "GET", devPath, "")
		_, _, cv := s.call(t, coreAPI, "GET", devPath, "")
		return slices.Equal(leafPaths(ev), leafPaths(cv))
	})

	for _, tt := range []struct{ resource, path string }{
		{"device", devPath},
		{"device", "/api/v1/devices?id=" + url.QueryEscape(s.dev)},
		{"task", "/api/v1/tasks/" + done.ID},
		{"task", "/api/v1/tasks/" + faulted.ID},
		{"task", "/api/v1/tasks/" + download.ID},
		{"task", devPath + "/tasks"},
		{"task", "/api/v1/tasks"},
		{"fault", devPath + "/faults"},
		{"file", "/api/v1/files/contract.bin"},
		{"file", "/api/v1/files"},
		{"error", "/api/v1/devices/no-such-device"},
		{"error", "/api/v1/tasks?no_such_parameter=1"},
		{"error", "/api/v1/tasks?limit=0"},
	} {
		ecode, ehdr, ev := s.call(t, edgeAPI, "GET", tt.path, "")
		ccode, chdr, cv := s.call(t, coreAPI, "GET", tt.path, "")
		if ecode != ccode || ehdr.Get("Content-Type") != chdr.Get("Content-Type") {
			t.Errorf("GET %s: edge %d %s, core %d %s", tt.path, ecode, ehdr.Get("Content-Type"), ccode, chdr.Get("Content-Type"))
		}
		for _, d := range shapeDiff(tt.resource, ev, cv) {
			t.Errorf("GET %s: %s", tt.path, d)
		}
		if strings.Contains(fmt.Sprint(ev)+fmt.Sprint(cv), "transfer-secret") {
			t.Errorf("GET %s shows the transfer password", tt.path)
		}
	}
	// The same secret parameter is hidden alike.
	secret := root + "ManagementServer.ConnectionRequestPassword"
	for side, api := range map[string]string{"edge": edgeAPI, "core": coreAPI} {
		_, _, v := s.call(t, api, "GET", devPath, "")
		p, _ := v.(map[string]any)["parameters"].(map[string]any)[secret].(map[string]any)
		if p["value"] != "" || p["secret"] != true {
			t.Errorf("%s shows %s as %v", side, secret, p)
		}
	}
	// A method a path does not serve: 405 with the same kind of Allow.
	for side, api := range map[string]string{"edge": edgeAPI, "core": coreAPI} {
		code, hdr, v := s.call(t, api, "PATCH", "/api/v1/tasks/"+done.ID, "")
		if code != 405 || !strings.Contains(hdr.Get("Allow"), "GET") || v.(map[string]any)["error"] == "" {
			t.Errorf("%s: PATCH a task: %d Allow %q %v", side, code, hdr.Get("Allow"), v)
		}
	}
}

// leafPaths are the parameter paths of a device JSON that are not objects.
func leafPaths(v any) []string {
	m, _ := v.(map[string]any)
	ps, _ := m["parameters"].(map[string]any)
	var out []string
	for k, p := range ps {
		if pm, _ := p.(map[string]any); pm["object"] != true {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// kind is a JSON value's kind.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// shapeDiff compares the shapes of an edge's and the core's JSON for
// resource: object keys (a key one side lacks must be in
// contractOneSided), value kinds, recursively. Lists of resources are
// matched by _id; parameter trees by path (a path one side lacks is
// skipped: the trees' leaves were compared before); other arrays element
// by element, as far as both go.
func shapeDiff(resource string, edgeV, coreV any) []string {
	var diffs []string
	var walk func(path string, e, c any)
	walk = func(path string, e, c any) {
		if kind(e) != kind(c) {
			diffs = append(diffs, fmt.Sprintf("%s: edge has %s, core %s", path, kind(e), kind(c)))
			return
		}
		switch e := e.(type) {
		case map[string]any:
			c := c.(map[string]any)
			if strings.HasSuffix(path, ".parameters") {
				for k, ev := range e {
					if cv, ok := c[k]; ok {
						walk(path+".*", ev, cv)
					}
				}
				return
			}
			for _, k := range slices.Sorted(mapsKeys(e, c)) {
				ev, inE := e[k]
				cv, inC := c[k]
				switch {
				case inE && inC:
					walk(path+"."+k, ev, cv)
				case contractOneSided[path+"."+k] == "":
					side := "edge"
					if inC {
						side = "core"
					}
					diffs = append(diffs, fmt.Sprintf("%s.%s: only the %s has it", path, k, side))
				}
			}
		case []any:
			c := c.([]any)
			byID := func(l []any) map[string]any {
				m := map[string]any{}
				for _, x := range l {
					if o, ok := x.(map[string]any); ok {
						if id, ok := o["_id"].(string); ok {
							m[id] = o
						}
					}
				}
				return m
			}
			if ei, ci := byID(e), byID(c); len(ei) == len(e) && len(ci) == len(c) && len(e) > 0 {
				for id, ev := range ei {
					if cv, ok := ci[id]; ok {
						walk(path, ev, cv)
					} else {
						diffs = append(diffs, fmt.Sprintf("%s: %s only on the edge", path, id))
					}
				}
				for id := range ci {
					if _, ok := ei[id]; !ok {
						diffs = append(diffs, fmt.Sprintf("%s: %s only on the core", path, id))
					}
				}
				return
			}
			if len(e) != len(c) {
				diffs = append(diffs, fmt.Sprintf("%s: edge has %d elements, core %d", path, len(e), len(c)))
			}
			for i := range min(len(e), len(c)) {
				walk(path, e[i], c[i])
			}
		}
	}
	walk(resource, edgeV, coreV)
	return diffs
}

func mapsKeys(a, b map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
		for k := range b {
			if _, dup := a[k]; !dup && !yield(k) {
				return
			}
		}
	}
}

// TestShapeDiff: what the contract test catches.
func TestShapeDiff(t *testing.T) {
	parse := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, resource, edge, core string
		diffs                      int
	}{
		{"same", "device", `{"_id": "a", "edge": "e1", "parameters": {"X": {"value": "1", "type": "xsd:int"}}}`,
			`{"_id": "a", "edge": "e2", "parameters": {"X": {"value": "2", "type": "xsd:string"}}}`, 0},
		{"nested vs flat", "device", `{"device": {"_id": "a"}, "parameters": {}}`, `{"_id": "a", "parameters": {}}`, 2},
		{"renamed parameter field", "device", `{"_id": "a", "parameters": {"X": {"value": "1", "timestamp": "t"}}}`,
			`{"_id": "a", "parameters": {"X": {"value": "1", "updated": "t"}}}`, 2},
		{"kind", "fault", `[{"_id": "f", "code": "9005"}]`, `[{"_id": "f", "code": 9005}]`, 1},
		{"nested fault", "fault", `[{"_id": "f", "code": "9005"}]`, `[{"_id": "f", "fault": {"code": "9005"}}]`, 2},
		{"allowed one-sided", "device", `{"_id": "a", "root": "Device."}`, `{"_id": "a", "tags": ["x"]}`, 0},
		{"not allowed one-sided", "task", `{"_id": "t", "password": ""}`, `{"_id": "t"}`, 1},
		{"list matched by id", "task", `[{"_id": "t1", "status": "done"}, {"_id": "t2"}]`, `[{"_id": "t2"}, {"_id": "t1", "status": "done"}]`, 0},
		{"list member missing", "task", `[{"_id": "t1"}]`, `[{"_id": "t1"}, {"_id": "t2"}]`, 1},
		{"error", "error", `{"error": "x"}`, `{"error": "y"}`, 0},
	}
	for _, tt := range tests {
		if d := shapeDiff(tt.resource, parse(tt.edge), parse(tt.core)); len(d) != tt.diffs {
			t.Errorf("%s: %d differences %q, want %d", tt.name, len(d), d, tt.diffs)
		}
	}
}

// TestOpenAPISchemasMatchFleet: the schemas core/openapi.json and
// edge/openapi.json share are the same in both, and name exactly the JSON
// keys of the fleet types the APIs answer with.
func TestOpenAPISchemasMatchFleet(t *testing.T) {
	type doc struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	read := func(path string) doc {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d doc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return d
	}
	coreDoc, edgeDoc := read("../../core/openapi.json"), read("../../edge/openapi.json")
	// Shapes only one API answers with: the last unreadable CWMP message is
	// kept by the edge that received it (in memory), not synced.
	edgeOnly := map[string]bool{"BadMessage": true}
	for name, es := range edgeDoc.Components.Schemas {
		if edgeOnly[name] {
			continue
		}
		cs, ok := coreDoc.Components.Schemas[name]
		var ev, cv any
		_ = json.Unmarshal(es, &ev)
		_ = json.Unmarshal(cs, &cv)
		if !ok || !reflect.DeepEqual(ev, cv) {
			t.Errorf("schema %s differs between edge/openapi.json and core/openapi.json", name)
		}
	}
	for name, v := range map[string]any{
		"DeviceView": fleet.DeviceView{}, "Parameter": fleet.Parameter{}, "TaskView": fleet.TaskView{},
		"FaultView": fleet.FaultView{}, "FileMeta": fleet.FileMeta{}, "TaskFault": fleet.TaskFault{},
		"TaskResult": fleet.TaskResult{}, "Token": fleet.Token{}, "TokenCreated": fleet.TokenCreated{},
		"Provision": fleet.Provision{}, "Preset": fleet.Preset{}, "EdgeHealth": fleet.EdgeHealth{},
		"ClusterServer": core.ClusterServer{}, "ClusterStatus": core.ClusterStatus{}, "JoinRequest": core.JoinRequest{},
		"RolloutView": fleet.RolloutView{}, "RolloutWaveView": fleet.RolloutWaveView{}, "RolloutDevice": fleet.RolloutDevice{},
		"RolloutCounts": fleet.RolloutCounts{}, "RolloutRequest": fleet.RolloutRequest{}, "RolloutWaveSpec": fleet.RolloutWaveSpec{},
	} {
		var s struct {
			Properties map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(coreDoc.Components.Schemas[name], &s); err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		got := slices.Sorted(func(yield func(string) bool) {
			for k := range s.Properties {
				if !yield(k) {
					return
				}
			}
		})
		want := jsonKeys(reflect.TypeOf(v))
		if name == "TaskView" {
			// PublicTask empties it, and it is omitempty: never shown.
			want = slices.DeleteFunc(want, func(k string) bool { return k == "password" })
		}
		if !slices.Equal(got, want) {
			t.Errorf("schema %s has %v; %T marshals %v", name, got, v, want)
		}
	}
}

// jsonKeys are the keys encoding/json writes for struct type t (embedded
// structs flattened), sorted.
func jsonKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
		case f.Anonymous && name == "" && ft.Kind() == reflect.Struct:
			out = append(out, jsonKeys(ft)...)
		case name == "":
			out = append(out, f.Name)
		default:
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/internal/leakcheck"
	"github.com/edgeacs/edgeacs/internal/testauth"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// nbiShape flattens a JSON document into path → JSON type ("string",
// "number", "bool", "array", "object" for an empty object).
func nbiShape(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			out[prefix] = "object"
		}
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			nbiShape(p, e, out)
		}
	case string:
		out[prefix] = "string"
	case float64:
		out[prefix] = "number"
	case bool:
		out[prefix] = "bool"
	case []any:
		out[prefix] = "array"
	default:
		out[prefix] = fmt.Sprintf("%T", v)
	}
}

// nbiEdgeOnly reports whether an edge document (of shape edge) may hold
// path while the core's lacks it: what only the edge learns (boot times,
// writable flags, attributes, object nodes, which the core does not keep),
// never a parameter's value or type.
func nbiEdgeOnly(path string, edge map[string]string) bool {
	i := strings.LastIndexByte(path, '.')
	switch path[i+1:] {
	case "_lastBoot", "_lastBootstrap", "_writable", "_notification", "_accessList":
		return true
	case "_timestamp", "_object":
		// Of an object node (no value): the core keeps leaves only.
		_, leaf := edge[path[:max(i, 0)]+"._value"]
		return i > 0 && !leaf
	}
	return false
}

// nbiGet fetches a GenieACS device query from the API at base.
func nbiGet(t *testing.T, client *http.Client, base, query, projection string) (int, []map[string]any) {
	t.Helper()
	u := "http://" + base + "/devices/?query=" + url.QueryEscape(query)
	if projection != "" {
		u += "&projection=" + url.QueryEscape(projection)
	}
	resp, err := client.Get(u)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var docs []map[string]any
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &docs); err != nil {
			t.Fatalf("GET %s: %v: %s", u, err, b)
		}
	}
	return resp.StatusCode, docs
}

// TestNBIContractEdgeAndCore: the same GenieACS device query against an
// edge and against the core it syncs to, for a device that informed at the
// edge, gives documents of the same shape: every key the core's has, the
// edge's has with the same JSON type, and the edge's has nothing more than
// what only an edge knows (nbiEdgeOnly). A script can move between the two
// APIs without changing how it reads a device.
func TestNBIContractEdgeAndCore(t *testing.T) {
	t.Cleanup(func() {
		leakcheck.NoGoroutines(t, 20*time.Second, "edgeacs/edgeacs/core.", "edgeacs/edgeacs/edge.", "edgeacs/edgeacs/sync.",
			"edgeacs/edgeacs/sim.", "edgeacs/edgeacs/raftstore.", "edgeacs/edgeacs/blob.", "hashicorp/raft", "dgraph-io/badger", "quic-go/quic-go")
	})
	caDir := filepath.Join(t.TempDir(), "ca")
	if err := fleetsync.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	if err := fleetsync.IssueCert(caDir, "n1", fleetsync.RoleCore, ""); err != nil {
		t.Fatal(err)
	}
	if err := fleetsync.IssueCert(caDir, "popA", fleetsync.RoleEdge, ""); err != nil {
		t.Fatal(err)
	}
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.CADir = "n1", t.TempDir(), caDir
	cfg.RaftAddr, cfg.APIAddr, cfg.SyncAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	cfg.RaftNoSync, cfg.RaftLogLevel, cfg.Bootstrap = true, "warn", true
	stageSecret(t, cfg.DataDir)
	c := startIsoCore(t, cfg)
	if _, err := c.node.WaitForLeader(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, c.node)
	e := startIsoEdge(t, "popA", caDir, []string{c.sync}, map[string]string{c.sync: c.id})
	client := &http.Client{Timeout: 5 * time.Second, Transport: testauth.Transport{Base: &http.Transport{Proxy: nil}, Token: func(*http.Request) string { return testSecret }}}
	t.Cleanup(client.CloseIdleConnections)
	isoWait(t, "the edge linked to the core and holding its tokens", 30*time.Second, func() bool {
		code, _ := nbiGet(t, client, e.api, "{}", "")
		return e.linkedTo(c) && code == 200
	})

	fleet := isoFleet(t, e.acs, 1, 91, 0)
	dev := fleet.Device(0)
	isoStartFleet(t, fleet)
	q := `{"_id": "` + dev.ID() + `"}`

	// The core has the device once the edge's delta is applied; it has
	// everything the edge knows of it once their leaves agree.
	var edgeDoc, coreDoc map[string]any
	leaves := func(doc map[string]any) []string {
		shape := map[string]string{}
		nbiShape("", doc, shape)
		var out []string
		for p := range shape {
			if strings.HasSuffix(p, "._value") {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	isoWait(t, "the device's parameters at both", 30*time.Second, func() bool {
		ec, ed := nbiGet(t, client, e.api, q, "")
		cc, cd := nbiGet(t, client, c.node.APIAddr(), q, "")
		if ec != 200 || cc != 200 || len(ed) != 1 || len(cd) != 1 {
			return false
		}
		edgeDoc, coreDoc = ed[0], cd[0]
		return len(leaves(coreDoc)) > 0 && slices.Equal(leaves(edgeDoc), leaves(coreDoc))
	})
	compare := func(what string, edgeDoc, coreDoc map[string]any, must ...string) {
		t.Helper()
		es, cs := map[string]string{}, map[string]string{}
		nbiShape("", edgeDoc, es)
		nbiShape("", coreDoc, cs)
		for p, typ := range cs {
			if es[p] != typ {
				t.Errorf("%s: %s is %s at the core, %q at the edge", what, p, typ, es[p])
			}
		}
		var edgeOnly []string
		for p := range es {
			if _, ok := cs[p]; !ok {
				if !nbiEdgeOnly(p, es) {
					t.Errorf("%s: %s only at the edge", what, p)
				}
				edgeOnly = append(edgeOnly, p)
			}
		}
		slices.Sort(edgeOnly)
		t.Logf("%s: %d keys at the core, %d more at the edge (writable flags, boot times, object nodes, names never read)", what, len(cs), len(edgeOnly))
		for _, k := range must {
			if cs[k] != "string" {
				t.Errorf("%s: %s is %q at the core", what, k, cs[k])
			}
		}
	}
	compare("whole document", edgeDoc, coreDoc,
		"_id", "_deviceId._OUI", "_deviceId._SerialNumber", "_deviceId._ProductClass", "_deviceId._Manufacturer", "_lastInform", "_registered")

	// Tasks through the edge's GenieACS path fill in what an inform does
	// not carry: object nodes and writable flags (refreshObject), and
	// names whose values were never read (getParameterNames). The core
	// learns the values; the shapes still agree.
	isoWait(t, "the device's connection-request credentials set by the edge", 30*time.Second, func() bool {
		d, err := e.node.Cache().Device(dev.ID())
		return err == nil && d.CRPassword != ""
	})
	root := strings.TrimSuffix(dev.Root(), ".")
	// The first through the core (which sends it to the edge, which wakes
	// the device), the second through the edge: 200 from both, as
	// GenieACS answers a task it saw run.
	for _, tc := range []struct{ api, task string }{
		{c.node.APIAddr(), `{"name": "refreshObject", "objectName": "` + root + `.DeviceInfo."}`},
		{e.api, `{"name": "getParameterNames", "parameterPath": "` + root + `.ManagementServer.", "nextLevel": false}`},
	} {
		resp, err := client.Post("http://"+tc.api+"/devices/"+url.PathEscape(dev.ID())+"/tasks?connection_request&timeout=4000", "application/json", strings.NewReader(tc.task))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"done"`) {
			t.Fatalf("task %s at %s: %d %s", tc.task, tc.api, resp.StatusCode, b)
		}
	}
	isoWait(t, "the refreshed parameters at both", 30*time.Second, func() bool {
		ec, ed := nbiGet(t, client, e.api, q, "")
		cc, cd := nbiGet(t, client, c.node.APIAddr(), q, "")
		if ec != 200 || cc != 200 || len(ed) != 1 || len(cd) != 1 {
			return false
		}
		// The default bootstrap preset refreshed the whole tree in the
		// device's first session: the tasks may add nothing new.
		before := len(leaves(coreDoc))
		edgeDoc, coreDoc = ed[0], cd[0]
		return len(leaves(coreDoc)) >= before && slices.Equal(leaves(edgeDoc), leaves(coreDoc))
	})
	compare("after refreshObject and getParameterNames", edgeDoc, coreDoc)

	// A projection selects the same at both.
	proj := "_lastInform,_deviceId._OUI," + root + ".DeviceInfo," + root + ".ManagementServer.ConnectionRequestURL._value"
	_, ed := nbiGet(t, client, e.api, q, proj)
	_, cd := nbiGet(t, client, c.node.APIAddr(), q, proj)
	if len(ed) != 1 || len(cd) != 1 {
		t.Fatalf("projected: %d documents at the edge, %d at the core", len(ed), len(cd))
	}
	compare("projected", ed[0], cd[0], "_id", "_deviceId._OUI", "_lastInform")
	if ps := leaves(cd[0]); !slices.Contains(ps, root+".ManagementServer.ConnectionRequestURL._value") || len(ps) < 2 {
		t.Errorf("projected leaves at the core: %q", ps)
	}

	// A parameter-value query finds the device at both.
	var sv string
	if info, _ := coreDoc[root].(map[string]any)["DeviceInfo"].(map[string]any); info != nil {
		if n, _ := info["SoftwareVersion"].(map[string]any); n != nil {
			sv, _ = n["_value"].(string)
		}
	}
	if sv == "" {
		t.Fatalf("no %s.DeviceInfo.SoftwareVersion at the core: %v", root, coreDoc)
	}
	byValue := `{"` + root + `.DeviceInfo.SoftwareVersion": "` + sv + `"}`
	for name, api := range map[string]string{"edge": e.api, "core": c.node.APIAddr()} {
		if code, docs := nbiGet(t, client, api, byValue, "_id"); code != 200 || len(docs) != 1 || docs[0]["_id"] != dev.ID() {
			t.Errorf("%s: query by value: %d %v", name, code, docs)
		}
	}
}

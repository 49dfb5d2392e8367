package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI answers the device and task routes the way the core does, from
// a fixed list of devices and one task that becomes final on its third
// read; it records each request's method, path and query.
type fakeAPI struct {
	mu    sync.Mutex
	reqs  []string
	bodys []string
	hdrs  []http.Header
	reads int
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	f.bodys = append(f.bodys, string(body))
	f.hdrs = append(f.hdrs, r.Header.Clone())
	f.mu.Unlock()
	q := r.URL.Query()
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v1/devices":
		if q.Get("filter") == "bad" {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"bad request: filter: line 1, column 4: unexpected end","field":"filter","line":1,"column":4}`))
			return
		}
		ids := []string{"a", "b", "c"}
		start := 0
		if c := q.Get("cursor"); c != "" {
			start = strings.Index("abc", c) + 1
		}
		end := min(start+2, len(ids))
		if end < len(ids) {
			w.Header().Set("X-Next-Cursor", ids[end-1])
		}
		var out []map[string]string
		for _, id := range ids[start:end] {
			out = append(out, map[string]string{"_id": id})
		}
		json.NewEncoder(w).Encode(out)
	case r.Method == "POST" && r.URL.Path == "/api/v1/devices/d%2F1/tasks", r.Method == "POST" && r.URL.Path == "/api/v1/devices/d/1/tasks":
		w.WriteHeader(202)
		w.Write([]byte(`{"_id":"t1","device":"d/1","name":"reboot","status":"pending","timestamp":"2026-01-02T03:04:05Z"}`))
	case r.Method == "POST" && r.URL.Path == "/api/v1/tasks":
		w.WriteHeader(202)
		w.Write([]byte(`{"count":2,"ids":["t1","t2"]}`))
	case r.Method == "GET" && r.URL.Path == "/api/v1/tasks/t2":
		// Never final: the wait runs out, as the core's does.
		if d, err := time.ParseDuration(q.Get("wait")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(202)
		w.Write([]byte(`{"_id":"t2","device":"d/1","name":"reboot","status":"pending","timestamp":"2026-01-02T03:04:05Z"}`))
	case r.Method == "GET" && r.URL.Path == "/api/v1/tasks/t1":
		f.mu.Lock()
		f.reads++
		n := f.reads
		f.mu.Unlock()
		status := "pending"
		if n >= 3 {
			status = "fault"
		}
		w.Write([]byte(`{"_id":"t1","device":"d/1","name":"reboot","status":"` + status + `","timestamp":"2026-01-02T03:04:05Z","fault":{"code":"9002","message":"Internal error"}}`))
	default:
		w.WriteHeader(404)
		w.Write([]byte(`{"error":"no route"}`))
	}
}

func newFake(t *testing.T) (*fakeAPI, *Client) {
	t.Helper()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, Options{Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestAllDevicesPagesAndFilters(t *testing.T) {
	f, c := newFake(t)
	var got []string
	for d, err := range c.AllDevices(context.Background(), DeviceQuery{DeviceFilter: DeviceFilter{Expr: "A = 1", Tag: "x"}, Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.ID)
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("devices %v", got)
	}
	want := []string{"GET /api/v1/devices?filter=A+%3D+1&limit=2&tag=x", "GET /api/v1/devices?cursor=b&filter=A+%3D+1&limit=2&tag=x"}
	if strings.Join(f.reqs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant\n%s", strings.Join(f.reqs, "\n"), strings.Join(want, "\n"))
	}
	_, _, err := c.Devices(context.Background(), DeviceQuery{DeviceFilter: DeviceFilter{Expr: "bad"}})
	var ae *APIError
	if !errors.Is(err, ErrBadRequest) || !errors.As(err, &ae) || !strings.Contains(ae.Message, "line 1, column 4") {
		t.Fatalf("bad filter: %v", err)
	}
}

func TestCreateAndAwaitTask(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	tk, err := c.CreateTask(ctx, "d/1", TaskRequest{Name: "reboot"}, CreateOptions{Wake: true, Wait: 1500 * time.Millisecond, IdempotencyKey: "k1"})
	if err != nil || tk.ID != "t1" || tk.Status != "pending" {
		t.Fatalf("create: %+v %v", tk, err)
	}
	if f.reqs[0] != "POST /api/v1/devices/d/1/tasks?connection_request=true&wait=1.5s" || f.bodys[0] != `{"name":"reboot"}` ||
		f.hdrs[0].Get("Idempotency-Key") != "k1" || f.hdrs[0].Get("Content-Type") != "application/json" {
		t.Fatalf("create sent %s %s %v", f.reqs[0], f.bodys[0], f.hdrs[0])
	}
	done, err := c.AwaitTask(ctx, "t1")
	if err != nil || done.Status != "fault" || done.Fault == nil || done.Fault.Code != "9002" {
		t.Fatalf("await: %+v %v", done, err)
	}
	if n := len(f.reqs); n != 4 || !strings.HasPrefix(f.reqs[1], "GET /api/v1/tasks/t1?wait=") {
		t.Fatalf("await polled %v", f.reqs[1:])
	}
	// At the deadline, what was last seen, with the deadline's error.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if last, err := c.AwaitTask(short, "t2"); !errors.Is(err, context.DeadlineExceeded) || last.ID != "t2" || last.Status != "pending" {
		t.Fatalf("await past the deadline: %+v %v", last, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("await gave up after %v of a 300ms deadline", d)
	}

	ft, err := c.CreateFilterTasks(ctx, DeviceFilter{Expr: "Tags.x IS NOT NULL"}, TaskRequest{Name: "setParameterValues",
		ParameterValues: []ParameterValue{{Name: "A.B", Value: "1", Type: "xsd:int"}}}, false)
	if err != nil || ft.Count != 2 || len(ft.IDs) != 2 {
		t.Fatalf("filter tasks: %+v %v", ft, err)
	}
	last := len(f.reqs) - 1
	if f.reqs[last] != "POST /api/v1/tasks?" || f.bodys[last] != `{"filter":{"expr":"Tags.x IS NOT NULL"},"task":{"name":"setParameterValues","parameterValues":[["A.B","1","xsd:int"]]}}` {
		t.Fatalf("filter tasks sent %s %s", f.reqs[last], f.bodys[last])
	}
}

package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTypesMatchOpenAPI: each client type has exactly the JSON keys of
// the core's openapi.json schema it mirrors.
func TestTypesMatchOpenAPI(t *testing.T) {
	raw, err := os.ReadFile("../core/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for schema, v := range map[string]any{
		"FileMeta": FileMeta{}, "Preset": Preset{}, "Provision": Provision{}, "EdgeView": Edge{},
		"EdgeHealth": EdgeHealth{}, "ClusterStatus": ClusterStatus{}, "ClusterServer": ClusterServer{},
		"JoinRequest": JoinRequest{}, "Status": ClusterChange{}, "Token": TokenInfo{}, "TokenCreated": NewToken{},
	} {
		s, ok := doc.Components.Schemas[schema]
		if !ok {
			t.Errorf("core/openapi.json has no schema %s", schema)
			continue
		}
		var want []string
		for k := range s.Properties {
			want = append(want, k)
		}
		slices.Sort(want)
		var got []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			got = append(got, name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%T has keys %v; schema %s has %v", v, got, schema, want)
		}
	}
}

// TestUploadFile: the content streams with its length and the file's
// attributes as headers, progress reaches the size, and Options.Timeout
// does not cut a transfer that takes longer than it.
func TestUploadFile(t *testing.T) {
	var got struct {
		path, fileType, version, oui string
		length                       int64
		body                         string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.path, got.fileType, got.version, got.oui = r.URL.EscapedPath(), r.Header.Get("fileType"), r.Header.Get("version"), r.Header.Get("oui")
		got.length, got.body = r.ContentLength, string(b)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(FileMeta{Name: "fw 1.bin", FileType: got.fileType, Size: int64(len(b))})
	}))
	defer srv.Close()
	c, err := New(srv.URL, Options{Timeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var last atomic.Int64
	content := strings.Repeat("x", 4000)
	body := &slowReader{r: strings.NewReader(content), chunk: 1000, pause: 100 * time.Millisecond}
	m, err := c.UploadFile(context.Background(), body, FileUpload{Name: "fw 1.bin", FileType: "1 Firmware Upgrade Image", Version: "2.0",
		Size: int64(len(content)), Progress: func(n int64) { last.Store(n) }})
	if err != nil {
		t.Fatalf("upload slower than the request timeout: %v", err)
	}
	if got.path != "/api/v1/files/fw%201.bin" || got.fileType != "1 Firmware Upgrade Image" || got.version != "2.0" || got.oui != "" ||
		got.length != 4000 || got.body != content || m.Size != 4000 {
		t.Fatalf("server saw %+v; answer %+v", got, m)
	}
	if last.Load() != 4000 {
		t.Fatalf("progress ended at %d, want 4000", last.Load())
	}
	if _, err := c.UploadFile(context.Background(), strings.NewReader(""), FileUpload{Name: "x"}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("upload without a file type: %v", err)
	}
}

// TestUploadAnswerTimeout: once the body is sent, the answer must come
// within Options.Timeout.
func TestUploadAnswerTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-release
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(srv.URL, Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadFile(context.Background(), strings.NewReader("abc"), FileUpload{Name: "a", FileType: "t", Size: 3})
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a silent server: %v", err)
	}
}

// slowReader hands out chunk bytes per read, pausing between reads.
type slowReader struct {
	r     io.Reader
	chunk int
	pause time.Duration
}

func (s *slowReader) Read(b []byte) (int, error) {
	time.Sleep(s.pause)
	return s.r.Read(b[:min(len(b), s.chunk)])
}

// TestResourceRequests: each method sends its method, path and body and
// decodes the answer; an error answer keeps the position the API gave.
func TestResourceRequests(t *testing.T) {
	type seen struct{ method, path, ctype, body string }
	var reqs []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs = append(reqs, seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), string(b)})
		switch {
		case r.URL.Path == "/api/v1/presets/bad":
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"precondition: line 2, column 7: unexpected end","field":"precondition","line":2,"column":7}`))
		case r.Method == http.MethodDelete:
			w.WriteHeader(204)
		case strings.HasSuffix(r.URL.Path, "/presets"), strings.HasSuffix(r.URL.Path, "/provisions"), strings.HasSuffix(r.URL.Path, "/files"):
			w.Write([]byte(`[]`))
		case r.URL.Path == "/api/v1/cluster":
			w.Write([]byte(`{"leader":"n1","servers":[{"id":"n1","address":"a:1","suffrage":"voter","state":"leader"},{"id":"n2","address":"b:1","suffrage":"voter","state":"unreachable","problem":"refused"}]}`))
		case r.URL.Path == "/api/v1/edges":
			w.Write([]byte(`[{"id":"e1","status":"online","connected":true,"lastSeen":"2026-01-01T00:00:00Z","healthUpdated":"2026-01-01T00:00:05Z","health":{"devices":3,"outboxLen":2,"oldestUnsentNs":1500000000}}]`))
		default:
			w.Write([]byte(`{}`))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.PutPreset(ctx, Preset{Name: "bad", Precondition: "a ="})
	var ae *APIError
	if !errors.As(err, &ae) || !errors.Is(err, ErrBadRequest) || ae.Line != 2 || ae.Column != 7 || ae.Field != "precondition" {
		t.Fatalf("bad preset: %v %+v", err, ae)
	}
	if _, err := c.PutPreset(ctx, Preset{}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("preset without a name: %v", err)
	}
	if _, err := c.PutProvision(ctx, "a/b", "log('x');"); err != nil {
		t.Fatal(err)
	}
	st, err := c.Cluster(ctx)
	if err != nil || len(st.Servers) != 2 || st.Servers[1].State != StateUnreachable || st.Servers[1].Problem != "refused" {
		t.Fatalf("cluster: %v %+v", err, st)
	}
	es, err := c.Edges(ctx)
	if err != nil || len(es) != 1 || es[0].Health.Devices != 3 || es[0].Health.OldestUnsent != 1500*time.Millisecond ||
		!es[0].Heard().Equal(time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)) {
		t.Fatalf("edges: %v %+v", err, es)
	}
	calls := []func() error{
		func() error { _, err := c.Files(ctx); return err },
		func() error { return c.DeleteFile(ctx, "fw.bin") },
		func() error { _, err := c.Presets(ctx); return err },
		func() error { return c.DeletePreset(ctx, "p") },
		func() error { _, err := c.Provisions(ctx); return err },
		func() error { return c.DeleteProvision(ctx, "p") },
		func() error { _, err := c.JoinCluster(ctx, JoinRequest{ID: "n3", RaftAddr: "c:1"}); return err },
		func() error { _, err := c.RemoveFromCluster(ctx, "n3"); return err },
		func() error { _, err := c.RevokeEdge(ctx, "e1"); return err },
	}
	for _, f := range calls {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	want := []seen{
		{"PUT", "/api/v1/presets/bad", "application/json", `{"_id":"bad","weight":0,"channel":"","precondition":"a =","provisions":null}`},
		{"PUT", "/api/v1/provisions/a%2Fb", "application/javascript", "log('x');"},
		{"GET", "/api/v1/cluster", "", ""},
		{"GET", "/api/v1/edges", "", ""},
		{"GET", "/api/v1/files", "", ""},
		{"DELETE", "/api/v1/files/fw.bin", "", ""},
		{"GET", "/api/v1/presets", "", ""},
		{"DELETE", "/api/v1/presets/p", "", ""},
		{"GET", "/api/v1/provisions", "", ""},
		{"DELETE", "/api/v1/provisions/p", "", ""},
		{"POST", "/api/v1/cluster/join", "application/json", `{"id":"n3","raftAddr":"c:1"}`},
		{"POST", "/api/v1/cluster/remove", "application/json", `{"id":"n3"}`},
		{"POST", "/api/v1/edges/e1/revoke", "", ""},
	}
	if !slices.Equal(reqs, want) {
		t.Fatalf("requests:\n%v\nwant\n%v", reqs, want)
	}
}

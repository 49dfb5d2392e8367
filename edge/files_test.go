package edge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/edgeacs/edgeacs/fleet"
)

// patternReader yields n deterministic bytes without holding them.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) * 31 >> 3)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func TestFileUploadStreams(t *testing.T) {
	e := newAPIEnv(t)
	const size = 50 << 20
	h := sha256.New()
	io.Copy(h, &patternReader{n: size})
	want := hex.EncodeToString(h.Sum(nil))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// Content-Length unknown: the body arrives chunked and must be streamed.
	resp, body := e.do(t, "PUT", "/api/v1/files/fw-2.0.bin?version=2.0", io.MultiReader(&patternReader{n: size}),
		"fileType", "1 Firmware Upgrade Image", "oui", "001122", "productClass", "IGD")
	runtime.ReadMemStats(&after)
	if resp.StatusCode != 201 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	var meta fleet.FileMeta
	if err := json.Unmarshal(body, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.SHA256 != want || meta.Size != size || meta.Version != "2.0" || meta.OUI != "001122" || meta.FileType != "1 Firmware Upgrade Image" {
		t.Errorf("meta = %+v", meta)
	}
	// Client and server together allocate far less than the file: nothing
	// buffers it whole.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/2 {
		t.Errorf("upload of %d bytes allocated %d bytes", size, alloc)
	}
	f, m, err := e.fs.Open("fw-2.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	n, _ := io.Copy(h, f)
	f.Close()
	if n != size || hex.EncodeToString(h.Sum(nil)) != want || m.SHA256 != want {
		t.Errorf("stored content: %d bytes, sha %x", n, h.Sum(nil))
	}
	if _, err := os.Stat(filepath.Join(e.fs.dir, "blobs", want)); err != nil {
		t.Errorf("blob not content-addressed: %v", err)
	}
	resp, body = e.do(t, "GET", "/api/v1/files", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
		t.Errorf("list: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/api/v1/files/fw-2.0.bin", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"version":"2.0"`) {
		t.Errorf("get meta: %d %s", resp.StatusCode, body)
	}
}

func TestFileStoreReplaceDeleteLimit(t *testing.T) {
	e := newAPIEnv(t)
	e.fs.MaxSize = 1 << 20
	put := func(name, content string) fleet.FileMeta {
		t.Helper()
		resp, body := e.do(t, "PUT", "/files/"+name, strings.NewReader(content), "fileType", "3 Vendor Configuration File")
		if resp.StatusCode != 201 {
			t.Fatalf("PUT %s: %d %s", name, resp.StatusCode, body)
		}
		var m fleet.FileMeta
		json.Unmarshal(body, &m)
		return m
	}
	a := put("a.cfg", "one")
	b := put("b.cfg", "one") // same content, shared blob
	if a.SHA256 != b.SHA256 {
		t.Fatal("same content, different blobs")
	}
	a2 := put("a.cfg", "two") // replace; the shared blob stays for b
	blobs := func() int {
		es, _ := os.ReadDir(filepath.Join(e.fs.dir, "blobs"))
		return len(es)
	}
	if blobs() != 2 {
		t.Errorf("blobs after replace = %d, want 2", blobs())
	}
	if resp, _ := e.do(t, "DELETE", "/api/v1/files/b.cfg", nil); resp.StatusCode != 204 {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	if blobs() != 1 {
		t.Errorf("blobs after delete = %d, want 1 (%s)", blobs(), a2.SHA256)
	}
	before := e.state(t)
	// Over the limit, with and without a Content-Length.
	for _, r := range []io.Reader{strings.NewReader(strings.Repeat("x", 2<<20)), io.MultiReader(&patternReader{n: 2 << 20})} {
		resp, body := e.do(t, "PUT", "/api/v1/files/big.bin", r)
		if resp.StatusCode != 413 || !strings.Contains(string(body), "error") {
			t.Errorf("oversized: %d %s", resp.StatusCode, body)
		}
	}
	// blobs() counts every entry of the blob directory, where uploads are
	// staged too: a temp file left behind would show here.
	if after := e.state(t); after != before || blobs() != 1 {
		t.Errorf("oversized upload changed state: %s → %s, blobs dir entries %d", before, after, blobs())
	}
	if _, _, err := e.fs.Open("big.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(refused file) = %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a\\b", "x\ny", strings.Repeat("n", 256)} {
		if _, err := e.fs.Put(bad, fleet.FileMeta{}, strings.NewReader("x")); !errors.Is(err, ErrBadFileName) {
			t.Errorf("Put(%q) = %v", bad, err)
		}
	}
}

package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/edgeacs/edgeacs/cwmp"
)

// The children of `sim --processes` are this binary run again; in a test
// that is the test binary, which becomes the CLI when asked to.
func init() {
	if os.Getenv("EDGEACS_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
}

func TestSimProcesses(t *testing.T) {
	var mu sync.Mutex
	serials := map[string]int{}
	plain := plainResponder()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if env, err := cwmp.Decode(body); err == nil {
			if in, ok := env.Body.(*cwmp.Inform); ok {
				mu.Lock()
				serials[in.DeviceId.SerialNumber]++
				mu.Unlock()
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		plain.ServeHTTP(w, r)
	}))
	defer srv.Close()
	t.Setenv("EDGEACS_TEST_RUN_MAIN", "1")
	app := newApp()
	var out, errw bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errw
	err := app.Run([]string{"edgeacs", "sim", "--acs", srv.URL, "--count", "21", "--processes", "3", "--offset", "100",
		"--model", "mixed", "--ramp", "100ms", "--inform-interval", "300ms", "--duration", "2s", "--stats"})
	if err != nil {
		t.Fatalf("sim --processes: %v\n%s", err, errw.String())
	}
	s := out.String()
	// Not "failed 0": the run ends by the clock, and on a loaded box a
	// child can be stopped by the parent's deadline mid-session; what is
	// checked here is the split and the merge.
	for _, want := range []string{"devices:             21", "0 BOOTSTRAP=21", "2 PERIODIC="} {
		if !strings.Contains(s, want) {
			t.Errorf("merged summary lacks %q:\n%s\nstderr:\n%s", want, s, errw.String())
		}
	}
	if !strings.Contains(errw.String(), "in 3 processes") || !strings.Contains(errw.String(), "sessions ") {
		t.Errorf("no banner or live line on stderr:\n%s", errw.String())
	}
	mu.Lock()
	defer mu.Unlock()
	// 21 distinct devices, indexes 100-120: the children's ranges are
	// disjoint and start at --offset.
	if len(serials) != 21 {
		t.Fatalf("%d distinct serial numbers informed, want 21: %v", len(serials), serials)
	}
	for serial := range serials {
		// Serial numbers end in the device index, 8 digits.
		if len(serial) < 8 {
			t.Fatalf("serial %q", serial)
		}
		if idx, err := strconv.Atoi(serial[len(serial)-8:]); err != nil || idx < 100 || idx > 120 {
			t.Errorf("serial %s is not in the range 100-120", serial)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/sim"
	"github.com/urfave/cli/v2"
)

// plainResponder answers Inform with InformResponse and ends every session
// at the empty POST: the plainest ACS there is.
func plainResponder() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || len(bytes.TrimSpace(body)) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		env, err := cwmp.Decode(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, ok := env.Body.(*cwmp.Inform); !ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		out, err := cwmp.Encode(&cwmp.Envelope{Namespace: env.Namespace, ID: env.ID, HasID: true, Body: &cwmp.InformResponse{MaxEnvelopes: 1}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write(out)
	})
}

func TestRunSimSummary(t *testing.T) {
	srv := httptest.NewServer(plainResponder())
	defer srv.Close()
	var out, errw bytes.Buffer
	cfg := sim.Config{ACSURL: srv.URL, Count: 20, Model: sim.ModelMixed, Ramp: 100 * time.Millisecond, InformInterval: 200 * time.Millisecond}
	if err := runSim(context.Background(), cfg, 1500*time.Millisecond, true, &out, &errw); err != nil {
		t.Fatalf("runSim: %v", err)
	}
	s := out.String()
	for _, want := range []string{"devices:             20", "0 BOOTSTRAP=20", "2 PERIODIC=", "session time:        p50 "} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if !strings.Contains(errw.String(), "sessions ") {
		t.Errorf("no live line on stderr:\n%s", errw.String())
	}
}

func TestSimBadFlags(t *testing.T) {
	oldExit := cli.OsExiter
	defer func() { cli.OsExiter = oldExit }()
	tests := [][]string{
		{},
		{"--acs", "http://127.0.0.1:1/", "--count", "abc"},
		{"--acs", "http://127.0.0.1:1/", "--count", "0"},
		{"--acs", "http://127.0.0.1:1/", "--model", "tr069"},
		{"--acs", "ftp://127.0.0.1:1/"},
		{"--acs", "http://127.0.0.1:1/", "--duration", "-1s"},
		{"--acs", "http://127.0.0.1:1/", "--username", "u"},
		{"--acs", "http://127.0.0.1:1/", "--time-scale", "0"},
		{"--acs", "http://127.0.0.1:1/", "--no-such-flag"},
		{"--acs", "http://127.0.0.1:1/", "extra"},
		{"--acs", "http://127.0.0.1:1/", "--processes", "0"},
		{"--acs", "http://127.0.0.1:1/", "--count", "2", "--processes", "3"},
		{"--acs", "http://127.0.0.1:1/", "--offset", "-1"},
		{"--acs", "http://127.0.0.1:1/", "--count", "4", "--processes", "2", "--cr-addr", "127.0.0.1:x"},
	}
	for _, args := range tests {
		code := -1
		cli.OsExiter = func(c int) { code = c }
		app := newApp()
		var errw bytes.Buffer
		app.ErrWriter, app.Writer = &errw, io.Discard
		err := app.Run(append([]string{"edgeacs", "sim"}, args...))
		var ec cli.ExitCoder
		if code != 2 && !(errors.As(err, &ec) && ec.ExitCode() == 2) {
			t.Errorf("sim %v: exit code %d, err %v; want 2", args, code, err)
		}
	}
}

// TestSimResponderServe runs plainResponder on $EDGEACS_SIM_RESPONDER (e.g.
// 127.0.0.1:7548) for $EDGEACS_SIM_RESPONDER_FOR (default 60s), so that the
// binary can be tried by hand: edgeacs sim --acs http://127.0.0.1:7548/ …
func TestSimResponderServe(t *testing.T) {
	addr := os.Getenv("EDGEACS_SIM_RESPONDER")
	if addr == "" {
		t.Skip("set EDGEACS_SIM_RESPONDER=127.0.0.1:PORT to serve a plain CWMP responder")
	}
	d, err := time.ParseDuration(os.Getenv("EDGEACS_SIM_RESPONDER_FOR"))
	if err != nil {
		d = time.Minute
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: plainResponder(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		time.Sleep(d)
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
}

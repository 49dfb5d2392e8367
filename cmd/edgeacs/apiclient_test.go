package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/urfave/cli/v2"
)

// tokenRecorder is an API that records the bearer token of each request.
type tokenRecorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string
}

func newTokenRecorder(t *testing.T) *tokenRecorder {
	r := &tokenRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got = append(r.got, strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
		r.mu.Unlock()
		if req.Header.Get("Authorization") == "Bearer refused" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"unknown token"}`))
			return
		}
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// last is the token of the last request ("-" if none came).
func (r *tokenRecorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return "-"
	}
	return r.got[len(r.got)-1]
}

func (r *tokenRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// runProbe runs a command with the API client flags that makes one
// request through apiClient, and returns its exit code and error text.
func runProbe(t *testing.T, args ...string) (int, string) {
	t.Helper()
	oldExit, oldErr := cli.OsExiter, cli.ErrWriter
	defer func() { cli.OsExiter, cli.ErrWriter = oldExit, oldErr }()
	cli.OsExiter, cli.ErrWriter = func(int) {}, io.Discard
	app := &cli.App{Name: "edgeacs", Writer: io.Discard, ErrWriter: io.Discard, Commands: []*cli.Command{{
		Name: "probe", Flags: apiClientFlags(), OnUsageError: exitUsage,
		Action: func(c *cli.Context) error {
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			if err := cl.Do(c.Context, http.MethodGet, "/probe", nil, nil); err != nil {
				return apiFail(c, err)
			}
			return nil
		},
	}}}
	err := app.Run(append([]string{"edgeacs", "probe"}, args...))
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return 0, ""
	case errors.As(err, &ec):
		return ec.ExitCode(), err.Error()
	}
	return 1, err.Error()
}

func writeConfig(t *testing.T, path, body string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask may have narrowed it
		t.Fatal(err)
	}
	return path
}

// TestCLIConfigPrecedence: flags > environment > config file > defaults,
// for --api, --token and --api-ca; the default file is ./data/cli.yaml.
func TestCLIConfigPrecedence(t *testing.T) {
	fileAPI, flagAPI := newTokenRecorder(t), newTokenRecorder(t)
	dir := t.TempDir()
	t.Chdir(dir)
	for _, v := range []string{"EDGEACS_TOKEN", "EDGEACS_API", cliConfigEnv, "EDGEACS_TOKEN_FILE", "EDGEACS_API_CA"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	writeConfig(t, filepath.Join(dir, "data", "cli.yaml"), "api: "+fileAPI.srv.URL+"\ntoken: eacs_fromfile\n", 0o600)
	other := writeConfig(t, filepath.Join(dir, "elsewhere", "cli.yaml"), "api: "+flagAPI.srv.URL+"\ntoken: eacs_fromother\n", 0o600)
	tokenFile := writeConfig(t, filepath.Join(dir, "tok"), "eacs_fromtokenfile\n", 0o600)

	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantAPI   *tokenRecorder
		wantToken string
	}{
		{name: "default file", wantAPI: fileAPI, wantToken: "eacs_fromfile"},
		{name: "flag api wins", args: []string{"--api", flagAPI.srv.URL}, wantAPI: flagAPI, wantToken: "eacs_fromfile"},
		{name: "env api wins", env: map[string]string{"EDGEACS_API": flagAPI.srv.URL}, wantAPI: flagAPI, wantToken: "eacs_fromfile"},
		{name: "empty env api is not given", env: map[string]string{"EDGEACS_API": ""}, wantAPI: fileAPI, wantToken: "eacs_fromfile"},
		{name: "flag token wins", args: []string{"--token", "eacs_fromflag"}, wantAPI: fileAPI, wantToken: "eacs_fromflag"},
		{name: "env token wins", env: map[string]string{"EDGEACS_TOKEN": "eacs_fromenv"}, wantAPI: fileAPI, wantToken: "eacs_fromenv"},
		{name: "flag beats env", env: map[string]string{"EDGEACS_TOKEN": "eacs_fromenv"}, args: []string{"--token", "eacs_fromflag"}, wantAPI: fileAPI, wantToken: "eacs_fromflag"},
		{name: "token file wins", args: []string{"--token-file", tokenFile}, wantAPI: fileAPI, wantToken: "eacs_fromtokenfile"},
		{name: "explicit config", args: []string{"--config", other}, wantAPI: flagAPI, wantToken: "eacs_fromother"},
		{name: "config from env", env: map[string]string{cliConfigEnv: other}, wantAPI: flagAPI, wantToken: "eacs_fromother"},
		{name: "config flag beats env", env: map[string]string{cliConfigEnv: "/nonexistent/cli.yaml"}, args: []string{"--config", other}, wantAPI: flagAPI, wantToken: "eacs_fromother"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			before := tt.wantAPI.count()
			code, msg := runProbe(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			if n, got := tt.wantAPI.count(), tt.wantAPI.last(); n != before+1 || got != tt.wantToken {
				t.Fatalf("the API meant got %d requests, the last with token %q; want 1 with %q", n-before, got, tt.wantToken)
			}
		})
	}
	// Each API was reached by the cases meant for it, and only those.
	if nFile, nFlag := fileAPI.count(), flagAPI.count(); nFile != 6 || nFlag != 5 {
		t.Fatalf("requests: %d to the file's API (want 6), %d to the other (want 5)", nFile, nFlag)
	}
}

// TestCLIConfigErrors: a config file that is missing (when named), too
// open, or not a CLI config is a usage error (exit 2) with one line naming
// the file; a missing default file is no error.
func TestCLIConfigErrors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, v := range []string{"EDGEACS_TOKEN", "EDGEACS_API", cliConfigEnv} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	api := newTokenRecorder(t)
	good := "api: " + api.srv.URL + "\ntoken: eacs_x\n"
	tests := []struct {
		name string
		body string // "" with mode 0: no file
		mode os.FileMode
		// dflt puts the file at ./data/cli.yaml and names none.
		dflt bool
		want []string // in the message
	}{
		{name: "named file missing", want: []string{"cli.yaml", "no such file"}},
		{name: "readable by others", body: good, mode: 0o644, want: []string{"cli.yaml", "mode 0644", "chmod 600"}},
		{name: "default file readable by others", body: good, mode: 0o644, dflt: true, want: []string{"data/cli.yaml", "mode 0644"}},
		{name: "writable by group", body: good, mode: 0o620, want: []string{"cli.yaml", "mode 0620"}},
		{name: "unknown key", body: good + "tokn: eacs_typo\n", mode: 0o600, want: []string{"cli.yaml", "unknown field", "tokn"}},
		{name: "default file with unknown key", body: good + "tokn: eacs_typo\n", mode: 0o600, dflt: true, want: []string{"data/cli.yaml", "unknown field"}},
		{name: "not a map", body: "- api\n- token\n", mode: 0o600, want: []string{"cli.yaml", "a CLI config has api, token and api-ca"}},
		{name: "core config", body: "id: n1\nraftAddr: 127.0.0.1:7000\n", mode: 0o600, want: []string{"cli.yaml", "unknown field \"id\""}},
		{name: "not YAML", body: "api: [unclosed\n", mode: 0o600, want: []string{"cli.yaml", "a CLI config has"}},
		{name: "api-ca relative to the file", body: good + "api-ca: ca.pem\n", mode: 0o600, want: []string{filepath.Join("conf", "ca.pem")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "conf", "cli.yaml")
			args := []string{"--config", path}
			if tt.dflt {
				path, args = filepath.Join(dir, "data", "cli.yaml"), nil
			}
			t.Cleanup(func() { os.Remove(path) })
			if tt.mode != 0 {
				writeConfig(t, path, tt.body, tt.mode)
			}
			code, msg := runProbe(t, args...)
			if code != 2 || strings.Contains(msg, "\n") {
				t.Fatalf("exit %d, want 2 with one line: %q", code, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
		})
	}
	if got := api.last(); got != "-" {
		t.Fatalf("a refused config reached the API (token %q)", got)
	}

	// No ./data/cli.yaml: the defaults stand (an unreachable default API is
	// a failure, exit 1, not a config error).
	os.RemoveAll(filepath.Join(dir, "data"))
	if code, msg := runProbe(t, "--api", "127.0.0.1:1"); code != 1 || strings.Contains(msg, "config") {
		t.Fatalf("without a config file: exit %d %q, want 1 from the unreachable API", code, msg)
	}
	// With no --api and no config file, an unreachable API says where the
	// config file was looked for.
	if code, msg := runProbe(t); code == 1 && !strings.Contains(msg, "no --api, and no data/cli.yaml here") {
		t.Errorf("unreachable default API without a config: %q, want the hint", msg)
	} else if code != 1 {
		t.Logf("something answers at %s (exit %d): hint not checked", defaultCoreAPIURL, code)
	}
	// An empty file is a config with nothing in it.
	writeConfig(t, filepath.Join(dir, "data", "cli.yaml"), "", 0o600)
	if code, msg := runProbe(t, "--api", api.srv.URL, "--token", "eacs_y"); code != 0 || api.last() != "eacs_y" {
		t.Fatalf("empty config: exit %d %q, token %q", code, msg, api.last())
	}
	// A token from the file that the API refuses says where it came from.
	writeConfig(t, filepath.Join(dir, "data", "cli.yaml"), "api: "+api.srv.URL+"\ntoken: refused\n", 0o600)
	if code, msg := runProbe(t); code != 1 || !strings.Contains(msg, "it came from "+filepath.Join("data", "cli.yaml")) {
		t.Fatalf("refused config token: exit %d %q", code, msg)
	}
}

package main

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/edge"
)

// loadVia parses args as `edgeacs edge ...` and returns the loaded config.
func loadVia(t *testing.T, args ...string) (edge.Config, error) {
	t.Helper()
	cmd := edgeCommand()
	var (
		got  edge.Config
		lerr error
	)
	cmd.Action = func(c *cli.Context) error { got, lerr = loadEdgeConfig(c); return nil }
	app := &cli.App{Name: "edgeacs", Commands: []*cli.Command{cmd}}
	if err := app.Run(append([]string{"edgeacs", "edge"}, args...)); err != nil {
		t.Fatalf("app.Run: %v", err)
	}
	return got, lerr
}

func TestEdgeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "edge.yaml")
	os.WriteFile(yml, []byte(`
id: from-yaml
data: /var/lib/yaml
cwmp_addr: 0.0.0.0:1111
api_addr: 127.0.0.1:2222
cpe_auth: digest
username: yaml-user
password: yaml-pass
session_timeout: 45s
standalone: true
`), 0o600)
	t.Setenv("EDGEACS_API_ADDR", "127.0.0.1:3333")
	t.Setenv("EDGEACS_USERNAME", "env-user")
	cfg, err := loadVia(t, "--config", yml, "--id", "from-flag", "--username", "flag-user")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"id (flag over yaml)":      {cfg.ID, "from-flag"},
		"data (yaml)":              {cfg.DataDir, "/var/lib/yaml"},
		"cwmp addr (yaml)":         {cfg.CWMPAddr, "0.0.0.0:1111"},
		"api addr (env over yaml)": {cfg.APIAddr, "127.0.0.1:3333"},
		"username (flag over env)": {cfg.Username, "flag-user"},
		"password (yaml)":          {cfg.Password, "yaml-pass"},
		"session timeout (yaml)":   {cfg.SessionTimeout.String(), (45 * time.Second).String()},
		"body limit (default)":     {itoa64(cfg.MaxBodyBytes), itoa64(4 << 20)},
	}
	for what, v := range want {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", what, v[0], v[1])
		}
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func TestEdgeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("id: x\nno_such_key: 1\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not standalone, no core", []string{"--id", "e", "--data", dir, "--cpe-auth", "none"}, "--core (the core nodes' sync addresses) is required"},
		{"not standalone, no CA", []string{"--id", "e", "--data", dir, "--cpe-auth", "none", "--core", "127.0.0.1:7443"}, "--ca-dir"},
		{"missing id", []string{"--data", dir, "--standalone", "--cpe-auth", "none"}, "edge id is required"},
		{"bad auth", []string{"--id", "e", "--data", dir, "--standalone", "--cpe-auth", "magic"}, "want none, basic or digest"},
		{"basic over http", []string{"--id", "e", "--data", dir, "--standalone", "--cpe-auth", "basic", "--username", "u", "--password", "p"}, "clear"},
		{"unknown yaml key", []string{"--config", badYAML}, "no_such_key"},
		{"missing yaml file", []string{"--config", filepath.Join(dir, "none.yaml")}, "read config"},
		{"bad memory limit", []string{"--id", "e", "--data", dir, "--standalone", "--cpe-auth", "none", "--memory-limit", "lots"}, "--memory-limit: edge: bad size"},
		{"memory limit below the budget", []string{"--id", "e", "--data", dir, "--standalone", "--cpe-auth", "none", "--memory-limit", "100MiB"}, "at least the budget plus 64MiB (--memory-limit)"},
		{"bad cache memory", []string{"--id", "e", "--data", dir, "--standalone", "--cpe-auth", "none", "--cache-memory", "1.5 lots"}, "--cache-memory: edge: bad size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadVia(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestExampleEdgeYAML keeps configs/edge.yaml loadable.
func TestExampleEdgeYAML(t *testing.T) {
	cfg, err := loadVia(t, "--config", "../../configs/edge.yaml", "--data", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "pop-paris-1" || cfg.SessionTimeout != 30*time.Second || cfg.STUNAddr != "0.0.0.0:3478" ||
		len(cfg.Core) != 3 || cfg.CADir != "/etc/edgeacs/ca" || cfg.Standalone || !cfg.FilesAuthOn() || cfg.AllowDigestWithoutQOP ||
		!cfg.HugePagesOn() {
		t.Fatalf("%+v", cfg)
	}
}

// TestEdgeSwitches: the edge's on-by-default switches stay on unless
// turned off, by YAML, flag or (where there is one) environment; the flag
// wins over YAML.
func TestEdgeSwitches(t *testing.T) {
	for _, sw := range []struct {
		yaml, flag, env string
		on              func(*edge.Config) bool
	}{
		{"files_auth", "files-auth", "", (*edge.Config).FilesAuthOn},
		{"huge_pages", "huge-pages", "EDGEACS_HUGE_PAGES", (*edge.Config).HugePagesOn},
	} {
		t.Run(sw.flag, func(t *testing.T) {
			dir := t.TempDir()
			off := filepath.Join(dir, "off.yaml")
			os.WriteFile(off, []byte(sw.yaml+": false\n"), 0o600)
			base := []string{"--id", "e", "--data", dir, "--standalone", "--cpe-auth", "none"}
			type swCase struct {
				args []string
				env  string
				want bool
			}
			cases := []swCase{
				{nil, "", true},
				{[]string{"--config", off}, "", false},
				{[]string{"--config", off, "--" + sw.flag}, "", true},
				{[]string{"--" + sw.flag + "=false"}, "", false},
			}
			if sw.env != "" {
				cases = append(cases, swCase{nil, "false", false})
			}
			for _, tt := range cases {
				if tt.env != "" {
					t.Setenv(sw.env, tt.env)
				}
				cfg, err := loadVia(t, append(append([]string{}, base...), tt.args...)...)
				if err != nil || sw.on(&cfg) != tt.want {
					t.Errorf("%v %q: %s %v, %v; want %v", tt.args, tt.env, sw.yaml, err == nil && sw.on(&cfg), err, tt.want)
				}
			}
		})
	}
}

// TestHeapReserve: the soft limit, capped, or 1 GiB without one.
func TestHeapReserve(t *testing.T) {
	for _, tt := range []struct {
		limit int64
		want  int
	}{
		{math.MaxInt64, 1 << 30},
		{0, 1 << 30},
		{1 << 30, 1 << 30},
		{3 << 29, 3 << 29},
		{64 << 30, 8 << 30},
	} {
		if got := heapReserve(tt.limit); got != tt.want {
			t.Errorf("heapReserve(%d) = %d; want %d", tt.limit, got, tt.want)
		}
	}
}

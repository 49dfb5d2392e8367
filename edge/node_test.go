package edge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		return Config{ID: "e1", DataDir: "/tmp/x", Username: "u", Password: "p", Standalone: true}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "edge id"},
		{"no data", func(c *Config) { c.DataDir = "" }, "data directory"},
		{"bad cwmp addr", func(c *Config) { c.CWMPAddr = "7547" }, "cwmp address"},
		{"bad stun addr", func(c *Config) { c.STUNAddr = "nope" }, "stun address"},
		{"cert without key", func(c *Config) { c.TLSCert = "c.pem" }, "--tls-cert and --tls-key"},
		{"unknown auth", func(c *Config) { c.CPEAuth = "kerberos" }, "want none, basic or digest"},
		{"basic over http", func(c *Config) { c.CPEAuth = AuthBasic }, "clear"},
		{"basic over http allowed", func(c *Config) { c.CPEAuth = AuthBasic; c.AllowBasicOverHTTP = true }, ""},
		{"basic over tls", func(c *Config) { c.CPEAuth = AuthBasic; c.TLSCert, c.TLSKey = "c", "k" }, ""},
		{"digest without credentials", func(c *Config) { c.Username = "" }, "needs --username"},
		{"none without credentials", func(c *Config) { c.CPEAuth = AuthNone; c.Username = "" }, ""},
		{"tiny body limit", func(c *Config) { c.MaxBodyBytes = 100 }, "max body"},
		{"tiny session timeout", func(c *Config) { c.SessionTimeout = time.Millisecond }, "session timeout"},
		{"not standalone", func(c *Config) { c.Standalone = false }, "core sync is not implemented yet; run with --standalone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			c.SetDefaults()
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.CPEAuth != AuthDigest || c.MaxBodyBytes != 4<<20 || c.SessionTimeout != 30*time.Second ||
		c.APIAddr != "127.0.0.1:7557" || c.CWMPAddr != "0.0.0.0:7547" || c.Realm != "edgeacs" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestNodeRunTwiceAndAddrs(t *testing.T) {
	e := startEdge(t, "", nil)
	a := e.node.Addrs()
	for _, s := range []string{a.CWMP, a.API, a.STUN} {
		if s == "" || strings.HasSuffix(s, ":0") {
			t.Fatalf("addrs %+v", a)
		}
	}
	if err := e.node.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestNodeBindFailure(t *testing.T) {
	e := startEdge(t, "", nil)
	n, err := New(Config{ID: "dup", DataDir: t.TempDir(), CWMPAddr: e.node.Addrs().CWMP, APIAddr: "127.0.0.1:0",
		CPEAuth: AuthNone, Standalone: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen for CWMP") {
		t.Fatalf("Run on a taken port: %v", err)
	}
}

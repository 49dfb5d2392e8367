package core

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdvertiseAPI(t *testing.T) {
	tests := []struct {
		bound, raft, want string
	}{
		{"127.0.0.1:8080", "10.0.0.1:7000", "127.0.0.1:8080"},
		{"0.0.0.0:8080", "10.0.0.1:7000", "10.0.0.1:8080"},
		{"[::]:8080", "[fd00::1]:7000", "[fd00::1]:8080"},
	}
	for _, tt := range tests {
		a, err := net.ResolveTCPAddr("tcp", tt.bound)
		if err != nil {
			t.Fatal(err)
		}
		if got := advertiseAPI(a, tt.raft); got != tt.want {
			t.Errorf("advertiseAPI(%s, %s) = %s, want %s", tt.bound, tt.raft, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{ID: "n1", DataDir: "/d", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"}.withDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := map[string]func(*Config){
		"no id":                func(c *Config) { c.ID = "" },
		"no data":              func(c *Config) { c.DataDir = "" },
		"no raft addr":         func(c *Config) { c.RaftAddr = "" },
		"bad api addr":         func(c *Config) { c.APIAddr = "localhost" },
		"bad sync addr":        func(c *Config) { c.SyncAddr = "x" },
		"bootstrap and expect": func(c *Config) { c.Bootstrap, c.BootstrapExpect, c.Join = true, 2, "127.0.0.1:3" },
		"expect without peers": func(c *Config) { c.BootstrapExpect, c.Join = 3, "127.0.0.1:3" },
		"negative expect":      func(c *Config) { c.BootstrapExpect = -1 },
		"lease over heartbeat": func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout },
		"join a URL":           func(c *Config) { c.Join = "http://127.0.0.1:3" },
		"join without port":    func(c *Config) { c.Join = "127.0.0.1:3,127.0.0.2" },
		"negative leader wait": func(c *Config) { c.LeaderWait = -1 },
		"tls cert without key": func(c *Config) { c.APITLSCert = "api.crt" },
		"plain http on all":    func(c *Config) { c.APIAddr = "0.0.0.0:2" },
		"plain http on lan":    func(c *Config) { c.APIAddr = "10.0.0.1:2" },
	}
	for name, mutate := range tests {
		c := ok
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
	for name, mutate := range map[string]func(*Config){
		"insecure by choice": func(c *Config) { c.APIAddr, c.APIInsecure = "0.0.0.0:2", true },
		"https":              func(c *Config) { c.APIAddr, c.APITLSCert, c.APITLSKey = "0.0.0.0:2", "api.crt", "api.key" },
		"localhost":          func(c *Config) { c.APIAddr = "localhost:2" },
		"join raft peers":    func(c *Config) { c.Join = "127.0.0.1:3, [::1]:4" },
	} {
		c := ok
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := ok
	c.APIAddr = "0.0.0.0:2"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--api-tls-cert") || !strings.Contains(err.Error(), "--api-insecure") {
		t.Errorf("plain HTTP off loopback: %v, want an error naming --api-tls-cert and --api-insecure", err)
	}
	// New refuses a bad config before touching the disk.
	if _, err := New(Config{ID: "n1"}, nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("New with bad config: %v", err)
	}
}

// TestNewFailsCleanly checks that a store that cannot be opened is an error
// (not a panic in the cleanup) and that what was opened before is closed,
// so the same directory opens again.
func TestNewFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	raftDir := filepath.Join(dir, "raft")
	if err := os.WriteFile(raftDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: "n1", DataDir: dir, RaftAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Bootstrap: true}
	if _, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("New with an unusable raft dir succeeded")
	}
	// The FSM's DB was closed on the way out: Badger's directory lock is free.
	f, err := OpenFSM(filepath.Join(dir, "fsm"), nil)
	if err != nil {
		t.Fatalf("fsm still locked after failed New: %v", err)
	}
	f.Close()
}

package core

import (
	"errors"
	"net"
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
		"bootstrap and join":   func(c *Config) { c.Bootstrap, c.Join = true, "127.0.0.1:3" },
		"lease over heartbeat": func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout },
	}
	for name, mutate := range tests {
		c := ok
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
	// New refuses a bad config before touching the disk.
	if _, err := New(Config{ID: "n1"}, nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("New with bad config: %v", err)
	}
}

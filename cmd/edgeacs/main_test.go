package main

import (
	"io"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		ok            bool
	}{
		{"info", "text", true},
		{"debug", "json", true},
		{"WARN", "JSON", true},
		{"loud", "text", false},
		{"info", "xml", false},
	}
	for _, tt := range tests {
		_, err := newLogger(tt.level, tt.format)
		if (err == nil) != tt.ok {
			t.Errorf("newLogger(%q, %q) error = %v, want ok=%v", tt.level, tt.format, err, tt.ok)
		}
	}
}

func TestAppVersionAndHelp(t *testing.T) {
	app := newApp()
	if err := app.Run([]string{"edgeacs", "--version"}); err != nil {
		t.Fatalf("--version: %v", err)
	}
	if err := app.Run([]string{"edgeacs", "--log-format", "xml", "--help"}); err != nil {
		t.Fatalf("--help: %v", err)
	}
}

func TestUnknownCommandExitsTwo(t *testing.T) {
	code := -1
	old := cli.OsExiter
	cli.OsExiter = func(c int) { code = c }
	defer func() { cli.OsExiter = old }()
	app := newApp()
	app.ErrWriter = io.Discard
	_ = app.Run([]string{"edgeacs", "no-such-command"})
	if code != 2 {
		t.Fatalf("exit code = %d, want 2", code)
	}
}

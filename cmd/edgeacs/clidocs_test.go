package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestCommandsHaveHelp walks the whole command tree: every command says
// what it does (Usage), and every leaf that is a client of the API (it
// takes --api) shows an example of itself, a line "edgeacs <its path> ..."
// in its Description or UsageText, which --help and docs/cli.md print.
func TestCommandsHaveHelp(t *testing.T) {
	app := newApp()
	leaves := 0
	walkDocs(app.Commands, app.Name, func(cmd *cli.Command, path string, _ int) {
		if strings.TrimSpace(cmd.Usage) == "" {
			t.Errorf("%s has no Usage", path)
		}
		if len(visibleSubcommands(cmd)) > 0 || !takesFlag(cmd, "api") {
			return
		}
		leaves++
		found := false
		for _, line := range strings.Split(cmd.Description+"\n"+cmd.UsageText, "\n") {
			line = strings.TrimSpace(line)
			if line == path || strings.HasPrefix(line, path+" ") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s takes --api but its Description or UsageText has no example line starting %q", path, path+" ")
		}
	})
	if leaves < 10 {
		t.Fatalf("only %d API client commands found: the walk is broken", leaves)
	}
}

func takesFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// TestCLIDocsUpToDate: docs/cli.md is what gen-docs writes from the
// command tree as it is now.
func TestCLIDocsUpToDate(t *testing.T) {
	var b bytes.Buffer
	writeCLIDocs(&b, newApp())
	path := filepath.Join("..", "..", "docs", "cli.md")
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		want := strings.Split(b.String(), "\n")
		got := strings.Split(string(have), "\n")
		line := 0
		for line < len(want) && line < len(got) && want[line] == got[line] {
			line++
		}
		t.Fatalf("docs/cli.md is stale (first difference at line %d); regenerate it with:\n\tgo run ./cmd/edgeacs gen-docs --out docs/cli.md", line+1)
	}
	for _, want := range []string{"## edgeacs files upload", "*API client*", "`EDGEACS_TOKEN`", "source <(edgeacs completion bash)"} {
		if !strings.Contains(string(have), want) {
			t.Errorf("docs/cli.md lacks %q", want)
		}
	}
	if strings.Contains(string(have), testSecret) || strings.Contains(string(have), "## edgeacs gen-docs") {
		t.Fatal("docs/cli.md shows the test token or the hidden gen-docs command")
	}
}

// TestGenDocsCommand: the hidden command writes the same reference, even
// after commands ran with EDGEACS_TOKEN set (urfave/cli then keeps the
// token as the flag's value).
func TestGenDocsCommand(t *testing.T) {
	runCmd(t, "token", "list", "--api", "127.0.0.1:1", "--timeout", "100ms")
	runCmd(t, "token", "list", "--api", "127.0.0.1:1", "--timeout", "100ms")
	out := filepath.Join(t.TempDir(), "cli.md")
	if _, code := runCmd(t, "gen-docs", "--out", out); code != 0 {
		t.Fatalf("gen-docs: exit %d", code)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	writeCLIDocs(&want, newApp())
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("gen-docs --out wrote other text than writeCLIDocs")
	}
	if bytes.Contains(got, []byte(testSecret)) {
		t.Fatal("the reference shows EDGEACS_TOKEN's value as a default")
	}
	if _, code := runCmd(t, "gen-docs", "extra"); code != 2 {
		t.Fatalf("gen-docs with an argument: exit %d, want 2", code)
	}
}

// TestCompletion: the scripts are printed for bash and zsh, and the
// words they ask the binary for are the subcommands and flags that fit.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		out, code := runCmd(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "--generate-bash-completion") || !strings.Contains(out, "edgeacs") {
			t.Fatalf("completion %s: exit %d\n%s", sh, code, out)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "fish"}, {"completion", "bash", "zsh"}} {
		if _, code := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	// The default completer reads os.Args for the word being completed.
	old := os.Args
	defer func() { os.Args = old }()
	os.Args = []string{"edgeacs", "files", "--generate-bash-completion"}
	out, _ := runCmd(t, "files", "--generate-bash-completion")
	for _, w := range []string{"upload", "list", "delete"} {
		if !strings.Contains(out, w) {
			t.Errorf("completing 'edgeacs files': %q lacks %s", out, w)
		}
	}
	os.Args = []string{"edgeacs", "--generate-bash-completion"}
	if out, _ := runCmd(t, "--generate-bash-completion"); !strings.Contains(out, "presets") || strings.Contains(out, "gen-docs") {
		t.Errorf("completing 'edgeacs': %q", out)
	}
	os.Args = []string{"edgeacs", "files", "upload", "--ver", "--generate-bash-completion"}
	if out, _ := runCmd(t, "files", "upload", "--ver", "--generate-bash-completion"); !strings.Contains(out, "--version") {
		t.Errorf("completing 'edgeacs files upload --ver': %q", out)
	}
}

package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestFlagsFirst, before and after the commands ran (urfave/cli then has
// added a help subcommand to each, which must not make a leaf a parent).
func TestFlagsFirst(t *testing.T) {
	checkFlagsFirst(t, newApp())
	for _, cmd := range []string{"upload", "list"} {
		runCmd(t, "files", cmd, "--api", "127.0.0.1:1", "--timeout", "50ms")
	}
	runCmd(t, "cluster", "remove", "--api", "127.0.0.1:1", "--timeout", "50ms")
	runCmd(t, "presets", "apply", "--api", "127.0.0.1:1", "--timeout", "50ms")
	runCmd(t, "presets", "delete", "--api", "127.0.0.1:1", "--timeout", "50ms")
	checkFlagsFirst(t, newApp())
}

func checkFlagsFirst(t *testing.T, app *cli.App) {
	t.Helper()
	for _, tt := range []struct{ in, want string }{
		{"files upload fw.bin --version 2.1 --api x", "files upload --version 2.1 --api x fw.bin"},
		{"files upload --name n fw.bin --json", "files upload --name n --json fw.bin"},
		{"--log-level debug files list --json", "--log-level debug files list --json"},
		{"files list --json extra", "files list --json extra"},
		{"presets apply x -f p.yaml", "presets apply -f p.yaml x"},
		{"presets apply x --file=p.yaml", "presets apply --file=p.yaml x"},
		{"files list x --bogus", "files list --bogus x"},
		{"presets delete -- -weird", "presets delete -- -weird"},
		{"presets delete a -- -weird --json", "presets delete -- a -weird --json"},
		{"files upload - --name n", "files upload --name n -"},
		{"files upload fw --name", "files upload -- fw --name"},
		{"nope --x y", "nope --x y"},
		{"files --generate-bash-completion", "files --generate-bash-completion"},
		{"files upload fw --vers --generate-bash-completion", "files upload fw --vers --generate-bash-completion"},
		{"cluster remove n3 --api http://a:1", "cluster remove --api http://a:1 n3"},
		{"", ""},
	} {
		in := append([]string{"edgeacs"}, strings.Fields(tt.in)...)
		want := append([]string{"edgeacs"}, strings.Fields(tt.want)...)
		if got := flagsFirst(app, in); !slices.Equal(got, want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tt.in, strings.Join(got[1:], " "), tt.want)
		}
	}
}

package main

// What the fleet commands share: how they read arguments, how they
// print (aligned tables for people, JSON for scripts, secrets masked in
// both), how they fail (one line per error, exit 2 for usage and 1 for
// failures), and how they show waiting (a spinner, a progress bar) on a
// terminal and nothing elsewhere.

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

// secretMask stands for a secret parameter's value in every output: the
// API never returns it, and the CLI never echoes one it sent.
const secretMask = fleet.SecretMask

// isSecret reports whether the value of the parameter name is to be
// masked: a secret by its name (fleet.IsSecretParameter), or one the API
// marked (Parameter.Secret, TaskView.Redacted).
func isSecret(name string, marked bool) bool { return marked || fleet.IsSecretParameter(name) }

// shown is value as it may be printed.
func shown(name, value string, marked bool) string {
	if isSecret(name, marked) {
		return secretMask
	}
	return value
}

// cmdName is the command's name as the user typed it ("devices list").
func cmdName(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		// A reused command tree (tests) shows a command once per run.
		if x.Command != nil && x.Command.Name != "" && (len(names) == 0 || names[len(names)-1] != x.Command.Name) {
			names = append(names, x.Command.Name)
		}
	}
	slices.Reverse(names)
	for len(names) > 0 && names[0] == c.App.Name { // the app's root command
		names = names[1:]
	}
	return strings.Join(append([]string{"edgeacs"}, names...), " ")
}

// usageErr is a usage error of the running command: one line, exit 2.
func usageErr(c *cli.Context, format string, args ...any) error {
	return cli.Exit(cmdName(c)+": "+fmt.Sprintf(format, args...), 2)
}

// failErr is a failure of the running command: one line (or one per
// problem), exit 1.
func failErr(c *cli.Context, format string, args ...any) error {
	return cli.Exit(cmdName(c)+": "+fmt.Sprintf(format, args...), 1)
}

// apiFail turns a client error into the command's exit error: the API's
// own message, without the method, path and status it came with, plus a
// hint where one helps. A 400 is the operator's input (a filter that does
// not parse, a malformed path) and exits 2; anything else exits 1.
func apiFail(c *cli.Context, err error) error {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		// "Post \"http://...\": dial tcp ...": the method and URL are
		// the client's business; the cause is the operator's.
		var ue *url.Error
		msg := firstLine(err.Error())
		if errors.As(err, &ue) {
			msg = fmt.Sprintf("cannot reach the API at %s: %v", c.String("api"), ue.Err)
		}
		if errors.As(err, new(*net.OpError)) && !c.IsSet("api") {
			if conf, cerr := loadCLIConfig(c); cerr == nil && conf.path == "" {
				msg += fmt.Sprintf(" (no --api, and no %s here: run the command in the folder where edgeacs dev runs, or give --api or --config)", defaultCLIConfig)
			}
		}
		return failErr(c, "%s", msg)
	}
	msg := firstLine(ae.Message)
	for _, p := range []string{"bad request: ", "bad task: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	if msg == "" {
		msg = strings.ToLower(http.StatusText(ae.Status))
	}
	switch {
	case errors.Is(err, client.ErrUnauthorized):
		msg = "the API refused the token (" + msg + ")"
		if c.String("token") == "" && c.String("token-file") == "" {
			if conf, cerr := loadCLIConfig(c); cerr == nil && conf.Token != "" {
				msg += fmt.Sprintf("; it came from %s: is --api the core that wrote it?", conf.path)
				break
			}
			msg += "; give one with --token or EDGEACS_TOKEN (the first admin token is in <data>/admin.token)"
		}
	case errors.Is(err, client.ErrForbidden):
		msg += " (this token's scope does not allow it)"
	case errors.Is(err, client.ErrUnavailable):
		msg += " (the cluster is busy or has no leader: retry)"
	case ae.Status == http.StatusGatewayTimeout:
		msg += " (the outcome is unknown: look before retrying)"
	case ae.Status == http.StatusBadRequest:
		return cli.Exit(cmdName(c)+": "+msg, 2)
	}
	return cli.Exit(cmdName(c)+": "+msg, 1)
}

// commandArgs returns the command's positional arguments, reading the
// flags that follow them: urfave/cli stops at the first argument, and
// `edgeacs set-attrs DEV PATH --notify active` is how people type it. A
// "--" ends the flags. With dashArgs, an argument like "-beta" that names
// no flag of the command is an argument (devices tag's removals). An
// unknown flag is a usage error. When --help comes after the arguments,
// the command's help is printed and help is true.
func commandArgs(c *cli.Context, dashArgs bool) (args []string, help bool, err error) {
	in := c.Args().Slice()
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			args = append(args, in[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			args = append(args, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := findFlag(c.Command.Flags, name)
		if f == nil {
			if dashArgs && !strings.HasPrefix(a, "--") {
				args = append(args, a)
				continue
			}
			return nil, false, usageErr(c, "flag provided but not defined: %s", a)
		}
		if name == "help" || name == "h" {
			_ = cli.ShowSubcommandHelp(c)
			return nil, true, nil
		}
		if bf, ok := f.(*cli.BoolFlag); ok && bf != nil {
			if !hasVal {
				val = "true"
			}
		} else if !hasVal {
			if i+1 >= len(in) {
				return nil, false, usageErr(c, "flag needs an argument: %s", a)
			}
			i++
			val = in[i]
		}
		if err := c.Set(name, val); err != nil {
			return nil, false, usageErr(c, "invalid value %q for flag %s: %v", val, a, err)
		}
	}
	return args, false, nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// collect reads a paged listing to its end, or to limit items when limit
// is positive. The slice is never nil: --json prints [] for none.
func collect[T any](items iter.Seq2[T, error], limit int) ([]T, error) {
	out := []T{}
	for it, err := range items {
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// newTable is a tab-separated table writer that aligns columns.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// orDash is s, or "-" for nothing.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// timeText is t for a table: RFC 3339 in UTC to the second, "-" for none.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// comparePaths orders parameter paths as people read a data model:
// segment by segment, instance numbers as numbers (2 before 10).
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		sa, ra, _ := strings.Cut(a, ".")
		sb, rb, _ := strings.Cut(b, ".")
		if sa != sb {
			na, errA := strconv.Atoi(sa)
			nb, errB := strconv.Atoi(sb)
			switch {
			case errA == nil && errB == nil:
				return na - nb
			case errA == nil:
				return -1
			case errB == nil:
				return 1
			}
			return strings.Compare(sa, sb)
		}
		a, b = ra, rb
	}
	return strings.Compare(a, b)
}

// redraws reports whether w is a terminal, where a spinner or a progress
// bar may redraw a line. Anything else (a pipe, a file, a test's buffer)
// gets plain lines only.
func redraws(w io.Writer) bool {
	if forceTerminal {
		return true
	}
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// forceTerminal makes redraws true, for tests of the redrawn lines.
var forceTerminal = false

// spinner shows that a command is waiting, on one redrawn line of a
// terminal; elsewhere it shows nothing. Its goroutine is the spinner's:
// stop ends it and clears the line.
type spinner struct {
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
}

var spinFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// startSpinner shows "<frame> what (elapsed)" on w while the command waits.
func startSpinner(w io.Writer, what string) *spinner {
	s := &spinner{quit: make(chan struct{}), done: make(chan struct{})}
	if !redraws(w) {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		start := time.Now()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "\r\033[K%s %s (%.1fs)", spinFrames[i%len(spinFrames)], what, time.Since(start).Seconds())
			select {
			case <-tick.C:
			case <-s.quit:
				fmt.Fprint(w, "\r\033[K")
				return
			}
		}
	}()
	return s
}

// stop ends the spinner and waits for its line to be cleared.
func (s *spinner) stop() {
	s.stopOnce.Do(func() { close(s.quit) })
	<-s.done
}

package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
)

// The pieces the resource commands (files, presets, provisions, edges,
// cluster) share: how a command that is a client of the API is built, how
// it fails, and how it prints.

// resCommand is a leaf command that is a client of the API: the API
// flags and extra, exit 2 on a usage error, and action called with the
// client built from the flags. description must hold an example line
// ("edgeacs files list"): TestCommandsHaveHelp checks it.
func resCommand(name, usage, argsUsage, description string, action func(c *cli.Context, cl *client.Client) error, extra ...cli.Flag) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: argsUsage, Description: description,
		Flags:        append(apiClientFlags(), extra...),
		OnUsageError: exitUsage,
		Action: func(c *cli.Context) error {
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			return action(c, cl)
		},
	}
}

// firstLine keeps an error to one line: an operator's terminal shows one
// line per error.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " …"
	}
	return s
}

// resOneArg is the command's only argument, named what in the error if it is
// missing or not alone.
func resOneArg(c *cli.Context, what string) (string, error) {
	if c.Args().Len() != 1 || c.Args().First() == "" {
		return "", usageErr(c, "give exactly one %s", what)
	}
	return c.Args().First(), nil
}

// resNoArg refuses arguments.
func resNoArg(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErr(c, "takes no arguments (got %q)", c.Args().First())
	}
	return nil
}

// resBytes is a size for people: 1.5 MB (decimal units, as disks say).
func resBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTP"[exp])
}

// resAgo is how long ago t was, for people: "12s ago", "3h ago", or
// "never" for the zero time.
func resAgo(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// resProgressTTY reports whether w is a terminal a progress bar can redraw;
// a test replaces it.
var resProgressTTY = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
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

// resCmdName is the command's full name for messages: "edgeacs files
// upload", from the contexts urfave/cli ran it through (its HelpName
// grows with every run of a reused command tree).
func resCmdName(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		if x.Command == nil || x.Command.Name == "" || (len(names) > 0 && names[len(names)-1] == x.Command.Name) {
			continue
		}
		names = append(names, x.Command.Name)
	}
	slices.Reverse(names)
	if len(names) == 0 || names[0] != c.App.Name {
		names = append([]string{c.App.Name}, names...)
	}
	return strings.Join(names, " ")
}

// resUsage is a usage error: one line naming the command, exit 2.
func resUsage(c *cli.Context, format string, a ...any) error {
	return cli.Exit(resCmdName(c)+": "+fmt.Sprintf(format, a...), 2)
}

// resFail is a failure: one line naming the command and saying what the
// API (or the way to it) answered, exit 1. An API error is shown by its
// message, which names the thing ("file fw.bin: not found"), not as an
// HTTP exchange; a server error keeps its status, which says whose fault
// it is.
func resFail(c *cli.Context, err error) error {
	msg := err.Error()
	var ae *client.APIError
	if errors.As(err, &ae) {
		msg = strings.TrimPrefix(ae.Message, client.ErrBadRequest.Error()+": ")
		if msg == "" || ae.Status/100 == 5 {
			msg = strings.TrimSuffix(fmt.Sprintf("the API answered %d %s: %s", ae.Status, http.StatusText(ae.Status), ae.Message), ": ")
		}
	}
	switch {
	case errors.Is(err, client.ErrUnauthorized) && c.String("token") == "" && c.String("token-file") == "":
		msg += " (give a token with --token or EDGEACS_TOKEN; the first admin token is in <data>/admin.token)"
	case errors.Is(err, client.ErrForbidden):
		msg += " (this token's scope does not allow it)"
	}
	return cli.Exit(resCmdName(c)+": "+resOneLine(msg), 1)
}

// resOneLine keeps an error to one line: an operator's terminal shows one
// line per error.
func resOneLine(s string) string {
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
		return "", resUsage(c, "give exactly one %s", what)
	}
	return c.Args().First(), nil
}

// resNoArg refuses arguments.
func resNoArg(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return resUsage(c, "takes no arguments (got %q)", c.Args().First())
	}
	return nil
}

// resTable writes aligned columns for people.
func resTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// resDash shows an empty value as "-", so columns stay aligned and an
// empty cell reads as "none".
func resDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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

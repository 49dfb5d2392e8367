// Command edgeacs is the single binary for every edgeacs role: the edge
// (CWMP server at a POP), the core (Raft cluster), the CPE simulator and the
// fleet CLI. Subcommands register themselves in init functions of the files
// beside this one so that each role's wiring lives in its own file.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// commands holds the subcommands registered by the cmd_*.go files.
var commands []*cli.Command

// registerCommand adds a subcommand; called from init functions. It
// notes each flag's default as defined (docDefaults), before any run can
// fold an environment variable into it.
func registerCommand(c *cli.Command) {
	commands = append(commands, c)
	noteDefaults(c)
}

func newApp() *cli.App {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	var usage func([]*cli.Command)
	usage = func(cs []*cli.Command) {
		for _, c := range cs {
			if c.OnUsageError == nil {
				c.OnUsageError = exitUsage
			}
			usage(c.Subcommands)
		}
	}
	usage(commands)
	return &cli.App{
		Name:  "edgeacs",
		Usage: "TR-069 (CWMP) auto-configuration server: edge nodes at the POPs, a Raft core, a CPE simulator",
		Description: "Fleet commands are clients of the core's REST API (--api, --token, or ./data/cli.yaml as edgeacs dev writes it).\n" +
			"Exit codes: 0 done; 1 failed (a CPE fault, a task still pending at --timeout, not found, the API unreachable or refusing the token);\n" +
			"2 the input was refused (a usage error, a bad flag, a file that does not parse, a 400 from the API such as a filter that does not parse).",
		Version:              version,
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn, error", EnvVars: []string{"EDGEACS_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json", EnvVars: []string{"EDGEACS_LOG_FORMAT"}},
		},
		Before: func(c *cli.Context) error {
			logger, err := newLogger(c.String("log-level"), c.String("log-format"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			slog.SetDefault(logger)
			return nil
		},
		Commands:     commands,
		OnUsageError: exitUsage,
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "edgeacs: unknown command %q; see 'edgeacs --help'\n", name)
			cli.OsExiter(2)
		},
	}
}

// newLogger builds the process logger from the global flags.
func newLogger(level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("bad --log-format %q: want text or json", format)
	}
}

func main() {
	if err := runOrdered(newApp(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "edgeacs:", err)
		os.Exit(1)
	}
}

package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/urfave/cli/v2"
)

// exitUsage turns flag parsing errors into exit status 2.
func exitUsage(_ *cli.Context, err error, _ bool) error { return cli.Exit(err.Error(), 2) }

// envVars names the environment variable that stands in for a flag.
func envVars(name string) []string { return []string{"EDGEACS_" + name} }

// readConfigFile fills dst from the YAML file named by --config, if any.
// Unknown keys are errors: a typo in a POP's config must not be ignored.
func readConfigFile(c *cli.Context, dst any) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := yaml.UnmarshalWithOptions(data, dst, yaml.Strict()); err != nil {
		return fmt.Errorf("parse config %s: %w", path, err)
	}
	return nil
}

// noArgs refuses positional arguments, which every role command ignores.
func noArgs(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(c.Args().Slice(), " "))
	}
	return nil
}

// overrides copies the flags that were set, on the command line or through
// their EDGEACS_* variable (urfave/cli folds env into flags and IsSet is
// true for both), over what the defaults and the YAML file gave: the
// precedence is flags > env > YAML > defaults.
type overrides struct{ c *cli.Context }

func (o overrides) str(name string, dst *string) {
	if o.c.IsSet(name) {
		*dst = o.c.String(name)
	}
}

func (o overrides) boolean(name string, dst *bool) {
	if o.c.IsSet(name) {
		*dst = o.c.Bool(name)
	}
}

func (o overrides) duration(name string, dst *time.Duration) {
	if o.c.IsSet(name) {
		*dst = o.c.Duration(name)
	}
}

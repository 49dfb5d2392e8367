package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
)

// apiClientFlags are the flags of every command that is a client of the
// management REST API (the core's, or a standalone edge's).
func apiClientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "api", Value: defaultCoreAPIURL, Usage: "REST API URL (any core member, or a standalone edge)", EnvVars: []string{"EDGEACS_API"}},
		&cli.StringFlag{Name: "token", Usage: "API bearer token", EnvVars: []string{"EDGEACS_TOKEN"}},
		&cli.StringFlag{Name: "token-file", Usage: "read the API token from this file (e.g. <data>/admin.token)", EnvVars: []string{"EDGEACS_TOKEN_FILE"}},
		&cli.StringFlag{Name: "api-ca", Usage: "PEM CA bundle to trust for an https --api", EnvVars: []string{"EDGEACS_API_CA"}},
		&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts instead of a table"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "request timeout"},
	}
}

// maxTokenFile bounds what --token-file reads: a token is far shorter.
const maxTokenFile = 4 << 10

// apiClient builds the API client from the command's flags.
func apiClient(c *cli.Context) (*client.Client, error) {
	token := c.String("token")
	if f := c.String("token-file"); f != "" {
		if token != "" {
			return nil, cli.Exit("give --token or --token-file, not both", 2)
		}
		b, err := readSmallFile(f, maxTokenFile)
		if err != nil {
			return nil, cli.Exit(fmt.Sprintf("--token-file: %v", err), 2)
		}
		token = strings.TrimSpace(string(b))
	}
	cl, err := client.New(c.String("api"), client.Options{Token: token, CAFile: c.String("api-ca"), Timeout: c.Duration("timeout")})
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("--api %q: %v", c.String("api"), err), 2)
	}
	return cl, nil
}

func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// apiExit turns a client error into the command's exit error.
func apiExit(c *cli.Context, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, client.ErrUnauthorized) && c.String("token") == "" && c.String("token-file") == "":
		msg += " (give a token with --token or EDGEACS_TOKEN; the first admin token is in <data>/admin.token)"
	case errors.Is(err, client.ErrForbidden):
		msg += " (this token's scope does not allow it)"
	}
	return cli.Exit(msg, 1)
}

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
)

// apiClientFlags are the flags of every command that is a client of the
// management REST API (the core's, or a standalone edge's).
func apiClientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "CLI config file with defaults for --api, --token and --api-ca (default: ./data/cli.yaml when present, as edgeacs dev writes it)", EnvVars: []string{cliConfigEnv}},
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

// apiClient builds the API client from the command's flags, with the CLI
// config file (loadCLIConfig) filling what no flag or variable gave.
func apiClient(c *cli.Context) (*client.Client, error) {
	conf, err := loadCLIConfig(c)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	// A flag or variable given empty counts as not given.
	api := c.String("api")
	if (!c.IsSet("api") || api == "") && conf.API != "" {
		api = conf.API
	}
	token := c.String("token")
	switch f := c.String("token-file"); {
	case f != "":
		if token != "" {
			return nil, cli.Exit("give --token or --token-file, not both", 2)
		}
		b, err := readSmallFile(f, maxTokenFile)
		if err != nil {
			return nil, cli.Exit(fmt.Sprintf("--token-file: %v", err), 2)
		}
		token = strings.TrimSpace(string(b))
	case token == "":
		token = conf.Token
	}
	apiCA := c.String("api-ca")
	if apiCA == "" {
		apiCA = conf.APICA
	}
	cl, err := client.New(api, client.Options{Token: token, CAFile: apiCA, Timeout: c.Duration("timeout")})
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("--api %q: %v", api, err), 2)
	}
	return cl, nil
}

// The CLI config file: a YAML map whose keys are the flags it gives
// defaults for. `edgeacs dev` writes one to <data>/cli.yaml, and a fleet
// command typed in the folder above finds it without being told.
const (
	cliConfigEnv     = "EDGEACS_CONFIG"
	cliConfigName    = "cli.yaml"
	maxCLIConfigFile = 64 << 10
)

// defaultCLIConfig is read when present and no --config is given: the
// file `edgeacs dev --data ./data` writes, relative to the working
// directory.
var defaultCLIConfig = filepath.Join("data", cliConfigName)

// errConfigMode is the error of a config file others may read: it holds a
// token.
var errConfigMode = errors.New("is readable or writable by other users; it holds an API token: chmod 600 it")

// cliConfig is the CLI config file's content.
type cliConfig struct {
	API   string `yaml:"api,omitempty"`
	Token string `yaml:"token,omitempty"`
	// APICA is relative to the file's directory unless absolute.
	APICA string `yaml:"api-ca,omitempty"`

	// path is the file read ("" when none was).
	path string
}

// loadCLIConfig reads the config file named by --config (EDGEACS_CONFIG),
// or ./data/cli.yaml if that exists; a file named explicitly must exist.
// Precedence is flags > environment > config file > defaults: the caller
// takes a value from the file only for a flag that is not set.
func loadCLIConfig(c *cli.Context) (cliConfig, error) {
	path, explicit := c.String("config"), c.IsSet("config")
	if !explicit || path == "" {
		path = defaultCLIConfig
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return cliConfig{}, nil
		}
	}
	return readCLIConfig(path)
}

// readCLIConfig reads and checks one CLI config file. Its errors are one
// line, naming the file.
func readCLIConfig(path string) (cliConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return cliConfig{}, fmt.Errorf("config %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return cliConfig{}, fmt.Errorf("config %s: %w", path, unwrapPath(err))
	}
	if !st.Mode().IsRegular() {
		return cliConfig{}, fmt.Errorf("config %s: not a regular file", path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return cliConfig{}, fmt.Errorf("config %s (mode %04o) %w", path, st.Mode().Perm(), errConfigMode)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCLIConfigFile+1))
	if err != nil {
		return cliConfig{}, fmt.Errorf("config %s: %w", path, unwrapPath(err))
	}
	if len(b) > maxCLIConfigFile {
		return cliConfig{}, fmt.Errorf("config %s: larger than %d bytes", path, maxCLIConfigFile)
	}
	// The first unknown key in the file's order: strict decoding alone
	// names whichever its map walk meets first.
	var keys yaml.MapSlice
	if yaml.Unmarshal(b, &keys) == nil {
		for _, kv := range keys {
			if k, _ := kv.Key.(string); k != "api" && k != "token" && k != "api-ca" {
				return cliConfig{}, fmt.Errorf("config %s: unknown field %q (a CLI config has api, token and api-ca)", path, fmt.Sprint(kv.Key))
			}
		}
	}
	var conf cliConfig
	if err := yaml.UnmarshalWithOptions(b, &conf, yaml.Strict()); err != nil {
		msg := strings.Join(strings.Fields(yaml.FormatError(err, false, false)), " ")
		return cliConfig{}, fmt.Errorf("config %s: %s (a CLI config has api, token and api-ca)", path, msg)
	}
	if conf.APICA != "" && !filepath.IsAbs(conf.APICA) {
		conf.APICA = filepath.Join(filepath.Dir(path), conf.APICA)
	}
	conf.path = path
	return conf, nil
}

// unwrapPath drops the *fs.PathError's own copy of the path, which the
// message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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

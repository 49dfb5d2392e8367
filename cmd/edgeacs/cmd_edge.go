package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/edge"
	"github.com/edgeacs/edgeacs/internal/hugepages"
	"github.com/edgeacs/edgeacs/internal/memtrim"
	"github.com/edgeacs/edgeacs/sim"
)

func init() { registerCommand(edgeCommand()) }

func edgeCommand() *cli.Command {
	env := envVars
	return &cli.Command{
		Name:  "edge",
		Usage: "run an edge node: the CWMP server for the CPEs of one POP",
		Description: "Settings come from flags, then EDGEACS_* environment variables, then the YAML file\n" +
			"given with --config (see configs/edge.yaml), then defaults.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "YAML configuration file", EnvVars: env("CONFIG")},
			&cli.StringFlag{Name: "id", Usage: "edge name", EnvVars: env("ID")},
			&cli.StringFlag{Name: "data", Usage: "data directory (device cache, files)", EnvVars: env("DATA")},
			&cli.StringFlag{Name: "cwmp-addr", Usage: "CWMP listen address for CPEs", DefaultText: edge.DefaultCWMPAddr, EnvVars: env("CWMP_ADDR")},
			&cli.StringFlag{Name: "api-addr", Usage: "local API listen address (plain HTTP only on loopback unless --api-insecure)", DefaultText: edge.DefaultAPIAddr, EnvVars: env("API_ADDR")},
			&cli.StringFlag{Name: "api-tls-cert", Usage: "TLS certificate (PEM) to serve the local API over HTTPS", EnvVars: env("API_TLS_CERT")},
			&cli.StringFlag{Name: "api-tls-key", Usage: "TLS private key (PEM) for --api-tls-cert", EnvVars: env("API_TLS_KEY")},
			&cli.BoolFlag{Name: "api-insecure", Usage: "serve the local API over plain HTTP on a non-loopback --api-addr (requests cross the network in the clear)", EnvVars: env("API_INSECURE")},
			&cli.BoolFlag{Name: "metrics-auth", Usage: "make /metrics need a read token (by default it is public, like /healthz)", EnvVars: env("METRICS_AUTH")},
			&cli.StringFlag{Name: "stun-addr", Usage: "STUN server UDP address for TR-111 (off when empty)", EnvVars: env("STUN_ADDR")},
			&cli.BoolFlag{Name: "standalone", Usage: "run without a core (no --core, nothing queued for one)", EnvVars: env("STANDALONE")},
			&cli.StringSliceFlag{Name: "core", Usage: "core nodes' sync addresses HOST:PORT[,HOST:PORT...]; any one, a follower redirects to the leader", EnvVars: env("CORE")},
			&cli.StringFlag{Name: "ca-dir", Usage: "directory with ca.crt and this edge's <id>.crt/<id>.key (edgeacs ca)", EnvVars: env("CA_DIR")},
			&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate (PEM) for HTTPS to CPEs", EnvVars: env("TLS_CERT")},
			&cli.StringFlag{Name: "tls-key", Usage: "TLS private key (PEM)", EnvVars: env("TLS_KEY")},
			&cli.StringFlag{Name: "cpe-auth", Usage: "CPE authentication: none, basic or digest", DefaultText: edge.AuthDigest, EnvVars: env("CPE_AUTH")},
			&cli.BoolFlag{Name: "allow-basic-over-http", Usage: "allow basic auth without TLS (testing only)", EnvVars: env("ALLOW_BASIC_OVER_HTTP")},
			&cli.StringFlag{Name: "username", Usage: "shared CPE username", EnvVars: env("USERNAME")},
			&cli.StringFlag{Name: "password", Usage: "shared CPE password", EnvVars: env("PASSWORD")},
			&cli.BoolFlag{Name: "files-auth", Value: true, Usage: "serve /files/ on the CWMP listener only on the expiring signed URLs the edge puts in Downloads, or to clients with CPE credentials (on by default; --files-auth=false serves files to anyone)", EnvVars: env("FILES_AUTH")},
			&cli.StringSliceFlag{Name: "digest-algorithms", Usage: "digest algorithms to offer CPEs, one challenge each in this order, and the only ones accepted: md5, sha-256 (md5 alone by default: every CPE has it, and some misread a second challenge)", DefaultText: "md5", EnvVars: env("DIGEST_ALGORITHMS")},
			&cli.BoolFlag{Name: "allow-digest-without-qop", Usage: "accept RFC 2069 digest responses (no qop, no nonce count; each nonce then works once) for CPEs that cannot do better", EnvVars: env("ALLOW_DIGEST_WITHOUT_QOP")},
			&cli.Int64Flag{Name: "max-body-bytes", Usage: "largest CWMP request body", DefaultText: "4 MiB", EnvVars: env("MAX_BODY_BYTES")},
			&cli.DurationFlag{Name: "session-timeout", Usage: "idle time that ends a CWMP session", DefaultText: "30s", EnvVars: env("SESSION_TIMEOUT")},
			&cli.DurationFlag{Name: "shutdown-timeout", Usage: "grace on SIGTERM: open CPE sessions get this long to finish, then the edge exits (their tasks stay pending)", DefaultText: "3s", EnvVars: env("SHUTDOWN_TIMEOUT")},
			&cli.IntFlag{Name: "max-sessions", Usage: "concurrent sessions before new ones get 503 with a jittered Retry-After (0: derived from the fd limit and memory)", DefaultText: "derived", EnvVars: env("MAX_SESSIONS")},
			&cli.StringFlag{Name: "files-base-url", Usage: "URL prefix CPEs download files from (default: this listener)", EnvVars: env("FILES_BASE_URL")},
			&cli.IntFlag{Name: "max-connections", Usage: "CWMP connections held at once (0: derived from the fd limit, keeping a fifth for the store, the API and the sync link)", DefaultText: "derived", EnvVars: env("MAX_CONNECTIONS")},
			&cli.DurationFlag{Name: "store-failure-limit", Usage: "how long cache writes may keep failing before the edge stops", DefaultText: "30s", EnvVars: env("STORE_FAILURE_LIMIT")},
			&cli.StringFlag{Name: "memory-limit", Usage: "soft limit on the process's Go memory (GOMEMLIMIT, which wins when set): the collector runs sooner near it and returns freed memory to the OS", DefaultText: "three times --cache-memory plus 256MiB", EnvVars: env("MEMORY_LIMIT")},
			&cli.BoolFlag{Name: "huge-pages", Value: true, Usage: "ask Linux for transparent huge pages for the heap where the system leaves them to each process (transparent_hugepage \"madvise\"): fewer page faults, which are dear in a virtual machine", EnvVars: env("HUGE_PAGES")},
			&cli.StringFlag{Name: "cache-memory", Usage: "memory budget of the device cache's store (Badger memtables, block and index cache), e.g. 256MiB, 1GiB", DefaultText: edge.DefaultCacheMemory.String(), EnvVars: env("CACHE_MEMORY")},
			// Hidden convenience for `make run`: an in-process simulated fleet.
			&cli.IntFlag{Name: "sim", Usage: "also run N simulated CPEs against this edge", Hidden: true},
			&cli.StringFlag{Name: "sim-model", Value: sim.ModelMixed, Usage: "data model of the simulated CPEs", Hidden: true},
		},
		OnUsageError: exitUsage,
		Action:       runEdge,
	}
}

// loadEdgeConfig builds the configuration: defaults < YAML < env < flags
// (urfave/cli already folds env into the flags, and IsSet is true for both).
func loadEdgeConfig(c *cli.Context) (edge.Config, error) {
	var cfg edge.Config
	if err := readConfigFile(c, &cfg); err != nil {
		return cfg, err
	}
	if err := noArgs(c); err != nil {
		return cfg, err
	}
	set := overrides{c}
	str, boolean := set.str, set.boolean
	str("id", &cfg.ID)
	str("data", &cfg.DataDir)
	str("cwmp-addr", &cfg.CWMPAddr)
	str("api-addr", &cfg.APIAddr)
	str("api-tls-cert", &cfg.APITLSCert)
	str("api-tls-key", &cfg.APITLSKey)
	boolean("api-insecure", &cfg.APIInsecure)
	boolean("metrics-auth", &cfg.MetricsAuth)
	str("stun-addr", &cfg.STUNAddr)
	str("tls-cert", &cfg.TLSCert)
	str("tls-key", &cfg.TLSKey)
	str("cpe-auth", &cfg.CPEAuth)
	str("username", &cfg.Username)
	str("password", &cfg.Password)
	str("files-base-url", &cfg.FilesBaseURL)
	boolean("standalone", &cfg.Standalone)
	str("ca-dir", &cfg.CADir)
	if c.IsSet("core") {
		cfg.Core = nil
		for _, a := range c.StringSlice("core") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Core = append(cfg.Core, a)
			}
		}
	}
	boolean("allow-basic-over-http", &cfg.AllowBasicOverHTTP)
	boolean("allow-digest-without-qop", &cfg.AllowDigestWithoutQOP)
	if c.IsSet("digest-algorithms") {
		cfg.DigestAlgorithms = nil
		for _, a := range c.StringSlice("digest-algorithms") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.DigestAlgorithms = append(cfg.DigestAlgorithms, a)
			}
		}
	}
	set.duration("shutdown-timeout", &cfg.ShutdownTimeout)
	if c.IsSet("files-auth") {
		on := c.Bool("files-auth")
		cfg.FilesAuth = &on
	}
	if c.IsSet("huge-pages") {
		on := c.Bool("huge-pages")
		cfg.HugePages = &on
	}
	if c.IsSet("max-body-bytes") {
		cfg.MaxBodyBytes = c.Int64("max-body-bytes")
	}
	set.duration("session-timeout", &cfg.SessionTimeout)
	if c.IsSet("max-sessions") {
		cfg.MaxConcurrentSessions = c.Int("max-sessions")
	}
	if c.IsSet("max-connections") {
		cfg.MaxConnections = c.Int("max-connections")
	}
	set.duration("store-failure-limit", &cfg.StoreFailureLimit)
	for _, f := range []struct {
		name string
		dst  *edge.ByteSize
	}{{"cache-memory", &cfg.CacheMemory}, {"memory-limit", &cfg.MemoryLimit}} {
		if !c.IsSet(f.name) {
			continue
		}
		v, err := edge.ParseByteSize(c.String(f.name))
		if err != nil {
			return cfg, fmt.Errorf("--%s: %w", f.name, err)
		}
		*f.dst = v
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func runEdge(c *cli.Context) error {
	cfg, err := loadEdgeConfig(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	node, _, err := newEdgeNode(cfg, slog.Default())
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	setMemoryLimit(cfg, node.Capacity(), slog.Default())
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	startPprof(ctx, slog.Default())
	// After a storm, the heap its sessions used goes back to the OS in
	// seconds rather than minutes (stopped with ctx).
	go memtrim.Run(ctx, memtrim.Interval, slog.Default())
	if cfg.HugePagesOn() {
		// The heap grows up to the soft limit: set that much aside.
		hugepages.Start(ctx, heapReserve(debug.SetMemoryLimit(-1)), slog.Default())
	}

	runErr := make(chan error, 1)
	go func() { runErr <- node.Run(ctx) }()
	select {
	case <-node.Ready():
	case err := <-runErr:
		return cli.Exit(err.Error(), 1)
	}

	var simErr chan error
	if n := c.Int("sim"); n > 0 {
		simErr = make(chan error, 1)
		go func() { simErr <- runSimFleet(ctx, c, cfg, node, n) }()
	}
	err = <-runErr
	if simErr != nil {
		if serr := <-simErr; serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return nil
}

// runSimFleet runs n simulated CPEs against the node until ctx ends, and
// prints a few curl commands to try once they have all informed.
func runSimFleet(ctx context.Context, c *cli.Context, cfg edge.Config, node *edge.Node, n int) error {
	addrs := node.Addrs()
	scheme := "http"
	if cfg.TLS() {
		scheme = "https"
	}
	fleet, err := sim.New(sim.Config{
		ACSURL:          scheme + "://" + addrs.CWMP + "/",
		Count:           n,
		Model:           c.String("sim-model"),
		Seed:            1,
		Username:        cfg.Username,
		Password:        cfg.Password,
		Insecure:        true,
		PoolConnections: true,
		Logger:          slog.Default(),
	})
	if err != nil {
		return fmt.Errorf("start simulated CPEs: %w", err)
	}
	defer fleet.Close()
	if err := fleet.Start(ctx); err != nil {
		return fmt.Errorf("start simulated CPEs: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for node.Cache().DeviceCount() < n && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	d := fleet.Device(0)
	if d == nil {
		return errors.New("simulated fleet is empty")
	}
	apiScheme := "http"
	if cfg.APITLS() {
		apiScheme = "https"
	}
	api := apiScheme + "://" + addrs.API + "/api/v1"
	path := url.PathEscape(d.ID())
	ssid := d.Root() + "LANDevice.1.WLANConfiguration.1.SSID"
	if d.Root() == "Device." {
		ssid = "Device.WiFi.SSID.1.SSID"
	}
	tokenPath := node.AdminTokenPath()
	if rel, err := filepath.Rel(".", tokenPath); err == nil && !strings.HasPrefix(rel, "..") {
		tokenPath = rel
	}
	fmt.Fprintf(os.Stdout, `
%d simulated CPEs have informed edge %q. The API needs a token: the edge's
first admin token is in %s. Try:

  export EDGEACS_TOKEN=$(cat %s)
  curl -s -H "Authorization: Bearer $EDGEACS_TOKEN" '%s/devices?limit=3'
  curl -s -H "Authorization: Bearer $EDGEACS_TOKEN" '%s/devices/%s'
  curl -s -H "Authorization: Bearer $EDGEACS_TOKEN" -X POST '%s/devices/%s/tasks?connection_request&wait=10s' \
       -d '{"name": "setParameterValues", "parameterValues": [["%s", "hello-edgeacs", "xsd:string"]]}'
  %s token create --api %s --name ro --scope read

Ctrl-C stops the edge and the simulator.
`, node.Cache().DeviceCount(), cfg.ID, tokenPath, tokenPath, api, api, path, api, path, ssid, os.Args[0], strings.TrimSuffix(api, "/api/v1"))
	<-ctx.Done()
	return nil
}

// setMemoryLimit sets the Go runtime's soft memory limit from the
// configuration, or derives it (edge.DeriveMemoryLimit), unless GOMEMLIMIT
// is set: the runtime has read it already, and the operator's word wins.
func setMemoryLimit(cfg edge.Config, c edge.Capacity, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit", "source", "GOMEMLIMIT", "soft_limit", v)
		return
	}
	lim, source := cfg.MemoryLimit, "memory_limit"
	if lim == 0 {
		lim, source = edge.DeriveMemoryLimit(cfg.CacheMemory, c), "derived from cache_memory"
	}
	debug.SetMemoryLimit(int64(lim))
	log.Info("memory limit", "source", source, "soft_limit", lim.String(), "cache_memory", cfg.CacheMemory.String())
}

// heapReserve is how much heap to set aside for huge pages
// (hugepages.Reserve) given the soft memory limit: the limit, which the
// heap grows to at most, or 1 GiB without one. It is address space: memory
// is used only as the heap grows into it.
func heapReserve(limit int64) int {
	const noLimit, fallback = math.MaxInt64, 1 << 30
	if limit <= 0 || limit == noLimit {
		return fallback
	}
	return int(min(limit, 8<<30))
}

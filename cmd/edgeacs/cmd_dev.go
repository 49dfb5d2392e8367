package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/edge"
	"github.com/edgeacs/edgeacs/internal/loopback"
	"github.com/edgeacs/edgeacs/internal/tokenfile"
	"github.com/edgeacs/edgeacs/sim"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

// `edgeacs dev` is the whole system in one process, wired exactly as the
// separate commands wire it: `edgeacs ca` makes the CA and the two node
// certificates, `edgeacs core --bootstrap` runs a single-voter core with its
// sync server, `edgeacs edge` runs an edge whose sync client dials that
// server over QUIC on loopback, and `edgeacs sim` runs CPEs against the
// edge. Nothing here is a shortcut around the sync link: a device reaches
// the core's API only through it.

func init() { registerCommand(devCommand()) }

// The dev system's names, addresses and files.
const (
	devCoreID = "core1"
	devEdgeID = "edge1"

	defaultDevData     = "./data"
	defaultDevAPIAddr  = "127.0.0.1:7557"
	defaultDevCWMPAddr = "127.0.0.1:7547"
	devFreePort        = "127.0.0.1:0"
	defaultDevUsername = "cpe"

	// devStateName is the file (in the data directory) that keeps what
	// the first start chose: the free ports and the CPE password.
	devStateName = "dev.yaml"
	// devLeaderWait and devAdminTokenWait bound the waits for the core to
	// elect itself and to make its first admin token.
	devLeaderWait     = 30 * time.Second
	devAdminTokenWait = 30 * time.Second
	// devProgressEvery spaces the log lines of a slow wait for CPEs.
	devProgressEvery = 5 * time.Second
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run the whole system in one process: a one-node core, an edge linked to it over QUIC, and simulated CPEs",
		Description: "Starts a single-voter core (bootstrapped on the first start), an edge attached to it over\n" +
			"the real QUIC sync link with mutual TLS, and --sim simulated CPEs informing the edge. Every\n" +
			"listener is on loopback; --raft-addr, --sync-addr, --stun-addr and --edge-api-addr take free\n" +
			"ports on the first start, which later starts reuse.\n\n" +
			"Everything lives under --data:\n" +
			"  ca/        the cluster CA and the certificates of core1 and edge1 (as edgeacs ca makes them)\n" +
			"  core/      the core node's data (raft log, state, files; admin.token)\n" +
			"  edge/      the edge's device cache and files\n" +
			"  cli.yaml   the core API's URL and admin token, for the fleet commands (mode 0600)\n" +
			"  dev.yaml   the ports and CPE credentials the first start chose (mode 0600)\n\n" +
			"Fleet commands run in the folder that holds ./data read ./data/cli.yaml by themselves;\n" +
			"elsewhere give --config DATA/cli.yaml. It prints ready once every simulated CPE has\n" +
			"informed the edge and its device is at the core. Ctrl-C stops the CPEs, the edge, then\n" +
			"the core; running it again reuses the data (the same CA, token and devices).\n\n" +
			"Examples:\n" +
			"  edgeacs dev                                  # what make run runs: ./data, 200 CPEs\n" +
			"  edgeacs dev --data /tmp/acs --sim 20 --model tr181\n" +
			"  edgeacs dev --sim 0 --cwmp-addr 0.0.0.0:7547  # no simulated CPEs; real ones on the LAN inform it",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Value: defaultDevData, Usage: "data directory (core/, edge/, ca/, cli.yaml, dev.yaml)"},
			&cli.IntFlag{Name: "sim", Value: 200, Usage: "number of simulated CPEs (0 for none)"},
			&cli.StringFlag{Name: "model", Value: sim.ModelMixed, Usage: "data model of the simulated CPEs: tr098, tr181, voip (a SIP adapter), mixed (tr098 and tr181 alternating) or a comma-separated rotation such as tr098,tr181,voip"},
			&cli.Float64Flag{Name: "sim-download-faults", Usage: "share (0..1) of the simulated CPEs that fail every firmware download with 9010, to try rollouts' fault handling"},
			&cli.StringFlag{Name: "api-addr", Value: defaultDevAPIAddr, Usage: "core REST API listen address (loopback: plain HTTP)"},
			&cli.StringFlag{Name: "cwmp-addr", Value: defaultDevCWMPAddr, Usage: "edge CWMP listen address, for the CPEs"},
			&cli.StringFlag{Name: "edge-api-addr", Usage: "edge local API listen address", DefaultText: "a free port, kept in dev.yaml"},
			&cli.StringFlag{Name: "raft-addr", Usage: "core Raft listen address", DefaultText: "a free port, kept in dev.yaml"},
			&cli.StringFlag{Name: "sync-addr", Usage: "core sync (QUIC, UDP) listen address", DefaultText: "a free port, kept in dev.yaml"},
			&cli.StringFlag{Name: "stun-addr", Usage: "edge STUN (UDP) listen address", DefaultText: "a free port, kept in dev.yaml"},
			&cli.StringFlag{Name: "username", Usage: "CPE username at the edge (digest auth)", DefaultText: defaultDevUsername + ", kept in dev.yaml"},
			&cli.StringFlag{Name: "password", Usage: "CPE password at the edge", DefaultText: "random, kept in dev.yaml"},
		},
		OnUsageError: exitUsage,
		Action:       runDev,
	}
}

// devState is <data>/dev.yaml: what the first start chose, so later
// starts listen where the first did (the Raft address is part of the
// cluster's configuration) and the CPEs keep their credentials.
type devState struct {
	RaftAddr    string `yaml:"raftAddr,omitempty"`
	SyncAddr    string `yaml:"syncAddr,omitempty"`
	STUNAddr    string `yaml:"stunAddr,omitempty"`
	EdgeAPIAddr string `yaml:"edgeAPIAddr,omitempty"`
	CPEUsername string `yaml:"cpeUsername,omitempty"`
	CPEPassword string `yaml:"cpePassword,omitempty"`
}

// readDevState reads dev.yaml; a missing file is an empty state.
func readDevState(path string) (devState, error) {
	var st devState
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	if err := yaml.UnmarshalWithOptions(b, &st, yaml.Strict()); err != nil {
		return st, fmt.Errorf("%s: %s (fix it, or delete it to choose new ports)", path, strings.Join(strings.Fields(yaml.FormatError(err, false, false)), " "))
	}
	return st, nil
}

func writeDevState(path string, st devState) error {
	b, err := yaml.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	head := "# edgeacs dev: the ports and CPE credentials its first start chose; later starts reuse them.\n"
	return tokenfile.Write(path, append([]byte(head), b...))
}

// devOptions are the dev system's settings after flags, dev.yaml and
// defaults.
type devOptions struct {
	data                     string
	sims                     int
	model                    string
	apiAddr, cwmpAddr        string
	edgeAPIAddr, raftAddr    string
	syncAddr, stunAddr       string
	cpeUsername, cpePassword string
	// dlFaultRate is the simulated CPEs' sim.Config.DownloadFaultRate.
	dlFaultRate float64
}

// addrFree reports whether addr can be bound now on network "tcp" or
// "udp". A remembered port another program took since is not reused.
func addrFree(network, addr string) bool {
	if network == "udp" {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		pc.Close()
		return true
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// devAddr picks a listener's address: the flag's if given, else the one a
// previous start bound if it is still free, else a free port.
func devAddr(flag, given, network, remembered string, log *slog.Logger) string {
	switch {
	case given != "":
		return given
	case remembered == "":
		return devFreePort
	case addrFree(network, remembered):
		return remembered
	}
	msg := "the address the last start used is taken; using a free port"
	if flag == "raft-addr" {
		msg += " (cluster status keeps showing the old Raft address; pass --raft-addr to choose one)"
	}
	log.Warn(msg, "flag", "--"+flag, "addr", remembered)
	return devFreePort
}

// devOptionsFromFlags checks the flags and fills the rest from dev.yaml
// and defaults. A usage error is exit 2.
func devOptionsFromFlags(c *cli.Context, log *slog.Logger) (devOptions, error) {
	usage := func(format string, args ...any) (devOptions, error) {
		return devOptions{}, cli.Exit("edgeacs dev: "+fmt.Sprintf(format, args...), 2)
	}
	if err := noArgs(c); err != nil {
		return usage("%v", err)
	}
	o := devOptions{data: c.String("data"), sims: c.Int("sim"), model: c.String("model"),
		apiAddr: c.String("api-addr"), cwmpAddr: c.String("cwmp-addr"), dlFaultRate: c.Float64("sim-download-faults")}
	switch {
	case o.data == "":
		return usage("--data must not be empty")
	case o.sims < 0:
		return usage("--sim %d is negative", o.sims)
	}
	for _, f := range []string{"api-addr", "cwmp-addr", "edge-api-addr", "raft-addr", "sync-addr", "stun-addr"} {
		v := c.String(f)
		if !c.IsSet(f) && v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return usage("--%s %q: want HOST:PORT", f, v)
		}
		// The APIs are plain HTTP here: only on loopback, as `edgeacs
		// core` and `edgeacs edge` allow without TLS.
		if (f == "api-addr" || f == "edge-api-addr") && !loopback.IsAddr(v) {
			return usage("--%s %s is not a loopback address: edgeacs dev serves its APIs over plain HTTP on loopback only", f, v)
		}
	}
	st, err := readDevState(filepath.Join(o.data, devStateName))
	if err != nil {
		return usage("%v", err)
	}
	o.edgeAPIAddr = devAddr("edge-api-addr", c.String("edge-api-addr"), "tcp", st.EdgeAPIAddr, log)
	o.raftAddr = devAddr("raft-addr", c.String("raft-addr"), "tcp", st.RaftAddr, log)
	o.syncAddr = devAddr("sync-addr", c.String("sync-addr"), "udp", st.SyncAddr, log)
	o.stunAddr = devAddr("stun-addr", c.String("stun-addr"), "udp", st.STUNAddr, log)
	o.cpeUsername, o.cpePassword = cmp.Or(c.String("username"), st.CPEUsername, defaultDevUsername), cmp.Or(c.String("password"), st.CPEPassword)
	if o.cpePassword == "" {
		o.cpePassword = rand.Text()
	}
	return o, nil
}

// ensureDevCA makes, once, the cluster CA under dir and the certificates
// of the core node and the edge, with the same code as `edgeacs ca init`
// and `edgeacs ca issue`. What exists is kept.
func ensureDevCA(dir string) error {
	if !fileExists(filepath.Join(dir, fleetsync.CACertFile)) {
		if err := fleetsync.InitCA(dir); err != nil {
			return err
		}
	}
	for _, n := range []struct {
		name string
		role fleetsync.Role
	}{{devCoreID, fleetsync.RoleCore}, {devEdgeID, fleetsync.RoleEdge}} {
		if fileExists(filepath.Join(dir, n.name+".crt")) {
			continue
		}
		if err := fleetsync.IssueCert(dir, n.name, n.role, "ecdsa"); err != nil {
			return err
		}
	}
	return nil
}

// fileExists reports whether path exists; an error other than "does not
// exist" counts as existing, so the CA code that refuses to overwrite
// reports it.
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// bgRun is a component running on its own goroutine: done closes when
// its Run returns, after err is set.
type bgRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func goRun(run func(ctx context.Context) error) *bgRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &bgRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = run(ctx)
	}()
	return r
}

// stop cancels the component and waits for its Run to return.
func (r *bgRun) stop() error {
	if r == nil {
		return nil
	}
	r.cancel()
	<-r.done
	return r.err
}

// devSystem is the running dev system, stopped in reverse start order.
type devSystem struct {
	opts  devOptions
	log   *slog.Logger
	fleet *sim.Fleet
	core  *coreWithSync
	coreR *bgRun
	edge  *edge.Node
	link  *fleetsync.Client
	edgeR *bgRun
	// acsURL is where the simulated CPEs inform.
	acsURL string
}

// stop stops the CPEs, then the edge (its outbox keeps what the core has
// not acknowledged), then the core.
func (d *devSystem) stop() error {
	var errs []error
	if d.fleet != nil {
		if err := d.fleet.Close(); err != nil {
			errs = append(errs, fmt.Errorf("simulated CPEs: %w", err))
		}
	}
	if err := d.edgeR.stop(); err != nil {
		errs = append(errs, fmt.Errorf("edge %s: %w", devEdgeID, err))
	}
	if err := d.coreR.stop(); err != nil {
		errs = append(errs, fmt.Errorf("core %s: %w", devCoreID, err))
	}
	return errors.Join(errs...)
}

// failed reports the core or the edge having stopped by itself.
func (d *devSystem) failed() error {
	for _, r := range []struct {
		what string
		r    *bgRun
	}{{"core " + devCoreID, d.coreR}, {"edge " + devEdgeID, d.edgeR}} {
		if r.r == nil {
			continue
		}
		select {
		case <-r.r.done:
			if r.r.err != nil {
				return fmt.Errorf("%s stopped: %w", r.what, r.r.err)
			}
			return fmt.Errorf("%s stopped", r.what)
		default:
		}
	}
	return nil
}

// waitUntil polls cond until it holds, ctx ends (ctx.Err) or a component
// fails.
func (d *devSystem) waitUntil(ctx context.Context, cond func() (bool, error), progress func()) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	nextProgress := time.Now().Add(devProgressEvery)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if err := d.failed(); err != nil {
			return err
		}
		if progress != nil && time.Now().After(nextProgress) {
			progress()
			nextProgress = time.Now().Add(devProgressEvery)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// startDevSystem starts every component, in order; on failure it stops
// what it started.
func startDevSystem(ctx context.Context, o devOptions, log *slog.Logger) (_ *devSystem, err error) {
	d := &devSystem{opts: o, log: log}
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	caDir := filepath.Join(o.data, "ca")
	if err := ensureDevCA(caDir); err != nil {
		return nil, fmt.Errorf("cluster CA in %s: %w", caDir, err)
	}

	// The simulated fleet is built first: a bad --model fails before
	// anything runs. Its ACS URL needs the CWMP port, so port 0 is
	// resolved to a free one now.
	if o.sims > 0 {
		if d.acsURL, d.opts.cwmpAddr, err = devACSURL(o.cwmpAddr); err != nil {
			return nil, err
		}
		o = d.opts
		d.fleet, err = sim.New(sim.Config{
			ACSURL: d.acsURL, Count: o.sims, Model: o.model, Seed: 1, DownloadFaultRate: o.dlFaultRate,
			Username: o.cpeUsername, Password: o.cpePassword, PoolConnections: true, Logger: log,
		})
		if err != nil {
			if errors.Is(err, sim.ErrBadConfig) || errors.Is(err, sim.ErrUnknownModel) {
				return nil, cli.Exit("edgeacs dev: "+err.Error(), 2)
			}
			return nil, fmt.Errorf("simulated CPEs: %w", err)
		}
	}

	ccfg := core.DefaultConfig()
	ccfg.ID, ccfg.DataDir, ccfg.CADir = devCoreID, filepath.Join(o.data, "core"), caDir
	ccfg.RaftAddr, ccfg.APIAddr, ccfg.SyncAddr = o.raftAddr, o.apiAddr, o.syncAddr
	ccfg.Bootstrap = true // a node with raft state never bootstraps again
	// One voter has no peer to wait for: elect it quickly.
	ccfg.HeartbeatTimeout, ccfg.ElectionTimeout, ccfg.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
	// Raft warns of each election it starts, which a lone voter does at
	// every start: only its errors are news here.
	ccfg.RaftLogLevel = "error"
	if d.core, err = newCoreWithSync(ccfg, log); err != nil {
		return nil, fmt.Errorf("core %s: %w", devCoreID, addrHint(err))
	}
	d.coreR = goRun(d.core.Run)
	// The Raft address is in the cluster's configuration from now on:
	// remember it even if the edge fails to start.
	if err := d.saveState(); err != nil {
		return nil, err
	}
	// The edge starts once the core leads and has its admin token: an edge
	// dialing a core with no leader yet is refused (and says so in the log).
	if err := d.waitLeader(ctx); err != nil {
		return nil, err
	}
	if err := d.writeCLIConfig(ctx); err != nil {
		return nil, err
	}

	ecfg := edge.Config{
		ID: devEdgeID, DataDir: filepath.Join(o.data, "edge"),
		CWMPAddr: o.cwmpAddr, APIAddr: o.edgeAPIAddr, STUNAddr: o.stunAddr,
		CPEAuth: edge.AuthDigest, Username: o.cpeUsername, Password: o.cpePassword,
		Core: []string{d.core.SyncAddr()}, CADir: caDir,
	}
	ecfg.SetDefaults()
	if err := ecfg.Validate(); err != nil {
		return nil, cli.Exit("edgeacs dev: "+err.Error(), 2)
	}
	if d.edge, d.link, err = newEdgeNode(ecfg, log); err != nil {
		return nil, fmt.Errorf("edge %s: %w", devEdgeID, err)
	}
	d.edgeR = goRun(d.edge.Run)
	select {
	case <-d.edge.Ready():
	case <-d.edgeR.done:
		return nil, fmt.Errorf("edge %s: %w", devEdgeID, addrHint(d.edgeR.err))
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	if err := d.saveState(); err != nil {
		return nil, err
	}
	return d, nil
}

// saveState writes dev.yaml with the addresses bound so far; the edge's
// are its options until it runs.
func (d *devSystem) saveState() error {
	o := d.opts
	st := devState{RaftAddr: d.core.node.RaftAddr(), SyncAddr: d.core.SyncAddr(), CPEUsername: o.cpeUsername, CPEPassword: o.cpePassword}
	if d.edge != nil {
		ea := d.edge.Addrs()
		st.STUNAddr, st.EdgeAPIAddr = ea.STUN, ea.API
	}
	if st.STUNAddr == "" && o.stunAddr != devFreePort {
		st.STUNAddr = o.stunAddr
	}
	if st.EdgeAPIAddr == "" && o.edgeAPIAddr != devFreePort {
		st.EdgeAPIAddr = o.edgeAPIAddr
	}
	return writeDevState(filepath.Join(o.data, devStateName), st)
}

// waitLeader waits until the single voter has elected itself.
func (d *devSystem) waitLeader(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, devLeaderWait)
	defer cancel()
	err := d.waitUntil(wctx, func() (bool, error) { return d.core.node.IsLeader(), nil }, nil)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("core %s is not leader after %v", devCoreID, devLeaderWait)
	}
	return err
}

// devACSURL is the CWMP URL the simulated CPEs inform, and the listen
// address with port 0 replaced by a free port.
func devACSURL(cwmpAddr string) (url, listen string, err error) {
	host, port, err := net.SplitHostPort(cwmpAddr)
	if err != nil {
		return "", "", cli.Exit(fmt.Sprintf("edgeacs dev: --cwmp-addr %q: want HOST:PORT", cwmpAddr), 2)
	}
	if port == "0" {
		ln, err := net.Listen("tcp", cwmpAddr)
		if err != nil {
			return "", "", fmt.Errorf("--cwmp-addr %s: %w", cwmpAddr, err)
		}
		cwmpAddr = ln.Addr().String()
		ln.Close()
		_, port, _ = net.SplitHostPort(cwmpAddr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/", cwmpAddr, nil
}

// addrHint adds what to do to an "address already in use" error.
func addrHint(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w (is another edgeacs dev running? pick other ports with --api-addr, --cwmp-addr and the other address flags)", err)
	}
	return err
}

// writeCLIConfig waits for the core's admin token (made on the first
// start, kept after) and writes <data>/cli.yaml with it and the API URL.
func (d *devSystem) writeCLIConfig(ctx context.Context) error {
	path := d.core.node.AdminTokenPath()
	var token string
	wctx, cancel := context.WithTimeout(ctx, devAdminTokenWait)
	defer cancel()
	err := d.waitUntil(wctx, func() (bool, error) {
		b, err := os.ReadFile(path)
		token = strings.TrimSpace(string(b))
		return err == nil && token != "", nil
	}, nil)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("no admin token in %s after %v: the core did not make one (if the file was deleted, its token still exists; revoke it and remove %s to start afresh)",
			path, devAdminTokenWait, filepath.Join(d.opts.data, "core"))
	case err != nil:
		return err
	}
	b, err := yaml.Marshal(cliConfig{API: "http://" + d.core.node.APIAddr(), Token: token})
	if err != nil {
		return fmt.Errorf("encode %s: %w", cliConfigName, err)
	}
	head := "# edgeacs dev writes this at every start: the core API and its admin token.\n" +
		"# Fleet commands run in the folder above read it (or give --config this file).\n"
	return tokenfile.Write(filepath.Join(d.opts.data, cliConfigName), append([]byte(head), b...))
}

// waitReady starts the simulated CPEs and waits until the edge's link is
// up and every CPE's device is at the core with an Inform of this run:
// the CPE informed the edge, and the link carried it to the core.
func (d *devSystem) waitReady(ctx context.Context) error {
	start := time.Now()
	pending := map[string]bool{}
	if d.fleet != nil {
		for i := range d.fleet.Len() {
			pending[d.fleet.Device(i).ID()] = true
		}
		// The CPEs bootstrap only once the edge has the core's presets: a
		// device whose first session ran before them got no
		// connection-request credentials (the default inform preset sets
		// them), and could not be woken until its next periodic Inform.
		if err := d.waitUntil(ctx, d.edgeHasPresets, func() {
			d.log.Info("waiting for the edge to receive the core's presets")
		}); err != nil {
			return err
		}
		if err := d.fleet.Start(context.Background()); err != nil {
			return fmt.Errorf("simulated CPEs: %w", err)
		}
	}
	fsm := d.core.node.FSM()
	total := len(pending)
	return d.waitUntil(ctx, func() (bool, error) {
		for id := range pending {
			if dev, err := fsm.Device(id, false); err == nil && !dev.LastInform.Before(start) {
				delete(pending, id)
			}
		}
		return len(pending) == 0 && d.link.Status().Connected, nil
	}, func() {
		st := d.link.Status()
		d.log.Info("waiting for the simulated CPEs to inform and reach the core", "at_core", total-len(pending), "cpes", total,
			"link_connected", st.Connected, "link_error", st.LastError)
	})
}

// edgeHasPresets reports whether the edge holds every preset the core has
// (the default ones once the core seeded them).
func (d *devSystem) edgeHasPresets() (bool, error) {
	fsm := d.core.node.FSM()
	if !fsm.PresetsSeeded() {
		return false, nil
	}
	want, err := fsm.Presets()
	if err != nil {
		return false, fmt.Errorf("core presets: %w", err)
	}
	have, err := d.edge.Cache().Presets()
	if err != nil {
		return false, fmt.Errorf("edge presets: %w", err)
	}
	names := make(map[string]bool, len(have))
	for _, p := range have {
		names[p.Name] = true
	}
	for _, p := range want {
		if !names[p.Name] {
			return false, nil
		}
	}
	return true, nil
}

// printReady tells the user where everything is and what to type.
func (d *devSystem) printReady(w io.Writer, took time.Duration) {
	o, ea := d.opts, d.edge.Addrs()
	data := displayPath(o.data)
	bin := typedCommand(os.Args[0])
	fmt.Fprintf(w, "\nedgeacs dev is ready (%.1fs): core %s (one voter) ← QUIC sync ← edge %s", took.Seconds(), devCoreID, devEdgeID)
	if d.fleet != nil {
		fmt.Fprintf(w, " ← %d simulated CPEs (%s)", d.fleet.Len(), o.model)
	}
	fmt.Fprintf(w, "\n\n")
	rows := [][2]string{
		{"core API", "http://" + d.core.node.APIAddr() + "   (URL and admin token in " + filepath.Join(data, cliConfigName) + ")"},
		{"console", "http://" + d.core.node.APIAddr() + "/console/   (web console: sign in with the admin token in " + filepath.Join(data, cliConfigName) + ")"},
		{"CWMP", "http://" + ea.CWMP + "/   (CPEs: digest auth, credentials in " + filepath.Join(data, devStateName) + ")"},
		{"edge API", "http://" + ea.API},
		{"raft", d.core.node.RaftAddr()},
		{"sync", d.core.SyncAddr() + " (QUIC)"},
		{"STUN", ea.STUN},
		{"data", data + string(filepath.Separator) + "   (ca/, core/, edge/, cli.yaml, dev.yaml)"},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-9s %s\n", r[0], r[1])
	}
	fmt.Fprintf(w, "\nTry, in another terminal in this folder:\n\n")
	if filepath.Clean(o.data) != filepath.Clean(defaultDevData) {
		// Only ./data/cli.yaml is found without being named.
		abs, err := filepath.Abs(filepath.Join(o.data, cliConfigName))
		if err != nil {
			abs = filepath.Join(o.data, cliConfigName)
		}
		fmt.Fprintf(w, "  export %s=%s\n", cliConfigEnv, abs)
	}
	cmds := []string{"devices list"}
	if d.fleet != nil {
		dev := d.fleet.Device(0)
		root := dev.Root()
		ssid := root + "LANDevice.1.WLANConfiguration.1.SSID"
		if root == "Device." {
			ssid = "Device.WiFi.SSID.1.SSID"
		}
		cmds = append(cmds,
			"get "+dev.ID()+" "+root+"DeviceInfo.SoftwareVersion",
			"set "+dev.ID()+" "+ssid+"=hello-edgeacs")
	}
	cmds = append(cmds, "edges list", "cluster status")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %s %s\n", bin, c)
	}
	fmt.Fprintf(w, "\nCtrl-C stops everything; running it again reuses %s.\n", data)
}

// typedCommand is how to type the command that was run as arg0 again,
// from the same folder: a path stays a path ("./edgeacs" is not
// "edgeacs", which the shell looks up in PATH), a bare name stays a name.
func typedCommand(arg0 string) string {
	p := filepath.Clean(arg0)
	if strings.ContainsRune(arg0, filepath.Separator) && !strings.ContainsRune(p, filepath.Separator) {
		return "." + string(filepath.Separator) + p
	}
	return p
}

// displayPath shows p relative to the working directory when it is below
// it, as the user would type it.
func displayPath(p string) string {
	if rel, err := filepath.Rel(".", p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

func runDev(c *cli.Context) error {
	log := slog.Default()
	o, err := devOptionsFromFlags(c, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	d, err := startDevSystem(ctx, o, log)
	if err != nil {
		return devExit(ctx, err)
	}
	err = d.waitReady(ctx)
	if err == nil {
		d.printReady(c.App.Writer, time.Since(began))
		err = d.waitUntil(ctx, func() (bool, error) { return false, nil }, nil)
	}
	// From here a second Ctrl-C kills the process at once.
	stop()
	if ctx.Err() != nil {
		log.Info("stopping: the simulated CPEs, then the edge, then the core")
	}
	if serr := d.stop(); serr != nil {
		if devExit(ctx, err) == nil {
			err = serr
		} else {
			err = fmt.Errorf("%w; and stopping: %v", err, serr)
		}
	}
	return devExit(ctx, err)
}

// devExit maps the outcome to the exit: a stop by signal (ctx's error) is
// a clean exit, a usage error keeps its code 2, anything else is 1.
func devExit(ctx context.Context, err error) error {
	var ec cli.ExitCoder
	switch {
	case err == nil, ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil
	case errors.As(err, &ec):
		return err
	}
	return cli.Exit("edgeacs dev: "+strings.ReplaceAll(err.Error(), "\n", "; "), 1)
}

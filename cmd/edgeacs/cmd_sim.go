package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/edgeacs/edgeacs/internal/hugepages"
	"github.com/edgeacs/edgeacs/sim"
	"github.com/urfave/cli/v2"
)

func init() { registerCommand(simCommand()) }

func simCommand() *cli.Command {
	return &cli.Command{
		Name:  "sim",
		Usage: "run N simulated TR-098/TR-181 CPEs against an ACS",
		Description: "Each device informs with 0 BOOTSTRAP + 1 BOOT, then periodically, answers every CPE RPC,\n" +
			"and accepts digest-authenticated connection requests on --cr-addr at /<serial>.\n" +
			"A live line goes to stderr every second with --stats (or on a terminal); a summary goes\n" +
			"to stdout when --duration elapses or on SIGINT.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "acs", Usage: "ACS URL (http or https), required"},
			&cli.IntFlag{Name: "count", Value: 1, Usage: "number of devices"},
			&cli.StringFlag{Name: "model", Value: sim.ModelTR098, Usage: "data model: tr098, tr181, voip (a SIP adapter), mixed (tr098 and tr181 alternating) or a comma-separated rotation such as tr098,tr181,voip"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed for serial numbers, MACs and other values"},
			&cli.Float64Flag{Name: "download-fault-rate", Usage: "share (0..1) of the devices, picked by seed and serial, that fail every firmware download with 9010"},
			&cli.DurationFlag{Name: "inform-interval", Usage: "periodic inform interval (default: the template's 300s)"},
			&cli.StringFlag{Name: "cr-addr", Value: "127.0.0.1:0", Usage: "HTTP connection-request listener, shared by all devices"},
			&cli.StringFlag{Name: "udp-cr-addr", Usage: "UDP (TR-111) connection-request socket; empty disables"},
			&cli.StringFlag{Name: "stun-server", Usage: "STUN server host:port to learn the UDP binding (needs --udp-cr-addr)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (default: until SIGINT)"},
			&cli.StringFlag{Name: "username", Usage: "ACS username for every device (default: each device's own)"},
			&cli.StringFlag{Name: "password", Usage: "ACS password for every device"},
			&cli.BoolFlag{Name: "stats", Usage: "print a live line every second to stderr"},
			&cli.BoolFlag{Name: "insecure", Usage: "do not verify the ACS's TLS certificate"},
			&cli.StringFlag{Name: "ca-file", Usage: "PEM CA bundle trusted for the ACS and file servers"},
			&cli.DurationFlag{Name: "ramp", Usage: "spread the first informs over this long (default: 1s per 1000 devices)"},
			&cli.Float64Flag{Name: "time-scale", Value: 1, Usage: "multiply retry back-off and scheduled delays (0.01 = 100x faster)"},
			&cli.DurationFlag{Name: "reboot-delay", Value: time.Second, Usage: "how long a reboot keeps a device offline"},
			&cli.BoolFlag{Name: "single-source", Usage: "connect every device from one address even to an ACS on loopback (by default, on Linux, each device there connects from its own 127.x.y.z, as CPEs come from their own addresses: one address's ephemeral ports run out past ~470 new connections a second)"},
			&cli.BoolFlag{Name: "pool-conns", Usage: "share keep-alive connections across devices (faster; not for ACSes keying sessions by TCP connection)"},
			&cli.IntFlag{Name: "max-connecting", Usage: "devices (per process) opening a session at once, the rest waiting to start: keeps the sessions under way moving when the simulator cannot keep up with its own flood (0: no bound)"},
			&cli.IntFlag{Name: "offset", Usage: "index of the first device; serial numbers, MACs and passwords derive from --seed and the index, so runs with disjoint ranges simulate disjoint devices (split a fleet over machines)"},
			&cli.IntFlag{Name: "processes", Value: 1, Usage: "split the devices over N child processes (each its share of --count at its own --offset, its own file descriptors and connection-request listener: port+i when --cr-addr/--udp-cr-addr name a port); their statistics are merged"},
			&cli.BoolFlag{Name: "booted", Usage: "the devices have bootstrapped with this ACS before (the simulator restarts against an ACS that holds them): the first Inform carries 1 BOOT, not 0 BOOTSTRAP"},
			&cli.BoolFlag{Name: "huge-pages", Value: true, Usage: "ask Linux for transparent huge pages for the heap where the system leaves them to each process (transparent_hugepage \"madvise\"): a simulator churns memory, and page faults are dear in a virtual machine"},
			&cli.BoolFlag{Name: "stats-json", Hidden: true, Usage: "write the statistics as a JSON line every second and at the end, on stdout (the children of --processes)"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return cli.Exit("edgeacs sim: "+err.Error(), 2)
		},
		Action: func(c *cli.Context) error {
			cfg, err := simConfigFromFlags(c)
			if err != nil {
				return cli.Exit("edgeacs sim: "+err.Error(), 2)
			}
			cfg.DownloadFaultRate = c.Float64("download-fault-rate")
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			live := c.Bool("stats") || isTerminal(os.Stderr)
			if n := c.Int("processes"); n > 1 {
				return runSimProcesses(ctx, c, cfg, n, live)
			}
			// In a split fleet the first child to bind the address has it.
			startPprof(ctx, slog.Default())
			if c.Bool("huge-pages") {
				hugepages.Start(ctx, simHeapReserve(cfg.Count), slog.Default())
			}
			if c.Bool("stats-json") {
				return runSimJSON(ctx, cfg, c.Duration("duration"), c.App.Writer)
			}
			return runSim(ctx, cfg, c.Duration("duration"), live, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// simConfigFromFlags checks the flags that sim.New cannot (it sees only
// values) and builds the fleet configuration.
func simConfigFromFlags(c *cli.Context) (sim.Config, error) {
	if c.NArg() > 0 {
		return sim.Config{}, fmt.Errorf("unexpected arguments %q", c.Args().Slice())
	}
	if c.String("acs") == "" {
		return sim.Config{}, errors.New("--acs is required")
	}
	if c.Duration("duration") < 0 {
		return sim.Config{}, fmt.Errorf("--duration %s is negative", c.Duration("duration"))
	}
	if c.Float64("time-scale") <= 0 {
		return sim.Config{}, fmt.Errorf("--time-scale %v must be positive", c.Float64("time-scale"))
	}
	if (c.String("username") == "") != (c.String("password") == "") {
		return sim.Config{}, errors.New("--username and --password go together")
	}
	if n := c.Int("processes"); n < 1 || (c.Int("count") >= 1 && n > c.Int("count")) {
		return sim.Config{}, fmt.Errorf("--processes %d must be between 1 and --count (%d)", n, c.Int("count"))
	}
	if c.Int("max-connecting") < 0 {
		return sim.Config{}, fmt.Errorf("--max-connecting %d is negative", c.Int("max-connecting"))
	}
	if c.Int("offset") < 0 {
		return sim.Config{}, fmt.Errorf("--offset %d is negative", c.Int("offset"))
	}
	ramp := c.Duration("ramp")
	if c.IsSet("ramp") && ramp == 0 {
		ramp = -1 // explicitly no ramp
	}
	return sim.Config{
		ACSURL:          c.String("acs"),
		Count:           c.Int("count"),
		Offset:          c.Int("offset"),
		Model:           c.String("model"),
		Seed:            c.Int64("seed"),
		InformInterval:  c.Duration("inform-interval"),
		CRAddr:          c.String("cr-addr"),
		UDPCRAddr:       c.String("udp-cr-addr"),
		STUNServer:      c.String("stun-server"),
		Username:        c.String("username"),
		Password:        c.String("password"),
		Insecure:        c.Bool("insecure"),
		CAFile:          c.String("ca-file"),
		Ramp:            ramp,
		TimeScale:       c.Float64("time-scale"),
		RebootDelay:     c.Duration("reboot-delay"),
		PoolConnections: c.Bool("pool-conns"),
		MaxConnecting:   c.Int("max-connecting"),
		SingleSource:    c.Bool("single-source"),
		Booted:          c.Bool("booted"),
	}, nil
}

// runSim runs the fleet until ctx ends or duration elapses, printing live
// lines to errw and the summary to out.
func runSim(ctx context.Context, cfg sim.Config, duration time.Duration, live bool, out, errw io.Writer) error {
	f, ctx, start, stop, err := startSim(ctx, cfg, duration, nil)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(errw, "edgeacs sim: %d %s devices → %s; connection requests at http://%s/<serial>\n",
		f.Len(), cfg.Model, cfg.ACSURL, f.ConnectionRequestAddr())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last sim.Stats
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			if live {
				st := f.Stats()
				fmt.Fprintf(errw, "%6.0fs  sessions %d (%d/s)  errors %d  busy %d  faults %d  CRs %d  p99 %s\n",
					time.Since(start).Seconds(), st.SessionsCompleted, st.SessionsCompleted-last.SessionsCompleted,
					st.SessionErrors, st.SessionsBusy, st.Faults, st.ConnectionRequests, st.SessionP99.Round(time.Microsecond))
				last = st
			}
		}
	}
	elapsed := time.Since(start)
	if err := f.Close(); err != nil {
		fmt.Fprintf(errw, "edgeacs sim: close: %v\n", err)
	}
	printSimSummary(out, f.Stats(), elapsed)
	return nil
}

// startSim builds cfg's fleet and starts it, for runSim and runSimJSON.
// The fleet runs until runCtx ends: when ctx does or, if duration > 0,
// after it; start is when it started. A bad configuration is a usage
// error (exit 2). built, if not nil, runs between building the fleet
// and starting it; its error is returned. The caller defers stop (it
// cancels runCtx and closes the fleet; closing again before it is
// harmless).
func startSim(ctx context.Context, cfg sim.Config, duration time.Duration, built func(*sim.Fleet) error) (f *sim.Fleet, runCtx context.Context, start time.Time, stop func(), err error) {
	// Building a fleet allocates what it keeps (every device's tree): a
	// collection meanwhile finds almost nothing to free, and a fleet of
	// 50,000 went through a dozen, each marking every device built so far.
	gc := debug.SetGCPercent(-1)
	f, err = sim.New(cfg)
	debug.SetGCPercent(gc)
	if err != nil {
		if errors.Is(err, sim.ErrBadConfig) || errors.Is(err, sim.ErrUnknownModel) {
			return nil, nil, time.Time{}, nil, cli.Exit("edgeacs sim: "+err.Error(), 2)
		}
		return nil, nil, time.Time{}, nil, fmt.Errorf("start simulator: %w", err)
	}
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, duration)
	}
	stop = func() {
		cancel()
		f.Close()
	}
	if built != nil {
		if err := built(f); err != nil {
			stop()
			return nil, nil, time.Time{}, nil, err
		}
	}
	start = time.Now()
	if err := f.Start(runCtx); err != nil {
		stop()
		return nil, nil, time.Time{}, nil, fmt.Errorf("start simulator: %w", err)
	}
	return f, runCtx, start, stop, nil
}

// printSimSummary writes the end-of-run report.
func printSimSummary(w io.Writer, st sim.Stats, elapsed time.Duration) {
	secs := max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "devices:             %d\n", st.Devices)
	fmt.Fprintf(w, "duration:            %s\n", elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "sessions completed:  %d (%.1f/s)\n", st.SessionsCompleted, float64(st.SessionsCompleted)/secs)
	fmt.Fprintf(w, "sessions started:    %d, failed %d, retries %d\n", st.SessionsStarted, st.SessionErrors, st.Retries)
	fmt.Fprintf(w, "refused busy (503):  %d (retried after the ACS's Retry-After)\n", st.SessionsBusy)
	fmt.Fprintf(w, "session time:        p50 %s  p99 %s\n", st.SessionP50.Round(time.Microsecond), st.SessionP99.Round(time.Microsecond))
	fmt.Fprintf(w, "CPE faults answered: %d\n", st.Faults)
	fmt.Fprintf(w, "connection requests: %d\n", st.ConnectionRequests)
	fmt.Fprintf(w, "inform events:       %s\n", formatCounts(st.Events))
	fmt.Fprintf(w, "ACS RPCs:            %s\n", formatCounts(st.RPCs))
}

func formatCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// isTerminal reports whether f is a character device (a TTY).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// simHeapReserve is how much heap a simulator of count devices sets aside
// for huge pages (hugepages.Reserve): ~40 KiB a device, what a process of
// 25,000 peaked at in a storm, between 64 MiB and 8 GiB. It is address
// space: memory is used only as the heap grows into it.
func simHeapReserve(count int) int {
	return min(max(count*40<<10, 64<<20), 8<<30)
}

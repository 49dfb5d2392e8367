package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/sim"
)

// One process holds a few tens of thousands of simulated CPEs: each
// session in flight is a socket, and a process's file-descriptor limit
// (often 20,000 or less) caps how many can wait on a slow ACS at once; a
// single Go heap also makes every garbage collection scan the whole
// fleet. --processes re-runs this binary as N children, each with its
// share of the serial range (--offset), and merges their statistics,
// which each writes as a JSON line a second (--stats-json).

// simChildFlags are the flags --processes sets per child rather than
// passing on.
var simChildFlags = map[string]bool{
	"count": true, "offset": true, "processes": true, "cr-addr": true, "udp-cr-addr": true,
	"stats": true, "stats-json": true,
}

// runSimProcesses runs the fleet as n child processes until they end (their
// --duration) or ctx does, printing merged live lines to stderr and the
// merged summary to stdout.
func runSimProcesses(ctx context.Context, c *cli.Context, cfg sim.Config, n int, live bool) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("simulator processes: %w", err)
	}
	var common []string
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if simChildFlags[name] || !c.IsSet(name) {
			continue
		}
		common = append(common, fmt.Sprintf("--%s=%v", name, c.Value(name)))
	}
	crAddr, udpAddr := c.String("cr-addr"), c.String("udp-cr-addr")
	// The children's stderr and the live lines share the writer: one lock
	// keeps their lines whole (and a bytes.Buffer in tests intact).
	errw := &lockedWriter{w: c.App.ErrWriter}
	var mu sync.Mutex
	children := make([]*simChild, n)
	var readers sync.WaitGroup
	start := time.Now()
	for i := range n {
		lo, hi := cfg.Count*i/n, cfg.Count*(i+1)/n
		args := append([]string{"sim"}, common...)
		args = append(args, "--stats-json", "--count="+strconv.Itoa(hi-lo), "--offset="+strconv.Itoa(cfg.Offset+lo))
		cr, err := nthAddr(crAddr, i)
		if err != nil {
			return cli.Exit("edgeacs sim: --cr-addr: "+err.Error(), 2)
		}
		args = append(args, "--cr-addr="+cr)
		if udpAddr != "" {
			udp, err := nthAddr(udpAddr, i)
			if err != nil {
				return cli.Exit("edgeacs sim: --udp-cr-addr: "+err.Error(), 2)
			}
			args = append(args, "--udp-cr-addr="+udp)
		}
		cmd := exec.Command(exe, args...)
		cmd.Stderr = errw
		out, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("simulator process %d: %w", i, err)
		}
		if err := cmd.Start(); err != nil {
			stopChildren(children[:i])
			return fmt.Errorf("simulator process %d: %w", i, err)
		}
		ch := &simChild{cmd: cmd}
		children[i] = ch
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				var st sim.Stats
				if json.Unmarshal(sc.Bytes(), &st) != nil {
					continue
				}
				mu.Lock()
				ch.last, ch.seen = st, true
				mu.Unlock()
			}
			_, _ = io.Copy(io.Discard, out)
		}()
	}
	fmt.Fprintf(errw, "edgeacs sim: %d %s devices in %d processes → %s\n", cfg.Count, cfg.Model, n, cfg.ACSURL)

	merged := func() sim.Stats {
		mu.Lock()
		defer mu.Unlock()
		var m sim.Stats
		for _, ch := range children {
			m = m.Merge(ch.last)
		}
		return m
	}
	waited := make(chan error, 1)
	go func() {
		var first error
		for i, ch := range children {
			if err := ch.cmd.Wait(); err != nil && first == nil {
				first = fmt.Errorf("simulator process %d: %w", i, err)
			}
		}
		waited <- first
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last sim.Stats
	var werr error
	for done := false; !done; {
		select {
		case <-ctx.Done():
			stopChildren(children)
			werr = <-waited
			done = true
		case werr = <-waited:
			done = true
		case <-tick.C:
			if live {
				st := merged()
				fmt.Fprintf(errw, "%6.0fs  sessions %d (%d/s)  errors %d  faults %d  CRs %d  p99 %s\n",
					time.Since(start).Seconds(), st.SessionsCompleted, st.SessionsCompleted-last.SessionsCompleted,
					st.SessionErrors, st.Faults, st.ConnectionRequests, st.SessionP99.Round(time.Microsecond))
				last = st
			}
		}
	}
	readers.Wait()
	elapsed := time.Since(start)
	printSimSummary(c.App.Writer, merged(), elapsed)
	mu.Lock()
	for i, ch := range children {
		if !ch.seen && werr == nil {
			werr = fmt.Errorf("simulator process %d reported no statistics", i)
		}
	}
	mu.Unlock()
	var exit *exec.ExitError
	if errors.As(werr, &exit) && exit.ExitCode() == 2 {
		return cli.Exit("edgeacs sim: "+werr.Error(), 2)
	}
	return werr
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// simChild is one process of --processes and the last statistics it
// wrote.
type simChild struct {
	cmd  *exec.Cmd
	last sim.Stats
	seen bool
}

// stopChildren asks each started child to stop as SIGINT does (they print
// their last statistics and exit), or kills it where there is no SIGINT.
func stopChildren(children []*simChild) {
	for _, ch := range children {
		if ch == nil || ch.cmd.Process == nil {
			continue
		}
		if err := ch.cmd.Process.Signal(os.Interrupt); err != nil {
			_ = ch.cmd.Process.Kill()
		}
	}
}

// nthAddr returns the address child i listens on: addr itself when its
// port is 0 (each picks a free one), else port+i.
func nthAddr(addr string, i int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+i > 65535 {
		return "", fmt.Errorf("bad port in %q", addr)
	}
	if p == 0 {
		return addr, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+i)), nil
}

// runSimJSON is runSim for a child of --processes: no banner, no live
// lines; the statistics as a JSON line every second and once at the end.
func runSimJSON(ctx context.Context, cfg sim.Config, duration time.Duration, out io.Writer) error {
	enc := json.NewEncoder(out)
	// A first line as the fleet starts: its ramp begins now (the storm
	// benchmark times the storm from it, not from the process's start,
	// which building 50,000 devices delays by seconds).
	f, ctx, _, stop, err := startSim(ctx, cfg, duration, func(f *sim.Fleet) error {
		if err := enc.Encode(f.Stats()); err != nil {
			return fmt.Errorf("write statistics: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			if err := enc.Encode(f.Stats()); err != nil {
				return fmt.Errorf("write statistics: %w", err)
			}
		}
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "edgeacs sim: close: %v\n", err)
	}
	return enc.Encode(f.Stats())
}

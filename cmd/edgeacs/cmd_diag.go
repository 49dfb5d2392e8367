package main

// edgeacs diag: the CPE's own diagnostics (ping, traceroute, a TR-143
// speed test, nslookup) as device operations. Each is one task that runs
// across two sessions (the request, then the results the CPE reports with
// 8 DIAGNOSTICS COMPLETE), so the default --timeout is longer than the
// other operations'. Results print as the Unix tools print theirs.

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

func init() { registerCommand(diagCommand()) }

// diagTimeout is the diag commands' default --timeout: a ping or trace
// takes seconds, a speed test on a slow line a minute or more.
const diagTimeout = 2 * time.Minute

func diagCommand() *cli.Command {
	const dev = "00D09E-HG2000-ESG0001"
	ops := []opCommand{
		{
			name: "ping", usage: "make the device ping a host (IPPing diagnostic)",
			args: "HOST", minArgs: 1, maxArgs: 1,
			example: "edgeacs diag ping " + dev + " 8.8.8.8 --count 10",
			flags:   []cli.Flag{&cli.UintFlag{Name: "count", Value: 4, Usage: "echo requests to send (1-100)"}},
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				n, err := diagCount(c, "count")
				return client.TaskRequest{Name: fleet.TaskPing, Host: args[0], Count: n}, err
			},
			show: showDiagnostic,
		},
		{
			name: "traceroute", usage: "make the device trace the route to a host (TraceRoute diagnostic)",
			args: "HOST", minArgs: 1, maxArgs: 1,
			example: "edgeacs diag traceroute " + dev + " example.com --max-hops 20",
			flags: []cli.Flag{
				&cli.UintFlag{Name: "max-hops", Value: 30, Usage: "give up after this many hops (1-64)"},
				&cli.UintFlag{Name: "tries", Value: 3, Usage: "probes per hop (1-100)"},
			},
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				n, err := diagCount(c, "tries")
				if err != nil {
					return client.TaskRequest{}, err
				}
				h := c.Uint("max-hops")
				if h < 1 || h > 64 {
					return client.TaskRequest{}, usageErr(c, "--max-hops must be 1-64")
				}
				return client.TaskRequest{Name: fleet.TaskTraceRoute, Host: args[0], Count: n, MaxHopCount: uint32(h)}, nil
			},
			show: showDiagnostic,
		},
		{
			name: "speedtest", usage: "make the device measure its throughput to a URL (TR-143 download, or --upload)",
			example: "edgeacs diag speedtest " + dev + " --url http://speed.example.net/10MB.bin\n" +
				"   edgeacs diag speedtest " + dev + " --url http://speed.example.net/upload --upload --size 5000000",
			flags: []cli.Flag{
				&cli.StringFlag{Name: "url", Usage: "the HTTP (or FTP) URL to download from, or to upload to with --upload (required)"},
				&cli.BoolFlag{Name: "upload", Usage: "measure the upload direction (UploadDiagnostics) instead"},
				&cli.UintFlag{Name: "size", Usage: "bytes to upload with --upload (default: the device's TestFileLength)"},
			},
			build: func(c *cli.Context, _ []string, _ *paramTypes) (client.TaskRequest, error) {
				u := strings.TrimSpace(c.String("url"))
				if u == "" {
					return client.TaskRequest{}, usageErr(c, "give --url")
				}
				if c.IsSet("size") && !c.Bool("upload") {
					return client.TaskRequest{}, usageErr(c, "--size is for --upload")
				}
				if c.Bool("upload") {
					return client.TaskRequest{Name: fleet.TaskUploadDiagnostics, URL: u, TestFileLength: uint32(c.Uint("size"))}, nil
				}
				return client.TaskRequest{Name: fleet.TaskDownloadDiagnostics, URL: u}, nil
			},
			show: showDiagnostic,
		},
		{
			name: "nslookup", usage: "make the device resolve a host name (NSLookup diagnostic, TR-181 devices)",
			args: "NAME", minArgs: 1, maxArgs: 1,
			example: "edgeacs diag nslookup " + dev + " www.example.org --server 9.9.9.9",
			flags: []cli.Flag{
				&cli.StringFlag{Name: "server", Usage: "DNS server to ask (default: the device's own)"},
				&cli.UintFlag{Name: "count", Value: 1, Usage: "lookups to make (1-100)"},
			},
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				n, err := diagCount(c, "count")
				return client.TaskRequest{Name: fleet.TaskNSLookup, Host: args[0], DNSServer: c.String("server"), Count: n}, err
			},
			show: showDiagnostic,
		},
	}
	var subs []*cli.Command
	for _, op := range ops {
		cmd := op.command()
		cmd.UsageText = strings.Replace(cmd.UsageText, "edgeacs "+op.name, "edgeacs diag "+op.name, 1)
		cmd.Description = strings.Replace(cmd.Description, "and exits 1.", "and exits 1; so does a\n"+
			"   diagnostic the CPE ended in an Error_ state, after what it found.", 1)
		for _, f := range cmd.Flags {
			if df, ok := f.(*cli.DurationFlag); ok && df.Name == "timeout" {
				df.Value = diagTimeout
			}
		}
		cmd.Action = diagAction(op)
		subs = append(subs, cmd)
	}
	return &cli.Command{
		Name:  "diag",
		Usage: "run the device's own diagnostics: ping, traceroute, speedtest, nslookup",
		Description: "Examples:\n   edgeacs diag ping " + dev + " acs.example.com\n" +
			"   edgeacs diag traceroute " + dev + " example.com\n" +
			"   edgeacs diag speedtest " + dev + " --url http://speed.example.net/10MB.bin\n\n" +
			"   The edge sets the test's parameters and DiagnosticsState=Requested, the CPE runs the test and\n" +
			"   reports 8 DIAGNOSTICS COMPLETE in a new session, and the edge reads the results. A CPE that\n" +
			"   never reports ends the task as fault diagnostics_timeout (the edge's diagnostics_timeout).",
		Subcommands: subs,
	}
}

// diagCount reads a 1-100 count flag.
func diagCount(c *cli.Context, name string) (uint32, error) {
	n := c.Uint(name)
	if n < 1 || n > 100 {
		return 0, usageErr(c, "--%s must be 1-100", name)
	}
	return uint32(n), nil
}

// diagAction is op.action for one device, printing what a diagnostic
// that ended in fault found before its fault (a trace's hops up to where
// it stopped).
func diagAction(op opCommand) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, help, err := commandArgs(c, false)
		if err != nil || help {
			return err
		}
		if len(args) == 0 {
			return usageErr(c, "give a device ID (see --help)")
		}
		dev, args := args[0], args[1:]
		switch {
		case len(args) < op.minArgs:
			return usageErr(c, "missing arguments: want %s", opArgsText(op, false))
		case op.maxArgs >= 0 && len(args) > op.maxArgs:
			return usageErr(c, "too many arguments: want %s", opArgsText(op, false))
		}
		if c.Duration("timeout") <= 0 {
			return usageErr(c, "--timeout must be positive")
		}
		req, err := op.build(c, args, nil)
		if err != nil {
			return err
		}
		cl, err := apiClient(c)
		if err != nil {
			return err
		}
		t, err := runTask(c, cl, dev, req)
		if c.Bool("async") || c.Bool("json") {
			if err == nil && c.Bool("json") && !c.Bool("async") {
				return printJSON(c.App.Writer, maskTask(t))
			}
			return err
		}
		if err != nil {
			// A trace that stopped still shows how far it got; other
			// tests that failed have nothing but their state to say.
			if t.Task != nil && t.Result != nil && t.Result.Diagnostic != nil &&
				t.Result.Diagnostic.TraceRoute != nil && len(t.Result.Diagnostic.TraceRoute.Hops) > 0 {
				op.show(c.App.Writer, dev, req, t)
			}
			return err
		}
		op.show(c.App.Writer, dev, req, t)
		if t.Result != nil && t.Result.Diagnostic != nil && t.Result.Diagnostic.Ping != nil && t.Result.Diagnostic.Ping.SuccessCount == 0 {
			// As ping(8): no reply at all is a failure.
			return cli.Exit("", 1)
		}
		return nil
	}
}

// showDiagnostic prints a diagnostic's result as ping(8), traceroute(8),
// nslookup(1) or a speed test would.
func showDiagnostic(w io.Writer, dev string, _ client.TaskRequest, t client.Task) {
	if t.Result == nil || t.Result.Diagnostic == nil {
		fmt.Fprintf(w, "%s: no results\n", dev)
		return
	}
	d := t.Result.Diagnostic
	switch {
	case d.Ping != nil:
		p := d.Ping
		sent := p.SuccessCount + p.FailureCount
		fmt.Fprintf(w, "PING %s from %s (%s)\n", p.Host, dev, d.Object)
		fmt.Fprintf(w, "--- %s ping statistics ---\n", p.Host)
		loss := 0.0
		if sent > 0 {
			loss = 100 * float64(p.FailureCount) / float64(sent)
		}
		fmt.Fprintf(w, "%d packets transmitted, %d received, %s%% packet loss\n", sent, p.SuccessCount,
			strconv.FormatFloat(loss, 'f', -1, 64))
		if p.SuccessCount > 0 {
			fmt.Fprintf(w, "rtt min/avg/max = %d/%d/%d ms\n", p.MinRTTms, p.AvgRTTms, p.MaxRTTms)
		}
	case d.TraceRoute != nil:
		r := d.TraceRoute
		fmt.Fprintf(w, "traceroute to %s from %s (%s), %d hops\n", r.Host, dev, d.Object, len(r.Hops))
		for i, h := range r.Hops {
			line := fmt.Sprintf("%2d  ", i+1)
			switch {
			case h.Host == "" && h.Address == "":
				line += "*"
			case h.Host == "" || h.Host == h.Address:
				line += h.Address
			default:
				line += h.Host + " (" + h.Address + ")"
			}
			if len(h.RTTimesMs) == 0 && (h.Host != "" || h.Address != "") {
				line += "  *"
			}
			for _, ms := range h.RTTimesMs {
				line += fmt.Sprintf("  %d ms", ms)
			}
			if len(h.RTTimesMs) == 0 && h.Host == "" && h.Address == "" {
				line += " * *"
			}
			if h.ErrorCode != 0 {
				line += fmt.Sprintf("  (ICMP error %d)", h.ErrorCode)
			}
			fmt.Fprintln(w, line)
		}
	case d.Transfer != nil:
		r := d.Transfer
		dir := "download from"
		if d.Kind == fleet.TaskUploadDiagnostics {
			dir = "upload to"
		}
		secs := r.EOMTime.Sub(r.BOMTime).Seconds()
		fmt.Fprintf(w, "%s %s by %s\n", dir, r.URL, dev)
		fmt.Fprintf(w, "%s in %.2f s = %.1f Mbit/s\n", byteSize(r.TestBytes), secs, float64(r.ThroughputBps)/1e6)
		if !r.TCPOpenRequestTime.IsZero() && !r.TCPOpenResponseTime.IsZero() {
			fmt.Fprintf(w, "TCP connect %d ms, request to first byte %d ms, %s on the wire\n",
				r.TCPOpenResponseTime.Sub(r.TCPOpenRequestTime).Milliseconds(), r.BOMTime.Sub(r.ROMTime).Milliseconds(),
				byteSize(r.TotalBytes))
		}
	case d.NSLookup != nil:
		r := d.NSLookup
		for i, a := range r.Answers {
			if i > 0 {
				fmt.Fprintln(w)
			}
			if a.DNSServerIP != "" {
				fmt.Fprintf(w, "Server:  %s\n", a.DNSServerIP)
			}
			if a.Status != "Success" {
				fmt.Fprintf(w, "** server can't find %s: %s (%d ms)\n", r.HostName, a.Status, a.ResponseTimeMs)
				continue
			}
			kind := "Authoritative answer"
			if a.AnswerType == "NonAuthoritative" {
				kind = "Non-authoritative answer"
			}
			fmt.Fprintf(w, "%s (%d ms):\n", kind, a.ResponseTimeMs)
			name := a.HostNameReturned
			if name == "" {
				name = r.HostName
			}
			for _, ip := range a.IPAddresses {
				fmt.Fprintf(w, "Name:    %s\nAddress: %s\n", name, ip)
			}
		}
		fmt.Fprintf(w, "%d of %d lookups succeeded\n", r.SuccessCount, len(r.Answers))
	default:
		fmt.Fprintf(w, "%s: %s diagnostic ended %s\n", dev, d.Kind, d.State)
	}
}

// byteSize is n in B, KiB, MiB or GiB.
func byteSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

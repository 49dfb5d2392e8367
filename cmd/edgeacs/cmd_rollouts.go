package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
)

func init() { registerCommand(rolloutsCommand()) }

func rolloutsCommand() *cli.Command {
	return &cli.Command{
		Name:  "rollouts",
		Usage: "roll a firmware file out to the fleet in waves, pausing on faults",
		Subcommands: []*cli.Command{
			resCommand("create", "start a firmware rollout", "NAME",
				"Selects the devices --filter matches now, leaves out those already on the file's version,\n"+
					"and splits the rest into waves (cumulative percents). The core's leader runs it: a wave\n"+
					"starts inside --window and once the previous wave ended and --soak passed; each device\n"+
					"gets a Download task (at most --per-edge downloading at once per edge) and counts as done\n"+
					"when it is seen on the new version. When a wave's faulted share exceeds --max-fault-rate\n"+
					"the rollout pauses itself and says why. The file must have been uploaded with --version.\n\n"+
					"--window is UTC, \"<cron>/<duration>\": \"0 2 * * */4h\" opens at 02:00 for 4 hours every day\n"+
					"(or a preset schedule, \"14400 0 2 * * *\"). --mode wake sends a connection request with\n"+
					"each task; next-inform waits for the device's next periodic inform.\n\n"+
					"Examples:\n"+
					"  edgeacs rollouts create fw-2.5 --file fw_v2.5.0.bin --filter 'DeviceID.ProductClass = \"HG-2000\"'\n"+
					"  edgeacs rollouts create fw-2.5 --file fw_v2.5.0.bin --filter true --waves 1,10,100 \\\n"+
					"      --max-fault-rate 0.02 --min-wave-size 10 --soak 30m --window '0 2 * * */4h' --per-edge 200",
				rolloutsCreate,
				&cli.StringFlag{Name: "file", Usage: "the firmware file (uploaded with --version)"},
				&cli.StringFlag{Name: "filter", Usage: "expression selecting the devices, as devices list --filter (\"true\": all)"},
				&cli.StringFlag{Name: "waves", Value: "1,10,100", Usage: "cumulative percents of the devices per wave, increasing, the last 100"},
				&cli.Float64Flag{Name: "max-fault-rate", Value: 0.02, Usage: "pause when a wave's faulted share exceeds this (0..1)"},
				&cli.IntFlag{Name: "min-wave-size", Value: 1, Usage: "each wave takes at least this many more devices than the one before"},
				&cli.StringFlag{Name: "soak", Value: "0s", Usage: "wait this long after a wave ends before the next starts"},
				&cli.StringFlag{Name: "window", Usage: "maintenance window, UTC, \"<cron>/<duration>\" (default: always)"},
				&cli.IntFlag{Name: "per-edge", Usage: "most devices of one edge downloading at once (0: no cap)"},
				&cli.StringFlag{Name: "mode", Value: "wake", Usage: "wake (connection request) or next-inform"},
				&cli.StringFlag{Name: "device-timeout", Value: "30m", Usage: "per device, from its task to being seen on the new version"},
			),
			resCommand("list", "list rollouts with their progress", "",
				"Examples:\n  edgeacs rollouts list\n  edgeacs rollouts list --json", rolloutsList),
			resCommand("status", "show a rollout: waves, edges, faults, devices by state", "NAME",
				"With --watch it follows the rollout, a progress bar per wave on a terminal (a line per\n"+
					"change elsewhere), until it is done, aborted or paused.\n\n"+
					"Examples:\n"+
					"  edgeacs rollouts status fw-2.5\n"+
					"  edgeacs rollouts status fw-2.5 --watch\n"+
					"  edgeacs rollouts status fw-2.5 --devices faulted",
				rolloutsStatus,
				&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "follow the rollout until it is done, aborted or paused"},
				&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "how often --watch asks"},
				&cli.StringFlag{Name: "devices", Usage: "also list the devices in this state (pending, downloading, notBack, done, faulted, cancelled)"},
			),
			rolloutAction("pause", "pause a rollout: no new wave or download starts", "Examples:\n  edgeacs rollouts pause fw-2.5"),
			rolloutAction("resume", "resume a paused rollout, accepting the faults its waves hold so far", "Examples:\n  edgeacs rollouts resume fw-2.5"),
			rolloutAction("abort", "abort a rollout: pending devices and unfinished downloads are cancelled", "Examples:\n  edgeacs rollouts abort fw-2.5"),
			rolloutAction("retry", "put a rollout's faulted devices back to pending (then resume it if paused)",
				"Examples:\n  edgeacs rollouts retry fw-2.5 && edgeacs rollouts resume fw-2.5"),
			resCommand("delete", "delete a done or aborted rollout (its download tasks stay)", "NAME",
				"A running or paused rollout must be aborted first.\n\n"+
					"Examples:\n  edgeacs rollouts delete fw-2.5", rolloutsDelete),
		},
	}
}

func rolloutAction(action, usage, desc string) *cli.Command {
	return resCommand(action, usage, "NAME", desc, func(c *cli.Context, cl *client.Client) error {
		name, err := resOneArg(c, "rollout NAME")
		if err != nil {
			return err
		}
		r, err := cl.RolloutAction(c.Context, name, action)
		if err != nil {
			return apiFail(c, err)
		}
		if c.Bool("json") {
			return printJSON(c.App.Writer, r)
		}
		fmt.Fprintf(c.App.Writer, "rollout %s: %s\n", r.Name, rolloutStateText(r))
		return nil
	})
}

func rolloutsDelete(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "rollout NAME")
	if err != nil {
		return err
	}
	if err := cl.DeleteRollout(c.Context, name); err != nil {
		return apiFail(c, err)
	}
	return resDone(c, map[string]string{"deleted": name}, "deleted rollout %s", name)
}

func rolloutsCreate(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "rollout NAME")
	if err != nil {
		return err
	}
	if c.String("file") == "" {
		return usageErr(c, "--file is required: the firmware file to roll out")
	}
	if c.String("filter") == "" {
		return usageErr(c, "--filter is required: an expression selecting the devices (\"true\" selects all)")
	}
	var waves []client.RolloutWaveSpec
	for p := range strings.SplitSeq(c.String("waves"), ",") {
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(p), "%"), 64)
		if err != nil {
			return usageErr(c, "--waves %q: want percents such as 1,10,100", c.String("waves"))
		}
		waves = append(waves, client.RolloutWaveSpec{Percent: v})
	}
	req := client.RolloutRequest{
		Name: name, File: c.String("file"), Filter: c.String("filter"), Waves: waves,
		MaxFaultRate: c.Float64("max-fault-rate"), MinWaveSize: c.Int("min-wave-size"), Soak: c.String("soak"),
		Window: c.String("window"), Mode: c.String("mode"), Timeout: c.String("device-timeout"),
	}
	if n := c.Int("per-edge"); n != 0 {
		req.Concurrency = &client.RolloutConcurrency{PerEdge: n}
	}
	r, err := cl.CreateRollout(c.Context, req)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, r)
	}
	sizes := make([]string, len(r.Waves))
	for i, w := range r.Waves {
		sizes[i] = strconv.Itoa(w.Total)
	}
	fmt.Fprintf(c.App.Writer, "rollout %s: %d devices to version %s in %d waves (%s)", r.Name, r.Total, r.Version, len(r.Waves), strings.Join(sizes, ", "))
	if r.Skipped > 0 {
		fmt.Fprintf(c.App.Writer, "; %d already on it", r.Skipped)
	}
	fmt.Fprintf(c.App.Writer, "\nfollow it with: edgeacs rollouts status %s --watch\n", r.Name)
	return nil
}

func rolloutsList(c *cli.Context, cl *client.Client) error {
	if err := resNoArg(c); err != nil {
		return err
	}
	rs, err := cl.Rollouts(c.Context)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(c.App.Writer, "no rollouts; start one with 'edgeacs rollouts create NAME --file F --filter EXPR'")
		return nil
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "NAME\tSTATE\tVERSION\tWAVE\tDONE\tFAULTED\tIN FLIGHT\tREASON")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d/%d\t%d\t%d\t%s\n", r.Name, r.State, r.Version, r.Wave, len(r.Waves),
			r.Done, r.Total, r.Faulted, r.Downloading+r.NotBack, orDash(r.Reason))
	}
	return tw.Flush()
}

func rolloutStateText(r client.Rollout) string {
	if r.Reason != "" {
		return r.State + " (" + r.Reason + ")"
	}
	return r.State
}

func rolloutsStatus(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "rollout NAME")
	if err != nil {
		return err
	}
	if st := c.String("devices"); st != "" && !slices.Contains([]string{"pending", "downloading", "notBack", "done", "faulted", "cancelled"}, st) {
		return usageErr(c, "--devices %q: want pending, downloading, notBack, done, faulted or cancelled", st)
	}
	if c.Bool("watch") {
		return rolloutsWatch(c, cl, name)
	}
	r, err := cl.Rollout(c.Context, name)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, r)
	}
	return printRollout(c.App.Writer, r, c.String("devices"))
}

// printRollout writes a rollout's status for people.
func printRollout(w io.Writer, r client.Rollout, devState string) error {
	tw := newTable(w)
	window := r.Window
	if window == "" {
		window = "always"
	}
	for _, kv := range [][2]string{
		{"rollout", r.Name}, {"state", rolloutStateText(r)},
		{"file", fmt.Sprintf("%s (version %s)", r.File, r.Version)}, {"filter", r.Filter},
		{"devices", fmt.Sprintf("%d (%d already on %s)", r.Total, r.Skipped, r.Version)},
		{"rules", fmt.Sprintf("max fault rate %g%%, soak %s, window %s, per edge %s, mode %s, device timeout %s",
			100*r.MaxFaultRate, r.Soak, window, orDash(perEdgeText(r.PerEdge)), r.Mode, r.Timeout)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "WAVE\tSTATE\tDEVICES\tPENDING\tDOWNLOADING\tNOT BACK\tDONE\tFAULTED\tFAULT RATE")
	for _, wv := range r.Waves {
		fmt.Fprintf(tw, "%d (%g%%)\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f%%\n", wv.Wave, wv.Percent, wv.State, wv.Total,
			wv.Pending, wv.Downloading, wv.NotBack, wv.Done, wv.Faulted, 100*wv.FaultRate)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "EDGE\tDEVICES\tPENDING\tDOWNLOADING\tNOT BACK\tDONE\tFAULTED")
	for _, e := range slices.Sorted(mapKeys(r.Edges)) {
		n := r.Edges[e]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", orDash(e), n.Total, n.Pending, n.Downloading, n.NotBack, n.Done, n.Faulted)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Faults) > 0 {
		codes := slices.Sorted(mapKeys(r.Faults))
		parts := make([]string, len(codes))
		for i, k := range codes {
			parts[i] = fmt.Sprintf("%s ×%d", k, r.Faults[k])
		}
		fmt.Fprintf(w, "\nfaults: %s\n", strings.Join(parts, ", "))
	}
	if devState != "" {
		fmt.Fprintln(w)
		devs := r.Devices[devState]
		if len(devs) == 0 {
			fmt.Fprintf(w, "no device is %s\n", devState)
			return nil
		}
		tw = newTable(w)
		fmt.Fprintln(tw, "DEVICE\tWAVE\tEDGE\tFROM\tATTEMPTS\tFAULT\tMESSAGE")
		for _, d := range devs {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", d.Device, d.Wave+1, orDash(d.Edge), orDash(d.From), d.Attempts, orDash(d.Fault), orDash(d.Message))
		}
		return tw.Flush()
	}
	return nil
}

func perEdgeText(n int) string {
	if n == 0 {
		return "no cap"
	}
	return strconv.Itoa(n)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// rolloutsWatch follows a rollout until it is done, aborted or paused: on
// a terminal, a progress bar per wave redrawn in place; elsewhere a line
// each time the counts change.
func rolloutsWatch(c *cli.Context, cl *client.Client, name string) error {
	w := c.App.Writer
	tty := redraws(w) && !c.Bool("json")
	interval := max(c.Duration("interval"), 100*time.Millisecond)
	drawn, last := 0, ""
	for {
		r, err := cl.Rollout(c.Context, name)
		if err != nil {
			return apiFail(c, err)
		}
		switch {
		case c.Bool("json"):
			if line := rolloutLine(r); line != last {
				last = line
				if err := printJSON(w, r); err != nil {
					return err
				}
			}
		case tty:
			if drawn > 0 {
				fmt.Fprintf(w, "\033[%dF", drawn) // back to the first line drawn
			}
			lines := rolloutBars(r, 30)
			for _, l := range lines {
				fmt.Fprintf(w, "\r\033[K%s\n", l)
			}
			drawn = len(lines)
		default:
			if line := rolloutLine(r); line != last {
				last = line
				fmt.Fprintf(w, "%s %s\n", time.Now().Format(time.TimeOnly), line)
			}
		}
		if r.State != "running" {
			if !c.Bool("json") {
				fmt.Fprintf(w, "rollout %s: %s\n", r.Name, rolloutStateText(r))
			}
			return nil
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// rolloutLine is a rollout's progress on one line.
func rolloutLine(r client.Rollout) string {
	parts := make([]string, len(r.Waves))
	for i, w := range r.Waves {
		parts[i] = fmt.Sprintf("w%d %s %d/%d", w.Wave, w.State, w.Done, w.Total)
		if w.Faulted > 0 {
			parts[i] += fmt.Sprintf(" (%d faulted)", w.Faulted)
		}
	}
	return fmt.Sprintf("%s: %s, %d/%d done, %d faulted, %d downloading, %d not back | %s",
		r.Name, r.State, r.Done, r.Total, r.Faulted, r.Downloading, r.NotBack, strings.Join(parts, " | "))
}

// rolloutBars draws a bar per wave: done as '█', faulted as 'x', in
// flight as '░', pending as ' '.
func rolloutBars(r client.Rollout, width int) []string {
	lines := []string{fmt.Sprintf("%s → %s: %s, %d/%d done, %d faulted", r.Name, r.Version, r.State, r.Done, r.Total, r.Faulted)}
	for _, w := range r.Waves {
		cells := func(n int) int {
			if w.Total == 0 {
				return 0
			}
			return n * width / w.Total
		}
		done, bad, busy := cells(w.Done), cells(w.Faulted), cells(w.Downloading+w.NotBack)
		if w.Done+w.Faulted == w.Total && w.Total > 0 {
			done = width - bad
		}
		rest := max(width-done-bad-busy, 0)
		bar := strings.Repeat("█", done) + strings.Repeat("x", bad) + strings.Repeat("░", busy) + strings.Repeat(" ", rest)
		lines = append(lines, fmt.Sprintf("  wave %d %-9s [%s] %4d/%-4d %3d faulted %3d in flight", w.Wave, w.State, bar,
			w.Done, w.Total, w.Faulted, w.Downloading+w.NotBack))
	}
	return lines
}

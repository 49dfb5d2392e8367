package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

// bulkWorkers bounds the long polls a bulk command keeps open at once.
// Each waits for one task; tasks end concurrently at the edges, so a poll
// that starts late usually answers at once.
const bulkWorkers = 16

// bulkOutcome is how one device's task of a bulk command ended, as
// --json prints it.
type bulkOutcome struct {
	Device string            `json:"device"`
	Task   string            `json:"task"`
	Status fleet.TaskStatus  `json:"status"`
	Fault  *client.TaskFault `json:"fault,omitempty"`
}

// bulkProgress counts a bulk command's tasks and draws them: a progress
// bar on a terminal, nothing elsewhere (the summary follows at the end).
type bulkProgress struct {
	mu                  sync.Mutex
	name                string
	total, done, failed int
	bar                 *progressbar.ProgressBar
}

func newBulkProgress(w io.Writer, name string, total int) *bulkProgress {
	p := &bulkProgress{name: name, total: total}
	if redraws(w) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(p.describe()),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

// describe is the bar's description: the counts so far. Callers hold mu
// (or own p alone).
func (p *bulkProgress) describe() string {
	return fmt.Sprintf("%s: %d done, %d fault, %d pending", p.name, p.done, p.failed, p.total-p.done-p.failed)
}

// ended counts one task that became final.
func (p *bulkProgress) ended(status fleet.TaskStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if status == fleet.StatusDone {
		p.done++
	} else {
		p.failed++
	}
	if p.bar != nil {
		p.bar.Describe(p.describe())
		_ = p.bar.Add(1)
	}
}

// finish ends the bar, full or not.
func (p *bulkProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil && !p.bar.IsFinished() {
		_ = p.bar.Exit() // keeps the line as drawn; OnCompletion ends it
	}
}

// runBulk queues req on every device filter selects, in one API call, and
// follows the tasks until all are final or --timeout; --json prints each
// device's outcome. Any fault, or a task still pending at the timeout,
// makes the command fail.
func runBulk(c *cli.Context, cl *client.Client, filter string, req client.TaskRequest) error {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	ft, err := cl.CreateFilterTasks(ctx, client.DeviceFilter{Expr: filter}, req, !c.Bool("no-wake"))
	if err != nil {
		return apiFail(c, err)
	}
	if ft.Count == 0 {
		if c.Bool("json") {
			return printJSON(c.App.Writer, []bulkOutcome{})
		}
		fmt.Fprintf(c.App.ErrWriter, "%s: no device matches the filter\n", cmdName(c))
		return nil
	}
	if c.Bool("async") {
		if c.Bool("json") {
			return printJSON(c.App.Writer, ft)
		}
		fmt.Fprintf(c.App.ErrWriter, "queued %d %s tasks\n", ft.Count, req.Name)
		for _, id := range ft.IDs {
			fmt.Fprintln(c.App.Writer, id)
		}
		return nil
	}

	prog := newBulkProgress(c.App.ErrWriter, req.Name, ft.Count)
	outcomes := make([]bulkOutcome, len(ft.IDs))
	ids := make(chan int)
	var wg sync.WaitGroup
	for range min(bulkWorkers, len(ft.IDs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				outcomes[i] = awaitOutcome(ctx, c.Context, cl, ft.IDs[i])
				if outcomes[i].Status.Final() {
					prog.ended(outcomes[i].Status)
				}
			}
		}()
	}
	for i := range ft.IDs {
		ids <- i
	}
	close(ids)
	wg.Wait()
	prog.finish()

	slices.SortFunc(outcomes, func(a, b bulkOutcome) int { return strings.Compare(a.Device, b.Device) })
	var lines []string
	pending := 0
	for _, o := range outcomes {
		switch {
		case o.Status == fleet.StatusDone:
		case !o.Status.Final():
			pending++
		default:
			t := client.Task{Task: &fleet.Task{ID: o.Task, Device: o.Device, Status: o.Status, Fault: o.Fault, ParameterValues: req.ParameterValues}}
			lines = append(lines, faultLines(cmdName(c)+": "+o.Device+": ", t)...)
		}
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, outcomes); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.App.Writer, "%s on %d devices: %d done, %d fault, %d pending\n", req.Name, len(outcomes), prog.done, prog.failed, pending)
	}
	if pending > 0 {
		lines = append(lines, fmt.Sprintf("%s: %d tasks still pending after %v; they stay queued: see edgeacs tasks list --status pending",
			cmdName(c), pending, c.Duration("timeout")))
	}
	if len(lines) > 0 {
		return cli.Exit(strings.Join(lines, "\n"), 1)
	}
	return nil
}

// awaitOutcome waits for one task of a bulk command until ctx ends. A
// task the wait never saw (the deadline came first) is read once more,
// briefly (under base, the command's context), so the report names its
// device.
func awaitOutcome(ctx, base context.Context, cl *client.Client, id string) bulkOutcome {
	t, err := cl.AwaitTask(ctx, id)
	if t.Task == nil && errors.Is(err, context.DeadlineExceeded) {
		rctx, cancel := context.WithTimeout(base, 5*time.Second)
		t, _ = cl.Task(rctx, id)
		cancel()
	}
	o := bulkOutcome{Task: id, Status: fleet.StatusPending}
	if t.Task != nil {
		o.Device, o.Status, o.Fault = t.Device, t.Status, t.Fault
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && o.Fault == nil && !o.Status.Final() {
		// The API failed us for this task: report it as the fault.
		o.Status, o.Fault = fleet.StatusFault, &client.TaskFault{Code: "error", Message: err.Error()}
	}
	return o
}

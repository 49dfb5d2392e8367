package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

func init() {
	registerCommand(tasksCommand())
	registerCommand(faultsCommand())
}

// oneID is the action of a command that takes exactly one ID and calls fn.
func oneID(what string, fn func(c *cli.Context, cl *client.Client, id string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, help, err := commandArgs(c, false)
		if err != nil || help {
			return err
		}
		if len(args) != 1 {
			return usageErr(c, "give exactly one %s", what)
		}
		cl, err := apiClient(c)
		if err != nil {
			return err
		}
		return fn(c, cl, args[0])
	}
}

func tasksCommand() *cli.Command {
	return &cli.Command{
		Name:  "tasks",
		Usage: "list, show and cancel tasks",
		Description: "Examples:\n   edgeacs tasks list --status pending\n   edgeacs tasks show 01JD3W6Y4N8Q2V5T7X9Z0B1C2D\n" +
			"   edgeacs tasks cancel 01JD3W6Y4N8Q2V5T7X9Z0B1C2D",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list tasks in creation order (ID, device, name, status, outcome)",
				UsageText:   "edgeacs tasks list [--device DEVICE] [--status pending|running|done|fault|expired] [--limit N] [--json]",
				Description: "Example:\n   edgeacs tasks list --status fault",
				Flags: append(apiClientFlags(),
					&cli.StringFlag{Name: "device", Usage: "only this device's tasks"},
					&cli.StringFlag{Name: "status", Usage: "only tasks in this status: pending, running, done, fault or expired"},
					&cli.IntFlag{Name: "limit", Usage: "list at most this many tasks (0: all)"},
				),
				OnUsageError: exitUsage,
				Action:       tasksList,
			},
			{
				Name: "show", Usage: "show a task: its arguments and result or fault",
				UsageText:    "edgeacs tasks show [--json] TASK",
				Description:  "Example:\n   edgeacs tasks show 01JD3W6Y4N8Q2V5T7X9Z0B1C2D",
				Flags:        apiClientFlags(),
				OnUsageError: exitUsage,
				Action: oneID("task ID", func(c *cli.Context, cl *client.Client, id string) error {
					t, err := cl.Task(c.Context, id)
					if err != nil {
						return apiFail(c, err)
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, maskTask(t))
					}
					printTask(c.App.Writer, t)
					return nil
				}),
			},
			{
				Name: "cancel", Usage: "cancel a task (the edge holding it drops it too)",
				UsageText:    "edgeacs tasks cancel TASK",
				Description:  "Example:\n   edgeacs tasks cancel 01JD3W6Y4N8Q2V5T7X9Z0B1C2D",
				Flags:        apiClientFlags(),
				OnUsageError: exitUsage,
				Action: oneID("task ID", func(c *cli.Context, cl *client.Client, id string) error {
					if err := cl.CancelTask(c.Context, id); err != nil {
						return apiFail(c, err)
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, map[string]string{"cancelled": id})
					}
					fmt.Fprintf(c.App.Writer, "cancelled task %s\n", id)
					return nil
				}),
			},
		},
	}
}

func tasksList(c *cli.Context) error {
	args, help, err := commandArgs(c, false)
	if err != nil || help {
		return err
	}
	if len(args) > 0 {
		return usageErr(c, "takes no arguments (select with --device and --status)")
	}
	status := fleet.TaskStatus(c.String("status"))
	switch status {
	case "", fleet.StatusPending, fleet.StatusRunning, fleet.StatusDone, fleet.StatusFault, fleet.StatusExpired:
	default:
		return usageErr(c, "--status %q: want pending, running, done, fault or expired", status)
	}
	limit := c.Int("limit")
	if limit < 0 {
		return usageErr(c, "--limit must be 0 or more")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	q := client.TaskQuery{Device: c.String("device"), Status: status}
	if limit > 0 {
		q.Limit = min(limit, 1000)
	}
	tasks, err := collect(cl.AllTasks(c.Context, q), limit)
	if err != nil {
		return apiFail(c, err)
	}
	for i := range tasks {
		tasks[i] = maskTask(tasks[i])
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, tasks)
	}
	if len(tasks) == 0 {
		fmt.Fprintln(c.App.ErrWriter, "no tasks")
		return nil
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "TASK\tDEVICE\tNAME\tSTATUS\tCREATED\tFAULT")
	for _, t := range tasks {
		fault := "-"
		if t.Fault != nil {
			fault = faultText(t.Fault.Code, t.Fault.Message)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Device, t.Name, t.Status, timeText(t.Timestamp), oneLine(fault))
	}
	return tw.Flush()
}

// printTask prints a task for people: its fields, arguments, and result
// or fault (secrets masked).
func printTask(w io.Writer, t client.Task) {
	t = maskTask(t)
	tw := newTable(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, oneLine(v))
		}
	}
	row("Task", t.ID)
	row("Device", t.Device)
	row("Name", t.Name)
	row("Status", string(t.Status))
	row("Edge", t.Edge)
	row("Created", timeText(t.Timestamp))
	if !t.Updated.IsZero() {
		row("Updated", timeText(t.Updated))
	}
	if !t.Expiry.IsZero() {
		row("Expires", timeText(t.Expiry))
	}
	row("Parameters", strings.Join(t.ParameterNames, ", "))
	row("Path", t.ParameterPath)
	row("Object", t.ObjectName)
	row("File", t.FileName)
	row("File type", t.FileType)
	row("URL", t.URL)
	if t.Fault != nil {
		row("Fault", faultText(t.Fault.Code, t.Fault.Message))
	}
	if t.Result != nil && t.Result.InstanceNumber > 0 {
		row("Instance", fmt.Sprint(t.Result.InstanceNumber))
	}
	tw.Flush()
	// One line per parameter the CPE refused, as set prints them: outside
	// the table, whose first column a long path would widen.
	if t.Fault != nil && len(t.Fault.Detail) > 0 {
		fmt.Fprintln(w, "\nRefused parameters:")
		for _, name := range slices.SortedFunc(maps.Keys(t.Fault.Detail), comparePaths) {
			fmt.Fprintf(w, "%s: %s\n", name, oneLine(t.Fault.Detail[name]))
		}
	}
	if len(t.ParameterValues) > 0 {
		fmt.Fprintln(w, "\nValues sent:")
		printValues(w, t.ParameterValues, t.Redacted)
	}
	if t.Result != nil && len(t.Result.ParameterValues) > 0 {
		fmt.Fprintln(w, "\nValues read:")
		printValues(w, t.Result.ParameterValues, t.Redacted)
	}
	if t.Result != nil && len(t.Result.ParameterNames) > 0 {
		fmt.Fprintln(w, "\nNames:")
		for _, pi := range t.Result.ParameterNames {
			fmt.Fprintf(w, "%s (writable %t)\n", pi.Name, pi.Writable)
		}
	}
	if t.Result != nil && len(t.Result.ParameterAttributes) > 0 {
		fmt.Fprintln(w, "\nAttributes:")
		for _, a := range t.Result.ParameterAttributes {
			fmt.Fprintf(w, "%s: notification %s\n", a.Name, notificationText(a.Notification))
		}
	}
}

func faultsCommand() *cli.Command {
	return &cli.Command{
		Name:        "faults",
		Usage:       "list and clear the faults tasks ended with",
		Description: "Examples:\n   edgeacs faults list --device 00D09E-HG2000-ESG0001\n   edgeacs faults clear 01JD3W6Y4N8Q2V5T7X9Z0B1C2D",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list faults (ID, device, code, message, time)",
				UsageText:    "edgeacs faults list [--device DEVICE] [--json]",
				Description:  "Example:\n   edgeacs faults list --device 00D09E-HG2000-ESG0001",
				Flags:        append(apiClientFlags(), &cli.StringFlag{Name: "device", Usage: "only this device's faults"}),
				OnUsageError: exitUsage,
				Action: func(c *cli.Context) error {
					args, help, err := commandArgs(c, false)
					if err != nil || help {
						return err
					}
					if len(args) > 0 {
						return usageErr(c, "takes no arguments (select with --device)")
					}
					cl, err := apiClient(c)
					if err != nil {
						return err
					}
					fs, err := cl.Faults(c.Context, c.String("device"))
					if err != nil {
						return apiFail(c, err)
					}
					if fs == nil {
						fs = []client.Fault{}
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, fs)
					}
					if len(fs) == 0 {
						fmt.Fprintln(c.App.ErrWriter, "no faults")
						return nil
					}
					tw := newTable(c.App.Writer)
					fmt.Fprintln(tw, "FAULT ID\tDEVICE\tCODE\tMESSAGE\tTIME")
					for _, f := range fs {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.ID, f.Device, f.Code, oneLine(orDash(strings.TrimSpace(strings.TrimPrefix(f.Message, f.Code)))), timeText(f.Timestamp))
					}
					return tw.Flush()
				},
			},
			{
				Name: "clear", Usage: "clear a fault (its task, which has ended, goes with it)",
				UsageText:    "edgeacs faults clear FAULT",
				Description:  "Example:\n   edgeacs faults clear 01JD3W6Y4N8Q2V5T7X9Z0B1C2D",
				Flags:        apiClientFlags(),
				OnUsageError: exitUsage,
				Action: oneID("fault ID", func(c *cli.Context, cl *client.Client, id string) error {
					if err := cl.ClearFault(c.Context, id); err != nil {
						return apiFail(c, err)
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, map[string]string{"cleared": id})
					}
					fmt.Fprintf(c.App.Writer, "cleared fault %s\n", id)
					return nil
				}),
			},
		},
	}
}

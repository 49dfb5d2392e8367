package main

// The device operations: get, set, names, attrs, set-attrs, add-object,
// delete-object, refresh, reboot, factory-reset, download, upload. Each
// creates one task (GenieACS's NBI task shapes) through the core's API,
// asks the device's edge to wake the device (a connection request) unless
// --no-wake, and waits for the result (a spinner on a terminal) unless
// --async. set, reboot, download and refresh also take --filter EXPR
// instead of a device: one API call queues a task on every device the
// expression selects, and a progress bar follows them (bulk.go).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

// opCommand describes one device operation.
type opCommand struct {
	name, usage string
	// args is the usage of the arguments after the device ID.
	args    string
	example string
	// minArgs and maxArgs bound the arguments after the device ID
	// (maxArgs -1: any number).
	minArgs, maxArgs int
	flags            []cli.Flag
	// bulk: the command takes --filter EXPR instead of a device ID.
	bulk bool
	// build makes the task from the arguments after the device ID;
	// types knows parameters' types as the core saw them, for set.
	build func(c *cli.Context, args []string, types *paramTypes) (client.TaskRequest, error)
	// show prints a done task for people (values masked).
	show func(w io.Writer, dev string, req client.TaskRequest, t client.Task)
}

// paramTypes are the xsd types of one device's parameters as the core
// last saw them, read from the API on first use (at most once).
type paramTypes struct {
	load   func() (map[string]client.Parameter, error)
	params map[string]client.Parameter
	err    error
	loaded bool
}

func (p *paramTypes) get() (map[string]client.Parameter, error) {
	if !p.loaded {
		p.loaded = true
		p.params, p.err = p.load()
	}
	return p.params, p.err
}

// of is path's type, "" when unknown.
func (p *paramTypes) of(path string) (string, error) {
	ps, err := p.get()
	return ps[path].Type, err
}

// inInstance is the type of the parameter name (relative to an instance)
// in an instance of the table obj that exists already, "" when none does.
func (p *paramTypes) inInstance(obj, name string) (string, error) {
	ps, err := p.get()
	if err != nil {
		return "", err
	}
	for path, prm := range ps {
		rest, ok := strings.CutPrefix(path, obj)
		if !ok {
			continue
		}
		inst, leaf, ok := strings.Cut(rest, ".")
		if _, err := strconv.Atoi(inst); ok && err == nil && leaf == name && prm.Type != "" {
			return prm.Type, nil
		}
	}
	return "", nil
}

func init() {
	for _, op := range opCommands() {
		registerCommand(op.command())
	}
}

// taskFlags are the flags of every device operation: the API client's,
// with --timeout bounding the whole wait, plus --no-wake and --async.
func taskFlags(bulk bool, extra ...cli.Flag) []cli.Flag {
	fl := apiClientFlags()
	for _, f := range fl {
		if df, ok := f.(*cli.DurationFlag); ok && df.Name == "timeout" {
			df.Usage = "how long to wait for the result (the task stays queued after it)"
		}
	}
	fl = append(fl,
		&cli.BoolFlag{Name: "no-wake", Usage: "send no connection request: the task runs at the device's next inform"},
		&cli.BoolFlag{Name: "async", Usage: "print the task ID at once instead of waiting for the result"},
	)
	if bulk {
		fl = append(fl, &cli.StringFlag{Name: "filter", Usage: "instead of one DEVICE, every device selected by " + filterUsage})
	}
	return append(fl, extra...)
}

func (op opCommand) command() *cli.Command {
	usage := "edgeacs " + op.name + " [options] DEVICE"
	if op.args != "" {
		usage += " " + op.args
	}
	if op.bulk {
		usage += "\n   edgeacs " + op.name + " [options] --filter EXPR"
		if op.args != "" {
			usage += " " + op.args
		}
	}
	return &cli.Command{
		Name: op.name, Usage: op.usage, UsageText: usage,
		Description: "Example:\n   " + op.example + "\n\n" +
			"   A connection request wakes the device unless --no-wake; the command waits for the CPE's answer\n" +
			"   (up to --timeout; --async prints the task ID at once). A CPE fault is printed with its code\n" +
			"   and exits 1. --json prints the task as the API shows it (secret values masked).",
		Flags:        taskFlags(op.bulk, op.flags...),
		OnUsageError: exitUsage,
		Action:       op.action,
	}
}

func (op opCommand) action(c *cli.Context) error {
	args, help, err := commandArgs(c, false)
	if err != nil || help {
		return err
	}
	filter := ""
	if op.bulk {
		filter = strings.TrimSpace(c.String("filter"))
		if c.IsSet("filter") && filter == "" {
			return usageErr(c, "--filter is empty")
		}
	}
	dev := ""
	if filter == "" {
		if len(args) == 0 {
			return usageErr(c, "give a device ID (see --help)")
		}
		dev, args = args[0], args[1:]
	}
	switch {
	case len(args) < op.minArgs:
		return usageErr(c, "missing arguments: want %s", opArgsText(op, filter != ""))
	case op.maxArgs >= 0 && len(args) > op.maxArgs:
		return usageErr(c, "too many arguments: want %s", opArgsText(op, filter != ""))
	}
	if c.Duration("timeout") <= 0 {
		return usageErr(c, "--timeout must be positive")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	types := cachedTypes(c, cl, dev, filter)
	req, err := op.build(c, args, types)
	if err != nil {
		return err
	}
	if filter != "" {
		return runBulk(c, cl, filter, req)
	}
	t, err := runTask(c, cl, dev, req)
	if err != nil || c.Bool("async") {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, maskTask(t))
	}
	op.show(c.App.Writer, dev, req, t)
	return nil
}

// opArgsText is what an operation's arguments look like, for a usage error.
func opArgsText(op opCommand, bulk bool) string {
	s := "DEVICE"
	if bulk {
		s = "--filter EXPR"
	}
	if op.args != "" {
		s += " " + op.args
	}
	return s
}

// cachedTypes are the parameter types of dev, or for --filter of the
// first device it selects (a fleet of one model is the common case).
func cachedTypes(c *cli.Context, cl *client.Client, dev, filter string) *paramTypes {
	return &paramTypes{load: func() (map[string]client.Parameter, error) {
		id := dev
		if id == "" {
			ds, _, err := cl.Devices(c.Context, client.DeviceQuery{DeviceFilter: client.DeviceFilter{Expr: filter}, Limit: 1})
			if err != nil {
				return nil, apiFail(c, err)
			}
			if len(ds) == 0 {
				return nil, nil
			}
			id = ds[0].ID
		}
		ps, err := cl.DeviceParams(c.Context, id)
		if err != nil {
			return nil, apiFail(c, err)
		}
		return ps, nil
	}}
}

// runTask creates req for dev and, unless --async, waits for it to end
// (--timeout), with a spinner on a terminal. A task that ends in fault or
// expires, or is still not final at the timeout, is the command's error;
// the task is returned either way.
func runTask(c *cli.Context, cl *client.Client, dev string, req client.TaskRequest) (client.Task, error) {
	wake := !c.Bool("no-wake")
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	if c.Bool("async") {
		t, err := cl.CreateTask(ctx, dev, req, client.CreateOptions{Wake: wake})
		if err != nil {
			return t, apiFail(c, err)
		}
		warnTask(c, t)
		if c.Bool("json") {
			return t, printJSON(c.App.Writer, maskTask(t))
		}
		fmt.Fprintln(c.App.Writer, t.ID)
		return t, nil
	}
	what := fmt.Sprintf("%s on %s", req.Name, dev)
	if !wake {
		what += ", waiting for its next inform"
	}
	sp := startSpinner(c.App.ErrWriter, what)
	wait := client.PollWait(c.Duration("timeout"))
	t, err := cl.CreateTask(ctx, dev, req, client.CreateOptions{Wake: wake, Wait: wait})
	if err == nil && (t.Task == nil || !t.Status.Final()) {
		warnTask(c, t)
		var last client.Task
		if last, err = cl.AwaitTask(ctx, t.ID); last.Task != nil {
			t = last
		}
	}
	sp.stop()
	switch {
	case errors.Is(err, context.DeadlineExceeded) && t.Task != nil:
		return t, failErr(c, "task %s (%s on %s) is still %s after %v; it stays queued: see edgeacs tasks show %s, or cancel it",
			t.ID, req.Name, dev, t.Status, c.Duration("timeout"), t.ID)
	case err != nil:
		return t, apiFail(c, err)
	}
	if t.Status != fleet.StatusDone {
		if c.Bool("json") {
			_ = printJSON(c.App.Writer, maskTask(t))
		}
		return t, cli.Exit(strings.Join(faultLines(cmdName(c)+": "+dev+": ", t), "\n"), 1)
	}
	return t, nil
}

// warnTask prints the API's warning about a task (a connection request
// that failed: the task waits for the next inform).
func warnTask(c *cli.Context, t client.Task) {
	if t.Warning != "" {
		fmt.Fprintf(c.App.ErrWriter, "%s: warning: %s\n", cmdName(c), t.Warning)
	}
}

// faultLines says why t did not end done, one line per problem, each
// starting with prefix: a CPE fault's code and text, and for a
// SetParameterValues fault each parameter's own.
func faultLines(prefix string, t client.Task) []string {
	if t.Task == nil {
		return []string{prefix + "no task"}
	}
	f := t.Fault
	switch {
	case f == nil && t.Status == fleet.StatusExpired:
		return []string{prefix + "task " + t.ID + " expired before the device ran it"}
	case f == nil:
		return []string{prefix + "task " + t.ID + " ended " + string(t.Status)}
	}
	if len(f.Detail) == 0 {
		line := prefix + "fault " + faultText(f.Code, f.Message)
		if f.Code == "no_url" && t.Name == fleet.TaskUpload {
			line += " (give --url: where the device is to upload the file)"
		}
		return []string{line}
	}
	var lines []string
	for _, name := range slices.SortedFunc(maps.Keys(f.Detail), comparePaths) {
		line := prefix + name + ": fault " + f.Detail[name]
		if strings.HasPrefix(f.Detail[name], "9006") {
			line += typeHint(t, name)
		}
		lines = append(lines, line)
	}
	return lines
}

// typeHint is what to do about a 9006 (invalid parameter type) on name:
// the type the task sent was not the device's, which get shows.
func typeHint(t client.Task, name string) string {
	dev := cmp.Or(t.Device, "DEVICE")
	for _, pv := range t.ParameterValues {
		if pv.Name == name && pv.Type != "" {
			return " (sent as " + pv.Type + "; edgeacs get " + dev + " " + name + " shows the device's type)"
		}
	}
	return " (give the type: PATH=VALUE:TYPE)"
}

// faultText is "code message", without the message repeating the code.
func faultText(code, msg string) string {
	msg = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(msg), code))
	if msg == "" {
		return code
	}
	return code + " " + msg
}

// maskTask is t with every secret value (and the transfer password) shown
// as secretMask rather than the API's "", for --json: a script sees that
// a value is hidden, not that it is empty.
func maskTask(t client.Task) client.Task {
	if t.Task == nil {
		return t
	}
	c := *t.Task
	mask := func(pvs []client.ParameterValue) []client.ParameterValue {
		if pvs == nil {
			return nil
		}
		out := slices.Clone(pvs)
		for i := range out {
			out[i].Value = shown(out[i].Name, out[i].Value, slices.Contains(t.Redacted, out[i].Name))
		}
		return out
	}
	c.ParameterValues = mask(c.ParameterValues)
	if c.Result != nil {
		r := *c.Result
		r.ParameterValues = mask(r.ParameterValues)
		c.Result = &r
	}
	if c.Password != "" || slices.Contains(t.Redacted, fleet.RedactedPassword) {
		c.Password = secretMask
	}
	t.Task = &c
	return t
}

// xsdTypes are the types set accepts after a value's last ':'.
var xsdTypes = []string{"string", "int", "unsignedInt", "boolean", "dateTime", "base64", "long", "unsignedLong", "hexBinary"}

// parseAssign reads PATH=VALUE[:TYPE]: TYPE (string, int, unsignedInt,
// boolean, dateTime, base64, long, unsignedLong, hexBinary, with or
// without "xsd:") is taken only when the text after the last ':' names
// one, so "Time=12:30" keeps its colon and "X=a:int:string" sets "a:int".
func parseAssign(s string) (name, value, typ string, ok bool) {
	name, value, ok = strings.Cut(s, "=")
	if !ok || name == "" {
		return "", "", "", false
	}
	for _, t := range xsdTypes {
		for _, sfx := range []string{":xsd:" + t, ":" + t} {
			if len(value) >= len(sfx) && strings.EqualFold(value[len(value)-len(sfx):], sfx) {
				return name, value[:len(value)-len(sfx)], "xsd:" + t, true
			}
		}
	}
	return name, value, "", true
}

// parameterValues reads PATH=VALUE[:TYPE] arguments; a value without a
// type takes the type the core knows for its path (typeOf), else none:
// the edge then sends the device's own type, fetching it first.
func parameterValues(c *cli.Context, args []string, typeOf func(string) (string, error)) ([]client.ParameterValue, error) {
	var out []client.ParameterValue
	for _, a := range args {
		name, value, typ, ok := parseAssign(a)
		if !ok {
			return nil, usageErr(c, "%q: want PATH=VALUE[:TYPE]", a)
		}
		if typ == "" {
			t, err := typeOf(name)
			if err != nil {
				return nil, err
			}
			typ = t
		}
		out = append(out, client.ParameterValue{Name: name, Value: value, Type: typ})
	}
	return out, nil
}

// printValues prints "PATH = VALUE (type)" lines in data model order,
// secrets masked.
func printValues(w io.Writer, pvs []client.ParameterValue, redacted []string) {
	pvs = slices.Clone(pvs)
	slices.SortStableFunc(pvs, func(a, b client.ParameterValue) int { return comparePaths(a.Name, b.Name) })
	for _, pv := range pvs {
		v := shown(pv.Name, pv.Value, slices.Contains(redacted, pv.Name))
		if pv.Type != "" {
			fmt.Fprintf(w, "%s = %s (%s)\n", pv.Name, oneLine(v), pv.Type)
		} else {
			fmt.Fprintf(w, "%s = %s\n", pv.Name, oneLine(v))
		}
	}
}

// notifications are set-attrs' --notify names, as CWMP numbers them.
var notifications = map[string]int{"off": 0, "passive": 1, "active": 2}

func notificationText(n *int) string {
	if n == nil {
		return "-"
	}
	for k, v := range notifications {
		if v == *n {
			return k
		}
	}
	return strconv.Itoa(*n)
}

func opCommands() []opCommand {
	const dev = "00D09E-HG2000-ESG0001"
	done := func(format string) func(w io.Writer, dev string, req client.TaskRequest, t client.Task) {
		return func(w io.Writer, dev string, req client.TaskRequest, t client.Task) {
			fmt.Fprintf(w, format+"\n", dev)
		}
	}
	return []opCommand{
		{
			name: "get", usage: "read parameter values from the device (fresh, not the cached ones)",
			args: "PATH...", minArgs: 1, maxArgs: -1,
			example: "edgeacs get " + dev + " InternetGatewayDevice.DeviceInfo.SoftwareVersion InternetGatewayDevice.DeviceInfo.UpTime",
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				return client.TaskRequest{Name: fleet.TaskGetParameterValues, ParameterNames: args}, nil
			},
			show: func(w io.Writer, _ string, req client.TaskRequest, t client.Task) {
				var pvs []client.ParameterValue
				if t.Result != nil {
					pvs = t.Result.ParameterValues
				}
				printValues(w, pvs, t.Redacted)
			},
		},
		{
			name: "set", usage: "write parameter values on the device (TYPE: string, int, unsignedInt, boolean, dateTime, base64)",
			args: "PATH=VALUE[:TYPE]...", minArgs: 1, maxArgs: -1, bulk: true,
			example: "edgeacs set " + dev + " InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.KeyPassphrase='new secret'\n" +
				"   edgeacs set --filter \"DeviceID.ProductClass = 'HG2000'\" InternetGatewayDevice.ManagementServer.PeriodicInformInterval=300:unsignedInt\n" +
				"   Without :TYPE a value takes the parameter's type as the core last saw it, else the device's own (fetched first).",
			build: func(c *cli.Context, args []string, types *paramTypes) (client.TaskRequest, error) {
				pvs, err := parameterValues(c, args, types.of)
				return client.TaskRequest{Name: fleet.TaskSetParameterValues, ParameterValues: pvs}, err
			},
			show: func(w io.Writer, _ string, req client.TaskRequest, t client.Task) {
				// The types the edge chose for values given without one.
				pvs := slices.Clone(req.ParameterValues)
				for i := range pvs {
					if i < len(t.ParameterValues) && pvs[i].Type == "" && t.ParameterValues[i].Name == pvs[i].Name {
						pvs[i].Type = t.ParameterValues[i].Type
					}
				}
				printValues(w, pvs, nil)
				if t.Result != nil && t.Result.Status == 1 {
					fmt.Fprintln(w, "(the device applies the change after it reboots)")
				}
			},
		},
		{
			name: "names", usage: "list the parameter names under a path, and whether each is writable",
			args: "PATH", minArgs: 1, maxArgs: 1,
			example: "edgeacs names --next-level " + dev + " InternetGatewayDevice.LANDevice.1.",
			flags:   []cli.Flag{&cli.BoolFlag{Name: "next-level", Usage: "only the path's direct children"}},
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				return client.TaskRequest{Name: fleet.TaskGetParameterNames, ParameterPath: args[0], NextLevel: c.Bool("next-level")}, nil
			},
			show: func(w io.Writer, _ string, _ client.TaskRequest, t client.Task) {
				var infos []client.ParameterInfo
				if t.Result != nil {
					infos = slices.Clone(t.Result.ParameterNames)
				}
				slices.SortStableFunc(infos, func(a, b client.ParameterInfo) int { return comparePaths(a.Name, b.Name) })
				tw := newTable(w)
				fmt.Fprintln(tw, "NAME\tWRITABLE")
				for _, pi := range infos {
					fmt.Fprintf(tw, "%s\t%t\n", pi.Name, pi.Writable)
				}
				tw.Flush()
			},
		},
		{
			name: "attrs", usage: "read parameter attributes (notification, access list)",
			args: "PATH...", minArgs: 1, maxArgs: -1,
			example: "edgeacs attrs " + dev + " InternetGatewayDevice.DeviceInfo.SoftwareVersion",
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				return client.TaskRequest{Name: fleet.TaskGetParameterAttributes, ParameterNames: args}, nil
			},
			show: func(w io.Writer, _ string, _ client.TaskRequest, t client.Task) {
				var attrs []client.ParameterAttribute
				if t.Result != nil {
					attrs = slices.Clone(t.Result.ParameterAttributes)
				}
				slices.SortStableFunc(attrs, func(a, b client.ParameterAttribute) int { return comparePaths(a.Name, b.Name) })
				tw := newTable(w)
				fmt.Fprintln(tw, "NAME\tNOTIFICATION\tACCESS LIST")
				for _, a := range attrs {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, notificationText(a.Notification), orDash(strings.Join(a.AccessList, ",")))
				}
				tw.Flush()
			},
		},
		{
			name: "set-attrs", usage: "set parameters' notification: active, passive or off",
			args: "PATH...", minArgs: 1, maxArgs: -1,
			example: "edgeacs set-attrs " + dev + " InternetGatewayDevice.DeviceInfo.SoftwareVersion --notify active",
			flags:   []cli.Flag{&cli.StringFlag{Name: "notify", Usage: "active, passive or off (required)"}},
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				n, ok := notifications[strings.ToLower(c.String("notify"))]
				if !ok {
					return client.TaskRequest{}, usageErr(c, "--notify %q: want active, passive or off", c.String("notify"))
				}
				req := client.TaskRequest{Name: fleet.TaskSetParameterAttributes}
				for _, p := range args {
					req.ParameterAttributes = append(req.ParameterAttributes, client.ParameterAttribute{Name: p, Notification: &n})
				}
				return req, nil
			},
			show: func(w io.Writer, _ string, req client.TaskRequest, _ client.Task) {
				for _, a := range req.ParameterAttributes {
					fmt.Fprintf(w, "%s: notification %s\n", a.Name, notificationText(a.Notification))
				}
			},
		},
		{
			name: "add-object", usage: "add an instance to a table, optionally with its first values (names relative to it)",
			args: "PATH [NAME=VALUE[:TYPE]...]", minArgs: 1, maxArgs: -1,
			example: "edgeacs add-object " + dev + " InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection. Enable=true:boolean",
			build: func(c *cli.Context, args []string, types *paramTypes) (client.TaskRequest, error) {
				obj := args[0]
				if !strings.HasSuffix(obj, ".") {
					obj += "."
				}
				// A value without a type takes the type of the same
				// parameter in an instance that exists already.
				pvs, err := parameterValues(c, args[1:], func(name string) (string, error) { return types.inInstance(obj, name) })
				return client.TaskRequest{Name: fleet.TaskAddObject, ObjectName: obj, ParameterValues: pvs}, err
			},
			show: func(w io.Writer, _ string, req client.TaskRequest, t client.Task) {
				if t.Result != nil && t.Result.InstanceNumber > 0 {
					fmt.Fprintf(w, "added %s%d.\n", req.ObjectName, t.Result.InstanceNumber)
					return
				}
				fmt.Fprintf(w, "added an instance of %s\n", req.ObjectName)
			},
		},
		{
			name: "delete-object", usage: "delete a table instance",
			args: "PATH", minArgs: 1, maxArgs: 1,
			example: "edgeacs delete-object " + dev + " InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.2.",
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				obj := args[0]
				if !strings.HasSuffix(obj, ".") {
					obj += "."
				}
				return client.TaskRequest{Name: fleet.TaskDeleteObject, ObjectName: obj}, nil
			},
			show: func(w io.Writer, _ string, req client.TaskRequest, _ client.Task) {
				fmt.Fprintf(w, "deleted %s\n", req.ObjectName)
			},
		},
		{
			name: "refresh", usage: "re-read a subtree (names and values) from the device into the core's copy",
			args: "PATH", minArgs: 1, maxArgs: 1, bulk: true,
			example: "edgeacs refresh " + dev + " InternetGatewayDevice.DeviceInfo.",
			build: func(c *cli.Context, args []string, _ *paramTypes) (client.TaskRequest, error) {
				return client.TaskRequest{Name: fleet.TaskRefreshObject, ObjectName: args[0]}, nil
			},
			show: func(w io.Writer, dev string, req client.TaskRequest, _ client.Task) {
				fmt.Fprintf(w, "refreshed %s on %s (see edgeacs devices show --path %s %s)\n", req.ObjectName, dev, req.ObjectName, dev)
			},
		},
		{
			name: "reboot", usage: "reboot the device", bulk: true,
			example: "edgeacs reboot " + dev + "\n   edgeacs reboot --filter 'Tags.lab IS NOT NULL'",
			build: func(*cli.Context, []string, *paramTypes) (client.TaskRequest, error) {
				return client.TaskRequest{Name: fleet.TaskReboot}, nil
			},
			show: done("rebooting %s"),
		},
		{
			name: "factory-reset", usage: "reset the device to its factory defaults",
			example: "edgeacs factory-reset " + dev,
			build: func(*cli.Context, []string, *paramTypes) (client.TaskRequest, error) {
				return client.TaskRequest{Name: fleet.TaskFactoryReset}, nil
			},
			show: done("factory reset %s"),
		},
		{
			name: "download", usage: "make the device download a file from its edge (firmware by default)", bulk: true,
			example: "edgeacs download " + dev + " --file fw-2.0.bin\n   edgeacs download --filter \"DeviceID.ProductClass = 'HG2000'\" --file fw-2.0.bin --timeout 10m",
			flags: []cli.Flag{
				&cli.StringFlag{Name: "file", Usage: "name of a file uploaded with edgeacs files upload (required)"},
				&cli.StringFlag{Name: "type", Usage: "CWMP file type (default: the file's, or \"1 Firmware Upgrade Image\")"},
				&cli.StringFlag{Name: "target", Usage: "file name on the device"},
			},
			build: func(c *cli.Context, _ []string, _ *paramTypes) (client.TaskRequest, error) {
				if c.String("file") == "" {
					return client.TaskRequest{}, usageErr(c, "--file is required")
				}
				return client.TaskRequest{Name: fleet.TaskDownload, FileName: c.String("file"), FileType: c.String("type"), TargetFileName: c.String("target")}, nil
			},
			show: func(w io.Writer, dev string, req client.TaskRequest, _ client.Task) {
				fmt.Fprintf(w, "%s downloaded %s\n", dev, req.FileName)
			},
		},
		{
			name: "upload", usage: "make the device upload a file (configuration or log) to its edge",
			example: "edgeacs upload " + dev + " --type \"1 Vendor Configuration File\" --url http://files.example.net/upload/cfg.xml",
			flags: []cli.Flag{
				&cli.StringFlag{Name: "type", Usage: "CWMP file type, e.g. \"1 Vendor Configuration File\" or \"2 Vendor Log File\" (required)"},
				&cli.StringFlag{Name: "url", Usage: "where the device uploads the file (HTTP PUT)"},
				&cli.StringFlag{Name: "username", Usage: "user name for --url"},
				&cli.StringFlag{Name: "password", Usage: "password for --url"},
			},
			build: func(c *cli.Context, _ []string, _ *paramTypes) (client.TaskRequest, error) {
				if c.String("type") == "" {
					return client.TaskRequest{}, usageErr(c, "--type is required (e.g. \"1 Vendor Configuration File\")")
				}
				return client.TaskRequest{Name: fleet.TaskUpload, FileType: c.String("type"), URL: c.String("url"),
					Username: c.String("username"), Password: c.String("password")}, nil
			},
			show: func(w io.Writer, dev string, req client.TaskRequest, _ client.Task) {
				fmt.Fprintf(w, "%s uploaded its %s\n", dev, req.FileType)
			},
		},
	}
}

package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
)

func init() { registerCommand(devicesCommand()) }

// filterUsage explains --filter wherever a command takes one.
const filterUsage = "an expression in the preset precondition language, e.g. \"DeviceID.ProductClass LIKE 'HG8%' AND Tags.beta IS NULL\""

func devicesCommand() *cli.Command {
	return &cli.Command{
		Name:  "devices",
		Usage: "list, show, delete and tag the fleet's devices",
		Description: "Examples:\n   edgeacs devices list --filter \"Tags.beta IS NOT NULL\"\n   edgeacs devices show 00D09E-HG2000-ESG0001\n" +
			"   edgeacs devices tag 00D09E-HG2000-ESG0001 +beta -lab",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list devices (ID, product class, serial, edge, online state, last inform, tags)",
				UsageText: "edgeacs devices list [--filter EXPR] [--tag TAG] [--edge EDGE] [--limit N] [--json]",
				Description: "Example:\n   edgeacs devices list --filter \"DeviceID.ProductClass LIKE 'HG8%' AND Events.Inform > NOW() - 3600000\"\n" +
					"   The filter reads DeviceID.ID/OUI/ProductClass/SerialNumber/Manufacturer, Tags.<tag>, Events.Inform,\n" +
					"   Events.Registered, Events.<code> of the last inform, and the parameter values the core holds.",
				Flags: append(apiClientFlags(),
					&cli.StringFlag{Name: "filter", Usage: filterUsage},
					&cli.StringFlag{Name: "tag", Usage: "only devices with this tag"},
					&cli.StringFlag{Name: "edge", Usage: "only devices homed at this edge"},
					&cli.StringFlag{Name: "id", Usage: "only devices whose ID starts with this"},
					&cli.IntFlag{Name: "limit", Usage: "list at most this many devices (0: all)"},
				),
				OnUsageError: exitUsage,
				Action:       devicesList,
			},
			{
				Name: "show", Usage: "show a device: identity, then its parameter tree",
				UsageText: "edgeacs devices show [--path PREFIX | --history PATH] [--json] DEVICE",
				Description: "Example:\n   edgeacs devices show --path InternetGatewayDevice.DeviceInfo. 00D09E-HG2000-ESG0001\n" +
					"   edgeacs devices show --history InternetGatewayDevice.DeviceInfo.UpTime 00D09E-HG2000-ESG0001\n" +
					"   --history prints the values recorded for a parameter a preset's history names (oldest first).",
				Flags: append(apiClientFlags(), &cli.StringFlag{Name: "path", Usage: "show only the parameters under this path prefix"},
					&cli.StringFlag{Name: "history", Usage: "show the recorded values of this parameter instead (see a preset's history)"}),
				OnUsageError: exitUsage,
				Action:       devicesShow,
			},
			{
				Name: "delete", Usage: "forget a device, its tasks and faults (it comes back at its next inform)",
				UsageText:    "edgeacs devices delete DEVICE",
				Description:  "Example:\n   edgeacs devices delete 00D09E-HG2000-ESG0001",
				Flags:        apiClientFlags(),
				OnUsageError: exitUsage,
				Action: func(c *cli.Context) error {
					args, help, err := commandArgs(c, false)
					if err != nil || help {
						return err
					}
					if len(args) != 1 {
						return usageErr(c, "give exactly one device ID")
					}
					cl, err := apiClient(c)
					if err != nil {
						return err
					}
					if err := cl.DeleteDevice(c.Context, args[0]); err != nil {
						return apiFail(c, err)
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, map[string]string{"deleted": args[0]})
					}
					fmt.Fprintf(c.App.Writer, "deleted device %s\n", args[0])
					return nil
				},
			},
			dashArgs(&cli.Command{
				Name: "tag", Usage: "add (+tag or tag) and remove (-tag) a device's tags",
				UsageText:    "edgeacs devices tag DEVICE +TAG|-TAG...",
				Description:  "Example:\n   edgeacs devices tag 00D09E-HG2000-ESG0001 +beta -lab",
				Flags:        apiClientFlags(),
				OnUsageError: exitUsage,
				Action:       devicesTag,
			}),
		},
	}
}

func devicesList(c *cli.Context) error {
	args, help, err := commandArgs(c, false)
	if err != nil || help {
		return err
	}
	if len(args) > 0 {
		return usageErr(c, "takes no arguments (select with --filter, --tag, --edge or --id)")
	}
	limit := c.Int("limit")
	if limit < 0 {
		return usageErr(c, "--limit must be 0 or more")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	q := client.DeviceQuery{DeviceFilter: client.DeviceFilter{Expr: c.String("filter"), Tag: c.String("tag"), Edge: c.String("edge"), IDPrefix: c.String("id")}}
	if limit > 0 {
		q.Limit = min(limit, 1000)
	}
	devs, err := collect(cl.AllDevices(c.Context, q), limit)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, devs)
	}
	if len(devs) == 0 {
		fmt.Fprintln(c.App.ErrWriter, "no devices match")
		return nil
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "ID\tPRODUCT CLASS\tSERIAL\tEDGE\tSTATE\tLAST INFORM\tTAGS")
	for _, d := range devs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, orDash(d.ProductClass), orDash(d.SerialNumber), orDash(d.Edge),
			orDash(d.State), timeText(d.LastInform), orDash(strings.Join(d.Tags, ",")))
	}
	return tw.Flush()
}

func devicesShow(c *cli.Context) error {
	args, help, err := commandArgs(c, false)
	if err != nil || help {
		return err
	}
	if len(args) != 1 {
		return usageErr(c, "give exactly one device ID")
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	if c.IsSet("history") {
		return deviceHistory(c, cl, args[0], c.String("history"))
	}
	d, err := cl.Device(c.Context, args[0])
	if err != nil {
		return apiFail(c, err)
	}
	prefix := c.String("path")
	params := map[string]client.Parameter{}
	for name, p := range d.Parameters {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		if isSecret(name, p.Secret) {
			p.Value, p.Secret = secretMask, true
		}
		params[name] = p
	}
	d.Parameters = params
	if c.Bool("json") {
		return printJSON(c.App.Writer, d)
	}
	printDevice(c.App.Writer, d)
	return nil
}

// printDevice prints a device's identity, then its parameters in data
// model order (values already masked).
func printDevice(w io.Writer, d client.Device) {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", d.ID)
	row("Manufacturer", orDash(d.Manufacturer))
	row("OUI", orDash(d.OUI))
	row("Product class", orDash(d.ProductClass))
	row("Serial number", orDash(d.SerialNumber))
	row("Edge", orDash(d.Edge))
	row("Registered", timeText(d.Registered))
	inform := timeText(d.LastInform)
	if len(d.LastEvents) > 0 {
		inform += " (" + strings.Join(d.LastEvents, ", ") + ")"
	}
	row("Last inform", inform)
	row("State", orDash(d.State))
	row("Tags", orDash(strings.Join(d.Tags, ", ")))
	tw.Flush()
	if len(d.Parameters) == 0 {
		fmt.Fprintln(w, "\nno parameters")
		return
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "PARAMETER\tTYPE\tVALUE")
	for _, name := range slices.SortedFunc(maps.Keys(d.Parameters), comparePaths) {
		p := d.Parameters[name]
		if p.Object {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, orDash(p.Type), oneLine(p.Value))
	}
	tw.Flush()
}

// oneLine keeps a table row on one line: a value's line breaks and tabs
// are shown escaped.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\n\r\t") {
		return s
	}
	return strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
}

func devicesTag(c *cli.Context) error {
	args, help, err := commandArgs(c, true)
	if err != nil || help {
		return err
	}
	if len(args) < 2 {
		return usageErr(c, "give a device ID and at least one +tag or -tag")
	}
	dev := args[0]
	type change struct {
		tag string
		add bool
	}
	var changes []change
	for _, a := range args[1:] {
		ch := change{tag: a, add: true}
		switch {
		case strings.HasPrefix(a, "+"):
			ch.tag = a[1:]
		case strings.HasPrefix(a, "-"):
			ch.tag, ch.add = a[1:], false
		}
		if ch.tag == "" || strings.ContainsAny(ch.tag, "/ \t\r\n") {
			return usageErr(c, "%q is not a tag (+name adds, -name removes)", a)
		}
		changes = append(changes, ch)
	}
	cl, err := apiClient(c)
	if err != nil {
		return err
	}
	var done []string
	for _, ch := range changes {
		if ch.add {
			err = cl.TagDevice(c.Context, dev, ch.tag)
		} else {
			err = cl.UntagDevice(c.Context, dev, ch.tag)
		}
		if err != nil {
			return apiFail(c, err)
		}
		if ch.add {
			done = append(done, "+"+ch.tag)
		} else {
			done = append(done, "-"+ch.tag)
		}
	}
	if c.Bool("json") {
		d, err := cl.Device(c.Context, dev)
		if err != nil {
			return apiFail(c, err)
		}
		tags := d.Tags
		if tags == nil {
			tags = []string{}
		}
		return printJSON(c.App.Writer, map[string]any{"device": dev, "tags": tags})
	}
	fmt.Fprintf(c.App.Writer, "tagged %s: %s\n", dev, strings.Join(done, " "))
	return nil
}

// deviceHistory prints the recorded values of one parameter: time and
// value, oldest first.
func deviceHistory(c *cli.Context, cl *client.Client, id, path string) error {
	if strings.TrimSpace(path) == "" {
		return usageErr(c, "--history needs a parameter path")
	}
	hs, err := cl.DeviceHistory(c.Context, id, path)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, hs)
	}
	if len(hs) == 0 || len(hs[0].Points) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "no history of %s on %s (is it in a preset's history?)\n", path, id)
		return nil
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "TIME\tVALUE")
	for _, p := range hs[0].Points {
		fmt.Fprintf(tw, "%s\t%s\n", timeText(p.Time), oneLine(p.Value))
	}
	return tw.Flush()
}

package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

func init() {
	registerCommand(presetsCommand())
	registerCommand(provisionsCommand())
}

// maxPresetFile bounds a preset file: a preset is a few hundred bytes.
const maxPresetFile = 1 << 20

func presetsCommand() *cli.Command {
	return &cli.Command{
		Name:  "presets",
		Usage: "list, show, apply and delete presets: which provisions run on which devices",
		Subcommands: []*cli.Command{
			resCommand("list", "list the presets", "",
				"With --json, the value a preset sets on a secret parameter (a password, a Wi-Fi key) is\n"+
					"hidden unless --show-secrets is given.\n\n"+
					"Examples:\n  edgeacs presets list\n  edgeacs presets list --json",
				presetsList, showSecretsFlag()),
			resCommand("show", "print a preset as JSON, as 'presets apply -f' takes it", "NAME",
				"The value a preset sets on a secret parameter (a password, a Wi-Fi key) is shown as\n"+
					"\""+secretHidden+"\" unless --show-secrets is given; 'presets apply' refuses a file that still\n"+
					"holds that placeholder.\n\n"+
					"Examples:\n  edgeacs presets show inform-interval > inform-interval.json\n"+
					"  edgeacs presets show wifi-defaults --show-secrets",
				presetsShow, showSecretsFlag()),
			resCommand("apply", "create or replace a preset from a JSON or YAML file", "",
				"FILE holds one preset in GenieACS's shape (JSON, or YAML by its .yaml/.yml extension).\n"+
					"Its name is --name, else the file's _id, else the file's base name without extension.\n"+
					"The core checks the preset before storing it; an error names its line and column.\n\n"+
					"Example file (inform-interval.yaml):\n"+
					"  weight: 10\n"+
					"  events: {\"1 BOOT\": true}\n"+
					"  precondition: DeviceID.ProductClass = \"HG8245\"\n"+
					"  provisions:\n"+
					"    - [value, Device.ManagementServer.PeriodicInformInterval, 300]\n\n"+
					"Examples:\n"+
					"  edgeacs presets apply -f inform-interval.yaml\n"+
					"  edgeacs presets apply -f preset.json --name wifi-defaults",
				presetsApply,
				&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "JSON or YAML file holding the preset (required)"},
				&cli.StringFlag{Name: "name", Usage: "preset name (default: the file's _id, else its base name)"},
			),
			resCommand("delete", "delete a preset", "NAME",
				"Examples:\n  edgeacs presets delete inform-interval", presetsDelete),
		},
	}
}

func presetsList(c *cli.Context, cl *client.Client) error {
	if err := resNoArg(c); err != nil {
		return err
	}
	ps, err := cl.Presets(c.Context)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		if !c.Bool("show-secrets") {
			for i := range ps {
				ps[i] = hideSecrets(ps[i])
			}
		}
		return printJSON(c.App.Writer, ps)
	}
	if len(ps) == 0 {
		fmt.Fprintln(c.App.Writer, "no presets; add one with 'edgeacs presets apply -f FILE'")
		return nil
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "NAME\tWEIGHT\tCHANNEL\tEVENTS\tPRECONDITION\tPROVISIONS")
	for _, p := range ps {
		var events []string
		for e, on := range p.Events {
			if !on {
				e = "-" + e
			}
			events = append(events, e)
		}
		sort.Strings(events)
		var provs []string
		for _, pr := range p.Provisions {
			if len(pr) > 0 {
				provs = append(provs, fmt.Sprint(pr[0]))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.Name, p.Weight, orDash(p.Channel), orDash(strings.Join(events, ",")),
			orDash(resClip(p.Precondition, 40)), orDash(strings.Join(provs, ",")))
	}
	return tw.Flush()
}

// resClip shortens s to n characters for a table cell, on one line.
func resClip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func presetsShow(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "preset NAME")
	if err != nil {
		return err
	}
	p, err := cl.Preset(c.Context, name)
	if err != nil {
		return apiFail(c, err)
	}
	if !c.Bool("show-secrets") {
		p = hideSecrets(p)
	}
	return printJSON(c.App.Writer, p)
}

// secretHidden stands for a secret value in a preset shown without
// --show-secrets.
const secretHidden = "(secret: hidden)"

func showSecretsFlag() cli.Flag {
	return &cli.BoolFlag{Name: "show-secrets", Usage: "show the values presets set on secret parameters (passwords, Wi-Fi keys)"}
}

// secretValues calls fn with the index of each value provision that sets
// a secret parameter (fleet.IsSecretParameter): ["value", PATH, VALUE] or
// ["value", PATH, [VALUE, TYPE]].
func secretValues(p client.Preset, fn func(i int)) {
	for i, pr := range p.Provisions {
		if len(pr) < 3 || pr[0] != "value" {
			continue
		}
		if path, ok := pr[1].(string); ok && fleet.IsSecretParameter(path) {
			fn(i)
		}
	}
}

// hideSecrets is p with the values it sets on secret parameters replaced
// by secretHidden (a copy: p's lists are not changed).
func hideSecrets(p client.Preset) client.Preset {
	provs := slices.Clone(p.Provisions)
	secretValues(p, func(i int) {
		pr := slices.Clone(provs[i])
		if vt, ok := pr[2].([]any); ok && len(vt) > 0 {
			vt = slices.Clone(vt)
			vt[0] = secretHidden
			pr[2] = vt
		} else {
			pr[2] = secretHidden
		}
		provs[i] = pr
	})
	p.Provisions = provs
	return p
}

// hiddenSecret reports the path of a secret whose value in p is still
// the placeholder hideSecrets put there, if any.
func hiddenSecret(p client.Preset) string {
	found := ""
	secretValues(p, func(i int) {
		v := p.Provisions[i][2]
		if vt, ok := v.([]any); ok && len(vt) > 0 {
			v = vt[0]
		}
		if v == secretHidden && found == "" {
			found, _ = p.Provisions[i][1].(string)
		}
	})
	return found
}

func presetsApply(c *cli.Context, cl *client.Client) error {
	if err := resNoArg(c); err != nil {
		return err
	}
	path := c.String("file")
	if path == "" {
		return usageErr(c, "give the preset file with -f FILE")
	}
	raw, err := readSmallFile(path, maxPresetFile)
	if err != nil {
		return usageErr(c, "%v", err)
	}
	p, err := parsePreset(path, raw)
	if err != nil {
		return usageErr(c, "%v", err)
	}
	if secret := hiddenSecret(p); secret != "" {
		return usageErr(c, "%s: the value of %s is the placeholder %q that 'presets show' prints; put the real value back (or show it with --show-secrets)",
			path, secret, secretHidden)
	}
	switch {
	case c.String("name") != "":
		p.Name = c.String("name")
	case p.Name == "":
		p.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if !fleet.ValidProvisionName(p.Name) {
		return usageErr(c, "%q is not a preset name (1-256 bytes; no '/', control characters, '.' or '..'); give one with --name", p.Name)
	}
	out, err := cl.PutPreset(c.Context, p)
	if err != nil {
		return apiFail(c, refusedAt(path, err))
	}
	return resDone(c, hideSecrets(out), "applied preset %s", out.Name)
}

// yamlPos finds goccy/go-yaml's "[line:column] message".
var yamlPos = regexp.MustCompile(`^\[(\d+):(\d+)\]\s*(.*)$`)

// parsePreset reads one preset from JSON or YAML (a JSON document is
// YAML too, so one strict decoder serves both and names the line and
// column of a syntax error or an unknown key), as "FILE:LINE:COL: why".
func parsePreset(path string, raw []byte) (client.Preset, error) {
	var p client.Preset
	if len(strings.TrimSpace(string(raw))) == 0 {
		return p, fmt.Errorf("%s: empty file; want one preset as JSON or YAML", path)
	}
	if err := yaml.UnmarshalWithOptions(raw, &p, yaml.Strict()); err != nil {
		msg := firstLine(yaml.FormatError(err, false, false))
		if m := yamlPos.FindStringSubmatch(msg); m != nil {
			return p, fmt.Errorf("%s:%s:%s: %s", path, m[1], m[2], m[3])
		}
		return p, fmt.Errorf("%s: %s", path, msg)
	}
	return p, nil
}

// refusedAt puts the file's name in front of the API's refusal of what
// was read from it, and the position the API names where a reader of the
// message looks for it: "FILE: preset "p": precondition: line 1, column
// 7: ...". An error that is not the API's refusal passes unchanged.
func refusedAt(path string, err error) error {
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 {
		return err
	}
	msg := strings.TrimPrefix(ae.Message, client.ErrBadRequest.Error()+": ")
	if ae.Line > 0 && !strings.Contains(msg, "line "+strconv.Itoa(ae.Line)) {
		msg += fmt.Sprintf(" (line %d, column %d)", ae.Line, ae.Column)
	}
	e := *ae
	e.Message = path + ": " + msg
	return &e
}

func presetsDelete(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "preset NAME")
	if err != nil {
		return err
	}
	if err := cl.DeletePreset(c.Context, name); err != nil {
		return apiFail(c, err)
	}
	return resDone(c, map[string]string{"deleted": name}, "deleted preset %s", name)
}

func provisionsCommand() *cli.Command {
	return &cli.Command{
		Name:  "provisions",
		Usage: "list, show, apply and delete provision scripts (GenieACS JavaScript) that presets run",
		Subcommands: []*cli.Command{
			resCommand("list", "list the provision scripts", "",
				"Examples:\n  edgeacs provisions list", provisionsList),
			resCommand("show", "print a provision script's source", "NAME",
				"With --json, the script and its name as the API holds them.\n\n"+
					"Examples:\n  edgeacs provisions show set-ntp > set-ntp.js", provisionsShow),
			resCommand("apply", "create or replace a provision script from a JavaScript file", "",
				"The script's name is --name, else the file's base name without extension. The core\n"+
					"compiles it before storing it; a syntax error names its line and column.\n\n"+
					"Examples:\n"+
					"  edgeacs provisions apply -f set-ntp.js\n"+
					"  edgeacs provisions apply -f ./scripts/v2.js --name set-ntp",
				provisionsApply,
				&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "JavaScript file holding the script (required)"},
				&cli.StringFlag{Name: "name", Usage: "provision name (default: the file's base name without extension)"},
			),
			resCommand("delete", "delete a provision script", "NAME",
				"Examples:\n  edgeacs provisions delete set-ntp", provisionsDelete),
		},
	}
}

func provisionsList(c *cli.Context, cl *client.Client) error {
	if err := resNoArg(c); err != nil {
		return err
	}
	ps, err := cl.Provisions(c.Context)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, ps)
	}
	if len(ps) == 0 {
		fmt.Fprintln(c.App.Writer, "no provision scripts; add one with 'edgeacs provisions apply -f FILE.js'")
		return nil
	}
	tw := newTable(c.App.Writer)
	fmt.Fprintln(tw, "NAME\tLINES\tSIZE")
	for _, p := range ps {
		lines := strings.Count(p.Script, "\n")
		if p.Script != "" && !strings.HasSuffix(p.Script, "\n") {
			lines++
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", p.Name, lines, resBytes(int64(len(p.Script))))
	}
	return tw.Flush()
}

func provisionsShow(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "provision NAME")
	if err != nil {
		return err
	}
	p, err := cl.Provision(c.Context, name)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, p)
	}
	_, err = fmt.Fprint(c.App.Writer, p.Script)
	if err == nil && !strings.HasSuffix(p.Script, "\n") {
		_, err = fmt.Fprintln(c.App.Writer)
	}
	return err
}

func provisionsApply(c *cli.Context, cl *client.Client) error {
	if err := resNoArg(c); err != nil {
		return err
	}
	path := c.String("file")
	if path == "" {
		return usageErr(c, "give the script with -f FILE.js")
	}
	raw, err := readSmallFile(path, fleet.MaxProvisionScript)
	if err != nil {
		return usageErr(c, "%v", err)
	}
	name := c.String("name")
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if !fleet.ValidProvisionName(name) {
		return usageErr(c, "%q is not a provision name (1-256 bytes; no '/', control characters, '.' or '..'); give one with --name", name)
	}
	out, err := cl.PutProvision(c.Context, name, string(raw))
	if err != nil {
		return apiFail(c, scriptRefusedAt(path, name, err))
	}
	return resDone(c, out, "applied provision %s (%s)", out.Name, resBytes(int64(len(out.Script))))
}

// scriptRefusedAt shows the core's refusal of a script at the file's
// position, "FILE:LINE:COL: why", as compilers do, instead of at the
// script's name.
func scriptRefusedAt(path, name string, err error) error {
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Line == 0 {
		return refusedAt(path, err)
	}
	msg := ae.Message
	if at := fmt.Sprintf("%s:%d:%d: ", name, ae.Line, ae.Column); strings.Contains(msg, at) {
		msg = msg[strings.Index(msg, at)+len(at):]
	}
	e := *ae
	e.Message = fmt.Sprintf("%s:%d:%d: %s", path, ae.Line, ae.Column, msg)
	return &e
}

func provisionsDelete(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "provision NAME")
	if err != nil {
		return err
	}
	if err := cl.DeleteProvision(c.Context, name); err != nil {
		return apiFail(c, err)
	}
	return resDone(c, map[string]string{"deleted": name}, "deleted provision %s", name)
}

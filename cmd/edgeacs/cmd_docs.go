package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// docs/cli.md is generated from the command tree, so a new command or flag
// is documented by regenerating it:
//
//go:generate go run . gen-docs --out ../../docs/cli.md

func init() {
	registerCommand(completionCommand())
	registerCommand(genDocsCommand())
}

// docDefaults holds each registered flag's default text as defined.
// urfave/cli folds an environment variable into a flag's value when a
// command runs, so the flag itself may later show EDGEACS_TOKEN's value
// as its "default"; the reference must show neither that nor a secret.
var docDefaults = map[cli.Flag]string{}

func noteDefaults(c *cli.Command) {
	for _, f := range c.Flags {
		if d, ok := f.(cli.DocGenerationFlag); ok {
			docDefaults[f] = d.GetDefaultText()
		}
	}
	for _, s := range c.Subcommands {
		noteDefaults(s)
	}
}

func genDocsCommand() *cli.Command {
	return &cli.Command{
		Name:   "gen-docs",
		Usage:  "write the command reference (docs/cli.md) from the command tree",
		Hidden: true,
		Description: "Regenerate the reference after changing a command:\n\n" +
			"  go run ./cmd/edgeacs gen-docs --out docs/cli.md",
		Flags: []cli.Flag{&cli.StringFlag{Name: "out", Usage: "file to write (default: standard output)"}},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return cli.Exit("edgeacs gen-docs: takes no arguments", 2)
			}
			var b bytes.Buffer
			writeCLIDocs(&b, c.App)
			if out := c.String("out"); out != "" {
				if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
					return cli.Exit("edgeacs gen-docs: "+err.Error(), 1)
				}
				return nil
			}
			_, err := c.App.Writer.Write(b.Bytes())
			return err
		},
	}
}

// completionScripts are urfave/cli's completion scripts (its
// autocomplete/ directory), bound to the program's name: they ask
// `edgeacs ... --generate-bash-completion` for the words that fit.
var completionScripts = map[string]string{
	"bash": `# bash completion for edgeacs: source <(edgeacs completion bash)
_edgeacs_complete() {
  local cur words cword
  COMPREPLY=()
  if declare -F _init_completion >/dev/null 2>&1; then
    _init_completion -n "=:" || return
  else
    cur="${COMP_WORDS[COMP_CWORD]}"
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
  fi
  words=("${words[@]:0:$cword}")
  local req
  if [[ "$cur" == "-"* ]]; then
    req="${words[*]} ${cur} --generate-bash-completion"
  else
    req="${words[*]} --generate-bash-completion"
  fi
  local opts
  opts=$(eval "${req}" 2>/dev/null)
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -o nospace -F _edgeacs_complete edgeacs
`,
	"zsh": `#compdef edgeacs
# zsh completion for edgeacs: source <(edgeacs completion zsh)
_edgeacs_complete() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _edgeacs_complete edgeacs
`,
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: "Completes commands, subcommands and flags as you type.\n\n" +
			"Examples:\n" +
			"  source <(edgeacs completion bash)            # this bash session; add it to ~/.bashrc to keep it\n" +
			"  edgeacs completion zsh > ~/.zsh/_edgeacs     # zsh, with ~/.zsh in fpath before compinit\n" +
			"  source <(edgeacs completion zsh)             # or this zsh session, after compinit",
		Action: func(c *cli.Context) error {
			shell := c.Args().First()
			script, ok := completionScripts[shell]
			if !ok || c.Args().Len() != 1 {
				return cli.Exit("edgeacs completion: give the shell: bash or zsh", 2)
			}
			_, err := io.WriteString(c.App.Writer, script)
			return err
		},
	}
}

// writeCLIDocs writes the man-style reference of app's command tree:
// synopsis, description (with the examples) and options of every visible
// command, the API client options once.
func writeCLIDocs(w io.Writer, app *cli.App) {
	apiFlags := apiClientFlags()
	isAPI := map[string]bool{}
	for _, f := range apiFlags {
		isAPI[f.Names()[0]] = true
	}
	fmt.Fprintf(w, "# %s command reference\n\n", app.Name)
	fmt.Fprintf(w, "<!-- Generated from the command tree by `go run ./cmd/edgeacs gen-docs --out docs/cli.md`; do not edit. -->\n\n")
	fmt.Fprintf(w, "**%s** — %s\n\n", app.Name, docCell(app.Usage))
	fmt.Fprintf(w, "```\n%s [global options] COMMAND [command options] [arguments...]\n```\n\n", app.Name)
	fmt.Fprintf(w, "Every command takes `--help`; `%s --version` prints the version. Exit status: 0 on success;\n"+
		"1 when the work failed (a CPE fault, a task still pending at `--timeout`, not found, an unreachable\n"+
		"core, a refused token); 2 when the input was refused (a usage error, a bad flag, a file that does not\n"+
		"parse, a 400 from the API such as a filter that does not parse).\n\n", app.Name)

	fmt.Fprintf(w, "## Commands\n\n")
	walkDocs(app.Commands, app.Name, func(cmd *cli.Command, path string, depth int) {
		fmt.Fprintf(w, "%s- [%s](#%s) — %s\n", strings.Repeat("  ", depth), path, docAnchor(path), docCell(cmd.Usage))
	})
	fmt.Fprintln(w)

	fmt.Fprintf(w, "## Global options\n\n")
	writeFlagTable(w, app.Flags)
	fmt.Fprintf(w, "## API client options\n\n")
	fmt.Fprintf(w, "Commands marked *API client* reach the core's REST API (or a standalone edge's) and take these:\n\n")
	writeFlagTable(w, apiFlags)

	fmt.Fprintf(w, "## Shell completion\n\n")
	fmt.Fprintf(w, "```\nsource <(edgeacs completion bash)    # bash; add the line to ~/.bashrc to keep it\n"+
		"source <(edgeacs completion zsh)     # zsh, after compinit\n```\n\n")

	walkDocs(app.Commands, app.Name, func(cmd *cli.Command, path string, depth int) {
		fmt.Fprintf(w, "%s %s\n\n", strings.Repeat("#", min(depth+2, 4)), path)
		fmt.Fprintf(w, "%s\n\n", docCell(cmd.Usage))
		subs := visibleSubcommands(cmd)
		synopsis := path
		if len(subs) > 0 {
			names := make([]string, len(subs))
			for i, s := range subs {
				names[i] = s.Name
			}
			synopsis += " " + strings.Join(names, "|") + " ..."
		} else {
			if len(docFlags(cmd.Flags)) > 0 {
				synopsis += " [options]"
			}
			if cmd.ArgsUsage != "" {
				synopsis += " " + cmd.ArgsUsage
			}
		}
		fmt.Fprintf(w, "```\n%s\n```\n\n", synopsis)
		if d := strings.TrimSpace(cmd.Description); d != "" {
			fmt.Fprintf(w, "```text\n%s\n```\n\n", d)
		}
		var own []cli.Flag
		api := false
		for _, f := range docFlags(cmd.Flags) {
			if isAPI[f.Names()[0]] {
				api = true
				continue
			}
			own = append(own, f)
		}
		if len(own) > 0 {
			writeFlagTable(w, own)
		}
		if api {
			fmt.Fprintf(w, "*API client*: also takes the [API client options](#api-client-options).\n\n")
		}
	})
}

// walkDocs calls fn for every visible command, depth first, in the
// order help lists them.
func walkDocs(cs []*cli.Command, parent string, fn func(cmd *cli.Command, path string, depth int)) {
	var walk func(cs []*cli.Command, parent string, depth int)
	walk = func(cs []*cli.Command, parent string, depth int) {
		for _, c := range cs {
			if c.Hidden || c.Name == "help" {
				continue
			}
			path := parent + " " + c.Name
			fn(c, path, depth)
			walk(c.Subcommands, path, depth+1)
		}
	}
	walk(cs, parent, 0)
}

// visibleSubcommands leaves out hidden ones and the help command
// urfave/cli adds to every command it runs.
func visibleSubcommands(c *cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, s := range c.Subcommands {
		if !s.Hidden && s.Name != "help" {
			out = append(out, s)
		}
	}
	return out
}

// docFlags leaves out --help and --version (urfave/cli adds them to what
// it runs, so they come and go with the tree's history; the text says
// them once) and hidden flags.
func docFlags(fs []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range fs {
		if f == cli.HelpFlag || f == cli.VersionFlag {
			continue
		}
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		out = append(out, f)
	}
	return out
}

func writeFlagTable(w io.Writer, fs []cli.Flag) {
	fmt.Fprintf(w, "| Option | Default | Environment | Meaning |\n|---|---|---|---|\n")
	for _, f := range docFlags(fs) {
		var names []string
		for _, n := range f.Names() {
			if len(n) == 1 {
				names = append(names, "`-"+n+"`")
			} else {
				names = append(names, "`--"+n+"`")
			}
		}
		var def, env, usage string
		if d, ok := f.(cli.DocGenerationFlag); ok {
			var noted bool
			if def, noted = docDefaults[f]; !noted {
				def = d.GetDefaultText()
			}
			if !d.TakesValue() && def == "false" {
				def = ""
			}
			if len(d.GetEnvVars()) > 0 {
				env = "`" + strings.Join(d.GetEnvVars(), "`, `") + "`"
			}
			usage = d.GetUsage()
			if d.TakesValue() {
				names[len(names)-1] += " *value*"
			}
		}
		if def != "" {
			def = "`" + strings.Trim(def, `"`) + "`"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", strings.Join(names, ", "), def, env, docCell(usage))
	}
	fmt.Fprintln(w)
}

// docCell keeps text inside one Markdown table cell, or list item, as
// text: "<data>" is not an HTML tag.
func docCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// docAnchor is GitHub's anchor for a heading: lower case, spaces to
// dashes, punctuation dropped.
func docAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

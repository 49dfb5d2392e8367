package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// runOrdered runs app as main does: with the flags an operator typed after a
// command's arguments moved in front of them, which urfave/cli v2 needs
// (it stops reading flags at the first argument, so `edgeacs files upload
// fw.bin --version 2.1` would take "--version" for a second path).
func runOrdered(app *cli.App, args []string) error { return app.Run(flagsFirst(app, args)) }

// flagsFirst reorders args (args[0] is the program) so that, at the
// command that runs, every flag, with its value, comes before the
// arguments. The words that choose the command stay where they are, and
// so does everything after "--". A command that parses its own flags
// (SkipFlagParsing), or a completion request, is left alone. A flag the
// command does not know is moved too, and refused by the parser.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	for _, a := range args {
		if a == "--generate-bash-completion" {
			return args
		}
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	var leaf *cli.Command
	rest := args[1:]
	for {
		// The flags of this level, up to its first word.
		i := 0
		for i < len(rest) && isFlagWord(rest[i]) && rest[i] != "--" {
			i += flagWidth(flags, rest, i)
		}
		i = min(i, len(rest)) // a value-taking flag at the very end
		out = append(out, rest[:i]...)
		rest = rest[i:]
		if len(rest) == 0 {
			return out
		}
		next := findCommand(cmds, rest[0])
		if next == nil || rest[0] == "--" {
			break
		}
		out = append(out, rest[0])
		rest = rest[1:]
		if next.SkipFlagParsing {
			return append(out, rest...)
		}
		flags, cmds, leaf = next.Flags, next.Subcommands, next
	}
	if slices.ContainsFunc(cmds, func(c *cli.Command) bool { return c.Name != "help" }) {
		// Not one of this level's commands: the parser says so, as typed.
		// (urfave/cli adds a help subcommand to every command it has run;
		// that alone does not make a leaf a parent.)
		return append(out, rest...)
	}
	// rest is this command's arguments, with flags among them.
	var moved, words []string
	for i := 0; i < len(rest); {
		switch a := rest[i]; {
		case a == "--":
			words = append(words, rest[i+1:]...)
			i = len(rest)
		case dashArgCommands[leaf] && !strings.HasPrefix(a, "--") && isFlagWord(a) && findFlag(flags, strings.TrimLeft(a, "-")) == nil:
			words = append(words, a)
			i++
		case isFlagWord(a) && i+flagWidth(flags, rest, i) <= len(rest):
			n := flagWidth(flags, rest, i)
			moved = append(moved, rest[i:i+n]...)
			i += n
		default:
			words = append(words, a)
			i++
		}
	}
	out = append(out, moved...)
	for _, w := range words {
		if isFlagWord(w) {
			// An argument that looks like a flag stays one only after "--".
			out = append(out, "--")
			break
		}
	}
	return append(out, words...)
}

// dashArgCommands are the commands whose arguments may start with a
// single dash (devices tag's "-lab" removes a tag): such a word that names
// none of the command's flags is an argument, not an unknown flag.
var dashArgCommands = map[*cli.Command]bool{}

// dashArgs marks cmd as one of dashArgCommands.
func dashArgs(cmd *cli.Command) *cli.Command {
	dashArgCommands[cmd] = true
	return cmd
}

// isFlagWord is what the flag parser takes for a flag: "-x" or "--x", not
// "-" (standard input, by convention).
func isFlagWord(s string) bool { return len(s) > 1 && s[0] == '-' }

// flagWidth is how many words the flag at args[i] takes: two for a flag
// with a value given apart ("--name fw.bin"), else one.
func flagWidth(flags []cli.Flag, args []string, i int) int {
	name := strings.TrimLeft(args[i], "-")
	if strings.Contains(name, "=") {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if d, ok := f.(cli.DocGenerationFlag); ok && d.TakesValue() {
				return 2
			}
			return 1
		}
	}
	return 1
}

// findCommand is the visible or hidden subcommand called name (or one of
// its aliases), if any.
func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

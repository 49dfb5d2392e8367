package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

func init() { registerCommand(tokenCommand()) }

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "create, list and revoke API tokens (needs an admin token)",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a token; its secret is printed once and never again",
				Description: "Examples:\n" +
					"  edgeacs token create --name ci-deploy --scope write --expires 720h\n" +
					"  edgeacs token create --name grafana --scope read",
				Flags: append(apiClientFlags(),
					&cli.StringFlag{Name: "name", Usage: "token name: 1-64 of a-z A-Z 0-9 - _ . (required)"},
					&cli.StringFlag{Name: "scope", Usage: "read, write or admin (required)"},
					&cli.StringFlag{Name: "expires", Usage: "lifetime (720h) or an RFC 3339 time; never expires if not given"},
				),
				OnUsageError: exitUsage,
				Action: func(c *cli.Context) error {
					name, scope, exp := c.String("name"), c.String("scope"), c.String("expires")
					if c.Args().Len() > 0 {
						return cli.Exit("edgeacs token create: takes no arguments (use --name)", 2)
					}
					if !fleet.ValidTokenName(name) {
						return cli.Exit(fmt.Sprintf("edgeacs token create: --name %q: want 1-%d of a-z A-Z 0-9 - _ .", name, fleet.MaxTokenName), 2)
					}
					if _, err := fleet.ParseScope(scope); err != nil {
						return cli.Exit("edgeacs token create: --scope: "+err.Error(), 2)
					}
					if exp != "" {
						if err := checkExpires(exp); err != nil {
							return cli.Exit("edgeacs token create: --expires: "+err.Error(), 2)
						}
					}
					cl, err := apiClient(c)
					if err != nil {
						return err
					}
					tok, err := cl.CreateToken(c.Context, name, scope, exp)
					if err != nil {
						return apiFail(c, err)
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, tok)
					}
					exps := "never"
					if !tok.Expires.IsZero() {
						exps = tok.Expires.Format(time.RFC3339)
					}
					fmt.Fprintf(c.App.Writer, "created token %s (scope %s, expires %s); it is shown only now:\n%s\n", tok.Name, tok.Scope, exps, tok.Token)
					return nil
				},
			},
			{
				Name: "list", Usage: "list tokens (names, scopes, expiry; never secrets)",
				Description: "Examples:\n  edgeacs token list",
				Flags:       apiClientFlags(), OnUsageError: exitUsage,
				Action: func(c *cli.Context) error {
					if c.Args().Len() > 0 {
						return cli.Exit("edgeacs token list: takes no arguments", 2)
					}
					cl, err := apiClient(c)
					if err != nil {
						return err
					}
					toks, err := cl.Tokens(c.Context)
					if err != nil {
						return apiFail(c, err)
					}
					if c.Bool("json") {
						if toks == nil {
							toks = []client.TokenInfo{}
						}
						return printJSON(c.App.Writer, toks)
					}
					printTokenTable(c.App.Writer, toks, time.Now())
					return nil
				},
			},
			{
				Name: "revoke", Usage: "revoke a token everywhere (core nodes and edges)", ArgsUsage: "NAME",
				Description: "Examples:\n  edgeacs token revoke ci-deploy",
				Flags:       apiClientFlags(), OnUsageError: exitUsage,
				Action: func(c *cli.Context) error {
					if c.Args().Len() != 1 {
						return cli.Exit("edgeacs token revoke: give exactly one token name", 2)
					}
					name := c.Args().First()
					if !fleet.ValidTokenName(name) {
						return cli.Exit(fmt.Sprintf("edgeacs token revoke: %q is not a token name", name), 2)
					}
					cl, err := apiClient(c)
					if err != nil {
						return err
					}
					if err := cl.RevokeToken(c.Context, name); err != nil {
						return apiFail(c, err)
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, map[string]string{"revoked": name})
					}
					fmt.Fprintf(c.App.Writer, "revoked token %s\n", name)
					return nil
				},
			},
		},
	}
}

// checkExpires accepts what the API accepts: a positive duration or an
// RFC 3339 time in the future.
func checkExpires(s string) error {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return fmt.Errorf("%q: a lifetime must be positive", s)
		}
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("%q: want a duration like 720h or an RFC 3339 time", s)
	}
	if !t.After(time.Now()) {
		return fmt.Errorf("%q is in the past", s)
	}
	return nil
}

func printTokenTable(w io.Writer, toks []client.TokenInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tCREATED\tEXPIRES")
	for _, t := range toks {
		exp := "never"
		if !t.Expires.IsZero() {
			exp = t.Expires.Format(time.RFC3339)
			if !now.Before(t.Expires) {
				exp += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Scope, t.Created.Format(time.RFC3339), exp)
	}
	tw.Flush()
}

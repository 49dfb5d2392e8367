package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	fleetsync "github.com/edgeacs/edgeacs/sync"
)

func init() { registerCommand(edgesCommand()) }

func edgesCommand() *cli.Command {
	common := func() []cli.Flag { return apiClientFlags() }
	return &cli.Command{
		Name:  "edges",
		Usage: "list the edges the core knows and revoke an edge's access",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list edges: link state, acknowledged positions, health",
				Flags: common(), OnUsageError: exitUsage,
				Action: func(c *cli.Context) error {
					if c.Args().Len() > 0 {
						return cli.Exit("edgeacs edges list: takes no arguments", 2)
					}
					var edges []map[string]any
					if err := clusterCall(c, http.MethodGet, "/api/v1/edges", nil, &edges); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, edges)
					}
					printEdgesTable(c.App.Writer, edges)
					return nil
				},
			},
			{
				Name: "revoke", Usage: "refuse an edge's certificate from now on, on every core node", ArgsUsage: "NAME",
				Flags: common(), OnUsageError: exitUsage,
				Action: func(c *cli.Context) error {
					name := c.Args().First()
					if c.Args().Len() != 1 {
						return cli.Exit("edgeacs edges revoke: give exactly one edge name", 2)
					}
					if err := fleetsync.ValidNodeID(name); err != nil {
						return cli.Exit("edgeacs edges revoke: "+err.Error(), 2)
					}
					var out map[string]any
					if err := clusterCall(c, http.MethodPost, "/api/v1/edges/"+url.PathEscape(name)+"/revoke", nil, &out); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, out)
					}
					fmt.Fprintf(c.App.Writer, "revoked edge %s: its certificate is refused by every core node\n", name)
					return nil
				},
			},
		},
	}
}

func printEdgesTable(w io.Writer, edges []map[string]any) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EDGE\tCONNECTED\tLAST SEEN\tUPLINK ACKED\tDOWNLINK ACKED\tOUTBOX\tREVOKED")
	str := func(v any) string {
		switch v := v.(type) {
		case nil:
			return "-"
		case float64:
			return fmt.Sprintf("%.0f", v)
		case json.Number:
			return v.String()
		default:
			return fmt.Sprint(v)
		}
	}
	for _, e := range edges {
		outbox := any(nil)
		if h, ok := e["health"].(map[string]any); ok {
			outbox = h["outboxLen"]
		}
		revoked := e["revoked"]
		if revoked == nil {
			revoked = false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", str(e["id"]), str(e["connected"]), str(e["lastSeen"]),
			str(e["uplinkAcked"]), str(e["downlinkAcked"]), str(outbox), str(revoked))
	}
	tw.Flush()
	if len(edges) == 0 {
		fmt.Fprintln(w, "no edge has connected yet")
	}
}

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	fleetsync "github.com/edgeacs/edgeacs/sync"
)

func init() { registerCommand(edgesCommand()) }

func edgesCommand() *cli.Command {
	return &cli.Command{
		Name:  "edges",
		Usage: "list the edges the core knows and revoke an edge's access",
		Subcommands: []*cli.Command{
			resCommand("list", "list edges: address, link state, last seen, outbox lag, devices", "",
				"LINK is up while the edge's sync link is open, down when it is not, revoked once its\n"+
					"certificate is refused. LAST SEEN is when the core last heard from it. OUTBOX LAG is what\n"+
					"the edge has not sent yet (records, and the age of the oldest), shown while the link is up.\n"+
					"DEVICES is the edge's own count, as it last reported it. --json has every field the API\n"+
					"gives (acknowledged positions, rejected records, health).\n\n"+
					"Examples:\n  edgeacs edges list\n  edgeacs edges list --json",
				edgesList),
			resCommand("revoke", "refuse an edge's certificate from now on, on every core node", "NAME",
				"The edge's link is cut and it cannot connect again with that certificate; issue a new\n"+
					"one (edgeacs ca issue) under another name to bring the POP back.\n\n"+
					"Examples:\n  edgeacs edges revoke pop-lon-2",
				edgesRevoke),
		},
	}
}

func edgesList(c *cli.Context, cl *client.Client) error {
	if err := resNoArg(c); err != nil {
		return err
	}
	edges, err := cl.Edges(c.Context)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, edges)
	}
	printEdgesTable(c.App.Writer, edges, time.Now())
	return nil
}

func edgesRevoke(c *cli.Context, cl *client.Client) error {
	name, err := resOneArg(c, "edge name")
	if err != nil {
		return err
	}
	if err := fleetsync.ValidNodeID(name); err != nil {
		return usageErr(c, "%v", err)
	}
	e, err := cl.RevokeEdge(c.Context, name)
	if err != nil {
		return apiFail(c, err)
	}
	return resDone(c, e, "revoked edge %s: its certificate is refused by every core node", name)
}

func printEdgesTable(w io.Writer, edges []client.Edge, now time.Time) {
	if len(edges) == 0 {
		fmt.Fprintln(w, "no edge has connected yet")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tADDRESS\tLINK\tLAST SEEN\tOUTBOX LAG\tDEVICES")
	for _, e := range edges {
		link, outbox, devices := "down", "-", "-"
		switch {
		case !e.Revoked.IsZero():
			link = "revoked"
		case e.Connected:
			link = "up"
		}
		if h := e.Health; h != nil {
			devices = fmt.Sprint(h.Devices)
			if e.Connected {
				outbox = fmt.Sprint(h.OutboxLen)
				if h.OldestUnsent > 0 {
					outbox += fmt.Sprintf(" (%s)", h.OldestUnsent.Round(100*time.Millisecond))
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, orDash(e.Addr), link, resAgo(e.Heard(), now), outbox, devices)
	}
	tw.Flush()
}

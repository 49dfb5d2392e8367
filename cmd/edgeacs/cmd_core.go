package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/core"
)

func init() {
	registerCommand(coreCommand())
	registerCommand(clusterCommand())
}

// Defaults for `edgeacs core`, chosen so a newcomer's first node works on
// one machine.
const (
	defaultCoreData     = "./data/core"
	defaultCoreRaftAddr = "127.0.0.1:7000"
	defaultCoreAPIAddr  = "127.0.0.1:7080"
	defaultCoreSyncAddr = "127.0.0.1:7443"
	defaultCoreAPIURL   = "http://127.0.0.1:7080"
)

func coreCommand() *cli.Command {
	env := envVars
	return &cli.Command{
		Name:  "core",
		Usage: "run one core cluster node: Raft voter, fleet state and the REST API",
		Description: "Settings come from flags, then EDGEACS_* environment variables, then the YAML file\n" +
			"given with --config (see configs/core.yaml), then defaults.\n\n" +
			"Found a cluster by starting every founding member with --bootstrap-expect N and --join the\n" +
			"Raft addresses of the others: the N nodes find each other and one bootstraps them all, once.\n" +
			"A node that finds an existing cluster (for example a founder restarted with an empty data\n" +
			"directory) joins it instead. Add later nodes with --join RAFT_ADDR of any member.\n" +
			"--bootstrap founds a one-node cluster; with --join it refuses if a peer reports a cluster.\n" +
			"A restarted node keeps its data and never bootstraps again.\n\n" +
			"Core nodes talk to each other only on their Raft ports (Raft, and HTTP for joins, forwarded\n" +
			"writes and file copies): let the other members reach it, and nobody else. The REST API is for\n" +
			"clients; off loopback it needs --api-tls-cert and --api-tls-key, or --api-insecure.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "YAML configuration file", EnvVars: env("CONFIG")},
			&cli.StringFlag{Name: "id", Usage: "node ID, unique in the cluster (required)", EnvVars: env("ID")},
			&cli.StringFlag{Name: "data", Usage: "data directory (raft log, snapshots, state, files)", DefaultText: defaultCoreData, EnvVars: env("DATA")},
			&cli.StringFlag{Name: "raft-addr", Usage: "Raft listen address HOST:PORT (advertised to peers)", DefaultText: defaultCoreRaftAddr, EnvVars: env("RAFT_ADDR")},
			&cli.StringFlag{Name: "api-addr", Usage: "REST API listen address HOST:PORT (plain HTTP only on loopback unless --api-insecure)", DefaultText: defaultCoreAPIAddr, EnvVars: env("API_ADDR")},
			&cli.StringFlag{Name: "api-tls-cert", Usage: "TLS certificate (PEM) to serve the REST API over HTTPS", EnvVars: env("API_TLS_CERT")},
			&cli.StringFlag{Name: "api-tls-key", Usage: "TLS private key (PEM) for --api-tls-cert", EnvVars: env("API_TLS_KEY")},
			&cli.BoolFlag{Name: "api-insecure", Usage: "serve the REST API over plain HTTP on a non-loopback --api-addr (requests cross the network in the clear)", EnvVars: env("API_INSECURE")},
			&cli.BoolFlag{Name: "metrics-auth", Usage: "make /metrics need a read token (by default it is public, like /healthz)", EnvVars: env("METRICS_AUTH")},
			&cli.StringFlag{Name: "sync-addr", Usage: "edge sync (QUIC, UDP) listen address HOST:PORT", DefaultText: defaultCoreSyncAddr, EnvVars: env("SYNC_ADDR")},
			&cli.StringFlag{Name: "ca-dir", Usage: "directory with ca.crt and this node's <id>.crt/<id>.key (edgeacs ca); without it no edge can connect", EnvVars: env("CA_DIR")},
			&cli.BoolFlag{Name: "bootstrap", Usage: "form a new one-node cluster if this node has no state (refused if a --join peer reports a cluster)", EnvVars: env("BOOTSTRAP")},
			&cli.IntFlag{Name: "bootstrap-expect", Usage: "found a cluster of N voters with the --join peers, once, when all N are up and fresh", EnvVars: env("BOOTSTRAP_EXPECT")},
			&cli.StringFlag{Name: "join", Usage: "Raft addresses HOST:PORT (comma-separated) of members to join through, or of the other founding members", EnvVars: env("JOIN")},
			&cli.DurationFlag{Name: "heartbeat-timeout", Usage: "Raft heartbeat timeout", DefaultText: "1s", EnvVars: env("HEARTBEAT_TIMEOUT")},
			&cli.DurationFlag{Name: "election-timeout", Usage: "Raft election timeout", DefaultText: "1s", EnvVars: env("ELECTION_TIMEOUT")},
			&cli.Uint64Flag{Name: "snapshot-threshold", Usage: "log entries between snapshots", DefaultText: "8192", EnvVars: env("SNAPSHOT_THRESHOLD")},
			&cli.BoolFlag{Name: "raft-nosync", Usage: "do not fsync the raft log (tests only: loses writes on power failure)", EnvVars: env("RAFT_NOSYNC")},
		},
		OnUsageError: exitUsage,
		Action:       runCore,
	}
}

// loadCoreConfig builds the configuration: defaults < YAML < env < flags
// (urfave/cli folds env into the flags; IsSet is true for both).
func loadCoreConfig(c *cli.Context) (core.Config, error) {
	cfg := core.DefaultConfig()
	cfg.DataDir, cfg.RaftAddr, cfg.APIAddr, cfg.SyncAddr = defaultCoreData, defaultCoreRaftAddr, defaultCoreAPIAddr, defaultCoreSyncAddr
	if err := readConfigFile(c, &cfg); err != nil {
		return cfg, err
	}
	if err := noArgs(c); err != nil {
		return cfg, err
	}
	set := overrides{c}
	set.str("id", &cfg.ID)
	set.str("data", &cfg.DataDir)
	set.str("raft-addr", &cfg.RaftAddr)
	set.str("api-addr", &cfg.APIAddr)
	set.str("api-tls-cert", &cfg.APITLSCert)
	set.str("api-tls-key", &cfg.APITLSKey)
	set.boolean("api-insecure", &cfg.APIInsecure)
	set.boolean("metrics-auth", &cfg.MetricsAuth)
	set.str("sync-addr", &cfg.SyncAddr)
	set.str("ca-dir", &cfg.CADir)
	set.str("join", &cfg.Join)
	set.boolean("bootstrap", &cfg.Bootstrap)
	if c.IsSet("bootstrap-expect") {
		cfg.BootstrapExpect = c.Int("bootstrap-expect")
	}
	set.boolean("raft-nosync", &cfg.RaftNoSync)
	if c.IsSet("heartbeat-timeout") {
		cfg.HeartbeatTimeout = c.Duration("heartbeat-timeout")
		cfg.LeaderLeaseTimeout = min(cfg.LeaderLeaseTimeout, cfg.HeartbeatTimeout/2)
	}
	set.duration("election-timeout", &cfg.ElectionTimeout)
	if c.IsSet("snapshot-threshold") {
		cfg.SnapshotThreshold = c.Uint64("snapshot-threshold")
	}
	if cfg.ID == "" {
		return cfg, fmt.Errorf("--id is required (or EDGEACS_ID, or id: in --config)")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// runCoreNode is replaced in tests to check configuration without starting a node.
var runCoreNode = func(ctx context.Context, cfg core.Config) error {
	return runCoreWithSync(ctx, cfg, slog.Default())
}

func runCore(c *cli.Context) error {
	cfg, err := loadCoreConfig(c)
	if err != nil {
		return cli.Exit("edgeacs core: "+err.Error(), 2)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	startPprof(ctx, slog.Default())
	if err := runCoreNode(ctx, cfg); err != nil {
		return cli.Exit("edgeacs core: "+err.Error(), 1)
	}
	return nil
}

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "show and change core cluster membership through the REST API",
		Subcommands: []*cli.Command{
			resCommand("status", "list the members, their state and the leader", "",
				"The node --api names asks every other member, at once, for its Raft state; a member that\n"+
					"does not answer within 2 s is listed as unreachable, whatever role it last had.\n\n"+
					"Examples:\n  edgeacs cluster status\n  edgeacs cluster status --api http://10.0.0.2:7080 --json",
				clusterStatus),
			resCommand("join", "add a node (already running, started without --join) as a voter", "",
				"Examples:\n  edgeacs cluster join --id n4 --raft-addr 10.0.0.4:7000 --api-addr 10.0.0.4:7080",
				clusterJoin,
				&cli.StringFlag{Name: "id", Usage: "ID of the node to add (required)"},
				&cli.StringFlag{Name: "raft-addr", Usage: "its Raft address HOST:PORT (required)"},
				&cli.StringFlag{Name: "api-addr", Usage: "its API address HOST:PORT (registered, shown by cluster status)"},
				&cli.BoolFlag{Name: "replace", Usage: "evict a member with the same ID or raft address at another address (only if that member is gone for good)"},
			),
			resCommand("remove", "remove a node from the cluster", "[ID]",
				"Examples:\n  edgeacs cluster remove n3\n  edgeacs cluster remove --id n3",
				clusterRemove, &cli.StringFlag{Name: "id", Usage: "ID of the node to remove"}),
		},
	}
}

func clusterStatus(c *cli.Context, cl *client.Client) error {
	if err := resNoArg(c); err != nil {
		return err
	}
	st, err := cl.Cluster(c.Context)
	if err != nil {
		return apiFail(c, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, st)
	}
	printClusterTable(c.App.Writer, st)
	return nil
}

func clusterJoin(c *cli.Context, cl *client.Client) error {
	req := client.JoinRequest{ID: c.String("id"), RaftAddr: c.String("raft-addr"), APIAddr: c.String("api-addr"), Replace: c.Bool("replace")}
	if req.ID == "" || req.RaftAddr == "" || c.Args().Len() > 0 {
		return usageErr(c, "--id and --raft-addr are required, and nothing else")
	}
	out, err := cl.JoinCluster(c.Context, req)
	if err != nil {
		return apiFail(c, err)
	}
	return resDone(c, out, "joined %s", req.ID)
}

func clusterRemove(c *cli.Context, cl *client.Client) error {
	id := c.String("id")
	if id == "" {
		id = c.Args().First()
	}
	if id == "" || c.Args().Len() > 1 || (c.String("id") != "" && c.Args().Len() > 0) {
		return usageErr(c, "give exactly one node ID (--id or argument)")
	}
	out, err := cl.RemoveFromCluster(c.Context, id)
	if err != nil {
		return apiFail(c, err)
	}
	return resDone(c, out, "removed %s", id)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printClusterTable shows each member's state as it reported it; a
// cluster status from before members were asked has none, and then the
// role is the answering node's view.
func printClusterTable(w io.Writer, st client.ClusterStatus) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tAPI ADDRESS\tSUFFRAGE\tSTATE")
	leaderUp := false
	for _, s := range st.Servers {
		state := s.State
		if state == "" {
			state = "follower"
			if s.ID == st.Leader {
				state = "leader"
			}
		}
		if s.ID == st.Leader && state != client.StateUnreachable {
			leaderUp = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Address, orDash(s.APIAddr), s.Suffrage, state)
	}
	tw.Flush()
	switch {
	case st.Leader == "":
		fmt.Fprintln(w, "no leader: an election is under way, or too few voters are reachable")
	case !leaderUp:
		fmt.Fprintf(w, "no leader reachable: %s, the last one known, does not answer; an election is under way\n", st.Leader)
	}
}

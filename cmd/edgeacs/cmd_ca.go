package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	fleetsync "github.com/edgeacs/edgeacs/sync"
)

func init() { registerCommand(caCommand()) }

func caCommand() *cli.Command {
	dirFlag := func() cli.Flag {
		return &cli.StringFlag{Name: "dir", Usage: "CA directory (holds ca.crt, ca.key and the issued pairs) (required)"}
	}
	return &cli.Command{
		Name:  "ca",
		Usage: "make the cluster CA and the node certificates of the edge-core sync link (mutual TLS)",
		Description: "Run 'ca init' once per cluster, then 'ca issue' for every core node (--role core) and\n" +
			"every edge (--role edge). A node needs ca.crt and its own NAME.crt and NAME.key;\n" +
			"ca.key only ever needs to be where certificates are issued. Nothing is overwritten.",
		Subcommands: []*cli.Command{
			{
				Name:         "init",
				Usage:        "create a new cluster CA: DIR/ca.crt and DIR/ca.key (ECDSA P-256, 10 years)",
				Flags:        []cli.Flag{dirFlag()},
				OnUsageError: exitUsage,
				Action:       runCAInit,
			},
			{
				Name:  "issue",
				Usage: "issue a node certificate signed by the CA in DIR: DIR/NAME.crt and DIR/NAME.key (2 years)",
				Flags: []cli.Flag{
					dirFlag(),
					&cli.StringFlag{Name: "name", Usage: "node ID, as given to the node with --id: 1-128 of A-Z a-z 0-9 . _ - (required)"},
					&cli.StringFlag{Name: "role", Usage: "edge or core (required)"},
					&cli.StringFlag{Name: "key", Value: "ecdsa", Usage: "key type: ecdsa (P-256) or ed25519"},
				},
				OnUsageError: exitUsage,
				Action:       runCAIssue,
			},
		},
	}
}

func runCAInit(c *cli.Context) error {
	dir := c.String("dir")
	if dir == "" || c.Args().Len() > 0 {
		return cli.Exit("edgeacs ca init: --dir is required, and nothing else", 2)
	}
	if err := fleetsync.InitCA(dir); err != nil {
		return cli.Exit("edgeacs ca init: "+err.Error(), 1)
	}
	crt := filepath.Join(dir, fleetsync.CACertFile)
	w := c.App.Writer
	fmt.Fprintf(w, "wrote %s (CA certificate%s; copy it to every node)\n", crt, validUntil(crt))
	fmt.Fprintf(w, "wrote %s (CA private key, mode 0600; keep it where certificates are issued, not on nodes)\n", filepath.Join(dir, fleetsync.CAKeyFile))
	return nil
}

func runCAIssue(c *cli.Context) error {
	dir, name, role, alg := c.String("dir"), c.String("name"), fleetsync.Role(c.String("role")), strings.ToLower(c.String("key"))
	if dir == "" || name == "" || role == "" || c.Args().Len() > 0 {
		return cli.Exit("edgeacs ca issue: --dir, --name and --role are required, and nothing else", 2)
	}
	if err := fleetsync.ValidNodeID(name); err != nil {
		return cli.Exit("edgeacs ca issue: bad --name: "+err.Error(), 2)
	}
	if role != fleetsync.RoleEdge && role != fleetsync.RoleCore {
		return cli.Exit(fmt.Sprintf("edgeacs ca issue: bad --role %q: want edge or core", role), 2)
	}
	if alg != "ecdsa" && alg != "ed25519" {
		return cli.Exit(fmt.Sprintf("edgeacs ca issue: bad --key %q: want ecdsa or ed25519", c.String("key")), 2)
	}
	if err := fleetsync.IssueCert(dir, name, role, alg); err != nil {
		return cli.Exit("edgeacs ca issue: "+err.Error(), 1)
	}
	crt := filepath.Join(dir, name+".crt")
	w := c.App.Writer
	fmt.Fprintf(w, "wrote %s (%s certificate for %s, %s key%s)\n", crt, role, name, alg, validUntil(crt))
	fmt.Fprintf(w, "wrote %s (private key, mode 0600)\n", filepath.Join(dir, name+".key"))
	fmt.Fprintf(w, "give node %s: %s, %s and %s\n", name, filepath.Join(dir, fleetsync.CACertFile), crt, filepath.Join(dir, name+".key"))
	return nil
}

// validUntil reads a certificate file just written and describes its
// expiry for the summary ("" if it cannot be read, which the write itself
// would have reported).
func validUntil(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	return ", valid until " + cert.NotAfter.UTC().Format(time.DateOnly)
}

package sync

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// caFixture is a CA directory with a few nodes issued in it.
func caFixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := InitCA(dir); err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	for _, n := range []struct {
		name string
		role Role
		alg  string
	}{
		{"core-1", RoleCore, "ecdsa"},
		{"core-2", RoleCore, ""},
		{"core-ed", RoleCore, "ed25519"},
		{"edge-1", RoleEdge, "ecdsa"},
		{"edge-2", RoleEdge, "ecdsa"},
		{"edge-ed", RoleEdge, "ed25519"},
	} {
		if err := IssueCert(dir, n.name, n.role, n.alg); err != nil {
			t.Fatalf("IssueCert(%s): %v", n.name, err)
		}
	}
	past := time.Now().Add(-72 * time.Hour)
	if err := issueCert(dir, "edge-old", RoleEdge, "ecdsa", past, past.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := issueCert(dir, "core-old", RoleCore, "ecdsa", past, past.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rawPair loads a pair without any of the role checks, to play a
// misconfigured or hostile peer.
func rawPair(t *testing.T, dir, name string) tls.Certificate {
	t.Helper()
	p, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rawServer is a server config that presents name's pair and checks nothing.
func rawServer(t *testing.T, dir, name string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{rawPair(t, dir, name)}, NextProtos: []string{ALPN}}
}

// rawClient is a client config that presents name's pair and checks nothing.
// It presents the pair even when the server does not list its CA.
func rawClient(t *testing.T, dir, name string) *tls.Config {
	p := rawPair(t, dir, name)
	return &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &p, nil },
	}
}

type handshakeResult struct {
	serverErr, clientErr error
	server, client       tls.ConnectionState
}

// handshake runs one TLS handshake over loopback TCP. In TLS 1.3 the client
// finishes before the server has checked its certificate, so the client
// reads one byte that the server writes after a successful handshake: a
// refusal by the server then shows up as the client's error too.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var res handshakeResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			res.serverErr = err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if res.serverErr = tc.Handshake(); res.serverErr == nil {
			res.server = tc.ConnectionState()
			_, res.serverErr = tc.Write([]byte{1})
		}
	}()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cliCfg)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		res.client = c.ConnectionState()
		var b [1]byte
		_, err = c.Read(b[:])
		c.Close()
	}
	res.clientErr = err
	<-done
	return res
}

func TestCAHandshake(t *testing.T) {
	dir := caFixture(t)
	other := filepath.Join(t.TempDir(), "other")
	if err := InitCA(other); err != nil {
		t.Fatal(err)
	}
	if err := IssueCert(other, "edge-1", RoleEdge, "ecdsa"); err != nil {
		t.Fatal(err)
	}
	if err := IssueCert(other, "core-1", RoleCore, "ecdsa"); err != nil {
		t.Fatal(err)
	}
	revoked := func(name string) bool { return name == "edge-2" }

	server := func(id string) *tls.Config {
		cfg, err := ServerTLS(dir, id, revoked)
		if err != nil {
			t.Fatalf("ServerTLS(%s): %v", id, err)
		}
		return cfg
	}
	client := func(d, id string) *tls.Config {
		cfg, err := ClientTLS(d, id)
		if err != nil {
			t.Fatalf("ClientTLS(%s): %v", id, err)
		}
		return cfg
	}
	// A client with the edge-1 pair of dir but that trusts the other CA's
	// ca.crt: it must refuse dir's core.
	foreignTrust := func() *tls.Config {
		cfg := client(dir, "edge-1")
		good := client(other, "edge-1")
		cfg.RootCAs = good.RootCAs
		verify := good.VerifyConnection
		cfg.VerifyConnection = verify
		return cfg
	}

	tests := []struct {
		name       string
		srv, cli   func() *tls.Config
		wantName   string // peer the server sees on success
		wantPeer   string // peer the client sees on success
		serverErr  []string
		serverIs   error
		clientErr  []string
		clientFail bool
	}{
		{name: "edge-core ok", srv: func() *tls.Config { return server("core-1") }, cli: func() *tls.Config { return client(dir, "edge-1") }, wantName: "edge-1", wantPeer: "core-1"},
		{name: "ed25519 both sides", srv: func() *tls.Config { return server("core-ed") }, cli: func() *tls.Config { return client(dir, "edge-ed") }, wantName: "edge-ed", wantPeer: "core-ed"},
		{name: "ed25519 edge, ecdsa core", srv: func() *tls.Config { return server("core-1") }, cli: func() *tls.Config { return client(dir, "edge-ed") }, wantName: "edge-ed", wantPeer: "core-1"},
		{
			name: "edge from another CA", srv: func() *tls.Config { return server("core-1") },
			cli:       func() *tls.Config { return rawClient(t, other, "edge-1") },
			serverErr: []string{"unknown authority"}, clientFail: true,
		},
		{
			name: "core certificate used as client", srv: func() *tls.Config { return server("core-1") },
			cli:       func() *tls.Config { return rawClient(t, dir, "core-2") },
			serverErr: []string{`"core-2"`, "core certificate", "edge certificate is required"}, serverIs: ErrWrongRole, clientFail: true,
		},
		{
			name: "edge certificate used as server", srv: func() *tls.Config { return rawServer(t, dir, "edge-2") },
			cli:       func() *tls.Config { return client(dir, "edge-1") },
			clientErr: []string{`"edge-2"`, "edge certificate", "core certificate is required"}, clientFail: true,
		},
		{
			name: "edge of another cluster", srv: func() *tls.Config { return server("core-1") },
			cli:       func() *tls.Config { return client(other, "edge-1") },
			clientErr: []string{"unknown authority"}, clientFail: true,
		},
		{
			name: "server from another CA", srv: func() *tls.Config { return rawServer(t, other, "core-1") },
			cli:       func() *tls.Config { return client(dir, "edge-1") },
			clientErr: []string{"unknown authority"}, clientFail: true,
		},
		{
			name: "client trusting another CA", srv: func() *tls.Config { return server("core-1") },
			cli:       foreignTrust,
			clientErr: []string{"unknown authority"}, clientFail: true,
		},
		{
			name: "revoked edge", srv: func() *tls.Config { return server("core-1") },
			cli:       func() *tls.Config { return client(dir, "edge-2") },
			serverErr: []string{`"edge-2"`, "revoked"}, serverIs: ErrRevoked, clientFail: true,
		},
		{
			name: "expired edge", srv: func() *tls.Config { return server("core-1") },
			cli:       func() *tls.Config { return rawClient(t, dir, "edge-old") },
			serverErr: []string{"expired"}, clientFail: true,
		},
		{
			name: "expired core", srv: func() *tls.Config { return rawServer(t, dir, "core-old") },
			cli:       func() *tls.Config { return client(dir, "edge-1") },
			clientErr: []string{"expired"}, clientFail: true,
		},
		{
			name: "client without a certificate", srv: func() *tls.Config { return server("core-1") },
			cli: func() *tls.Config {
				return &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, InsecureSkipVerify: true}
			},
			serverErr: []string{"certificate"}, clientFail: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := handshake(t, tt.srv(), tt.cli())
			if !tt.clientFail && tt.serverErr == nil {
				if r.serverErr != nil || r.clientErr != nil {
					t.Fatalf("handshake failed: server %v, client %v", r.serverErr, r.clientErr)
				}
				if r.server.NegotiatedProtocol != ALPN || r.server.Version != tls.VersionTLS13 {
					t.Errorf("ALPN %q version %x", r.server.NegotiatedProtocol, r.server.Version)
				}
				name, role, err := PeerIdentity(r.server)
				if err != nil || name != tt.wantName || role != RoleEdge {
					t.Errorf("server sees %q %q %v, want %q edge", name, role, err, tt.wantName)
				}
				name, role, err = PeerIdentity(r.client)
				if err != nil || name != tt.wantPeer || role != RoleCore {
					t.Errorf("client sees %q %q %v, want %q core", name, role, err, tt.wantPeer)
				}
				return
			}
			if tt.clientFail && r.clientErr == nil {
				t.Errorf("client: no error")
			}
			if tt.serverErr != nil {
				if r.serverErr == nil {
					t.Fatalf("server accepted; want error with %q", tt.serverErr)
				}
				for _, s := range tt.serverErr {
					if !strings.Contains(r.serverErr.Error(), s) {
						t.Errorf("server error %q lacks %q", r.serverErr, s)
					}
				}
			}
			if tt.serverIs != nil && !errors.Is(r.serverErr, tt.serverIs) {
				t.Errorf("server error %v is not %v", r.serverErr, tt.serverIs)
			}
			for _, s := range tt.clientErr {
				if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), s) {
					t.Errorf("client error %v lacks %q", r.clientErr, s)
				}
			}
		})
	}
}

func TestCANodeConfigRefusals(t *testing.T) {
	dir := caFixture(t)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"server with an edge certificate", func() error { _, err := ServerTLS(dir, "edge-1", nil); return err }, "role edge"},
		{"client with a core certificate", func() error { _, err := ClientTLS(dir, "core-1"); return err }, "role core"},
		{"server with an expired certificate", func() error { _, err := ServerTLS(dir, "core-old", nil); return err }, "expired"},
		{"client with an expired certificate", func() error { _, err := ClientTLS(dir, "edge-old"); return err }, "expired"},
		{"missing pair", func() error { _, err := ServerTLS(dir, "core-9", nil); return err }, "no such file"},
		{"bad id", func() error { _, err := ClientTLS(dir, "x/../ca"); return err }, "not allowed"},
		{"no CA", func() error { _, err := ServerTLS(t.TempDir(), "core-1", nil); return err }, "CA certificate"},
	}
	for _, tt := range tests {
		err := tt.call()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	// A pair renamed to another node's file name is refused.
	for _, ext := range []string{".crt", ".key"} {
		b, err := os.ReadFile(filepath.Join(dir, "core-2"+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "core-x"+ext), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ServerTLS(dir, "core-x", nil); err == nil || !strings.Contains(err.Error(), `for "core-2", not "core-x"`) {
		t.Errorf("renamed pair: %v", err)
	}
}

func TestCAInitTwice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := InitCA(dir); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, CAKeyFile): 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	crt, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	key, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	err := InitCA(dir)
	if err == nil || !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second InitCA: %v", err)
	}
	crt2, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	key2, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(crt, crt2) || !bytes.Equal(key, key2) {
		t.Fatal("second InitCA changed the CA files")
	}
	// Only one of the two files left behind is enough to refuse, and the
	// missing one is not created.
	if err := os.Remove(filepath.Join(dir, CACertFile)); err != nil {
		t.Fatal(err)
	}
	if err := InitCA(dir); err == nil || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("InitCA with ca.key left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ca.crt recreated: %v", err)
	}

	c, err := readCACert(mustInit(t))
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || time.Until(c.NotAfter) < 9*365*24*time.Hour {
		t.Errorf("CA certificate: IsCA %v MaxPathLen %d NotAfter %v", c.IsCA, c.MaxPathLen, c.NotAfter)
	}
}

func mustInit(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := InitCA(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCAIssueRefusals(t *testing.T) {
	dir := mustInit(t)
	if err := IssueCert(dir, "edge-1", RoleEdge, "ecdsa"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "edge-1.key"))
	tests := []struct {
		dir, name string
		role      Role
		alg, want string
	}{
		{dir, "", RoleEdge, "", "1 to 128"},
		{dir, strings.Repeat("a", 129), RoleEdge, "", "1 to 128"},
		{dir, ".hidden", RoleEdge, "", "start with '.'"},
		{dir, "a/b", RoleEdge, "", "not allowed"},
		{dir, "x/../y", RoleEdge, "", "not allowed"},
		{dir, "..", RoleEdge, "", "start with '.'"},
		{dir, "pop fra", RoleEdge, "", "not allowed"},
		{dir, "pöp", RoleEdge, "", "not allowed"},
		{dir, "ca", RoleCore, "", "reserved"},
		{dir, "CA", RoleCore, "", "reserved"},
		{dir, "n1", "admin", "", "unknown role"},
		{dir, "n1", "", "", "unknown role"},
		{dir, "n1", RoleEdge, "rsa", "unknown key algorithm"},
		{dir, "edge-1", RoleEdge, "", "already exists"},
		{dir, "edge-1", RoleCore, "", "already exists"},
		{t.TempDir(), "n1", RoleEdge, "", "CA certificate"},
	}
	for _, tt := range tests {
		err := IssueCert(tt.dir, tt.name, tt.role, tt.alg)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "issue ") {
			t.Errorf("IssueCert(%q, %q, %q): %v, want error containing %q", tt.name, tt.role, tt.alg, err, tt.want)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, "edge-1.key"))
	if !bytes.Equal(before, after) {
		t.Error("refused IssueCert changed edge-1.key")
	}
	if _, err := os.Stat(filepath.Join(dir, "n1.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused IssueCert left n1.key: %v", err)
	}
	// A 128-character name is fine.
	if err := IssueCert(dir, strings.Repeat("a", 128), RoleEdge, "ed25519"); err != nil {
		t.Error(err)
	}
}

func TestCACertificateContents(t *testing.T) {
	dir := caFixture(t)
	for _, tt := range []struct {
		name string
		role Role
		alg  x509.PublicKeyAlgorithm
	}{{"edge-1", RoleEdge, x509.ECDSA}, {"core-ed", RoleCore, x509.Ed25519}} {
		b, err := os.ReadFile(filepath.Join(dir, tt.name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject.CommonName != tt.name || len(c.Subject.OrganizationalUnit) != 1 || c.Subject.OrganizationalUnit[0] != "edgeacs-"+string(tt.role) {
			t.Errorf("%s subject %v", tt.name, c.Subject)
		}
		if len(c.URIs) != 1 || c.URIs[0].String() != "edgeacs://"+string(tt.role)+"/"+tt.name {
			t.Errorf("%s URIs %v", tt.name, c.URIs)
		}
		if c.PublicKeyAlgorithm != tt.alg || c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
			t.Errorf("%s: alg %v IsCA %v KeyUsage %v", tt.name, c.PublicKeyAlgorithm, c.IsCA, c.KeyUsage)
		}
		if len(c.ExtKeyUsage) != 2 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || c.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
			t.Errorf("%s ExtKeyUsage %v", tt.name, c.ExtKeyUsage)
		}
		if life := time.Until(c.NotAfter); life < 2*365*24*time.Hour-time.Hour || life > 2*366*24*time.Hour {
			t.Errorf("%s valid for %v, want 2 years", tt.name, life)
		}
		if name, role, err := identityOf(c); err != nil || name != tt.name || role != tt.role {
			t.Errorf("identityOf(%s) = %q %q %v", tt.name, name, role, err)
		}
		st, err := os.Stat(filepath.Join(dir, tt.name+".key"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s.key mode: %v %v", tt.name, st, err)
		}
	}
}

func TestCAIdentityParsing(t *testing.T) {
	dir := caFixture(t)
	b, _ := os.ReadFile(filepath.Join(dir, "edge-1.crt"))
	blk, _ := pem.Decode(b)
	good, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(c *x509.Certificate)
	}{
		{"no URI", func(c *x509.Certificate) { c.URIs = nil }},
		{"two identities", func(c *x509.Certificate) { c.URIs = append(c.URIs, identityURI("edge-2", RoleEdge)) }},
		{"unknown role", func(c *x509.Certificate) {
			c.URIs = c.URIs[:0:0]
			c.URIs = append(c.URIs, identityURI("edge-1", "admin"))
		}},
		{"bad name", func(c *x509.Certificate) { c.URIs = nil; c.URIs = append(c.URIs, identityURI("../x", RoleEdge)) }},
		{"CN disagrees", func(c *x509.Certificate) { c.Subject.CommonName = "edge-2" }},
		{"OU disagrees", func(c *x509.Certificate) { c.Subject.OrganizationalUnit = []string{"edgeacs-core"} }},
		{"two OUs", func(c *x509.Certificate) { c.Subject.OrganizationalUnit = []string{"edgeacs-edge", "edgeacs-core"} }},
	}
	for _, tt := range tests {
		c := *good
		c.Subject.OrganizationalUnit = append([]string(nil), good.Subject.OrganizationalUnit...)
		tt.mutate(&c)
		if _, _, err := identityOf(&c); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: %v, want ErrNoIdentity", tt.name, err)
		}
	}
	if _, _, err := PeerIdentity(tls.ConnectionState{}); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("no peer: %v", err)
	}
}

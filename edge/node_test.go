package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		return Config{ID: "e1", DataDir: "/tmp/x", Username: "u", Password: "p", Standalone: true}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "edge id"},
		{"no data", func(c *Config) { c.DataDir = "" }, "data directory"},
		{"bad cwmp addr", func(c *Config) { c.CWMPAddr = "7547" }, "cwmp address"},
		{"bad stun addr", func(c *Config) { c.STUNAddr = "nope" }, "stun address"},
		{"cert without key", func(c *Config) { c.TLSCert = "c.pem" }, "--tls-cert and --tls-key"},
		{"unknown auth", func(c *Config) { c.CPEAuth = "kerberos" }, "want none, basic or digest"},
		{"basic over http", func(c *Config) { c.CPEAuth = AuthBasic }, "clear"},
		{"basic over http allowed", func(c *Config) { c.CPEAuth = AuthBasic; c.AllowBasicOverHTTP = true }, ""},
		{"basic over tls", func(c *Config) { c.CPEAuth = AuthBasic; c.TLSCert, c.TLSKey = "c", "k" }, ""},
		{"digest without credentials", func(c *Config) { c.Username = "" }, "needs --username"},
		{"none without credentials", func(c *Config) { c.CPEAuth = AuthNone; c.Username = "" }, ""},
		{"tiny body limit", func(c *Config) { c.MaxBodyBytes = 100 }, "max body"},
		{"tiny session timeout", func(c *Config) { c.SessionTimeout = time.Millisecond }, "session timeout"},
		{"not standalone, no core", func(c *Config) { c.Standalone = false }, "--core (the core nodes' sync addresses) is required"},
		{"not standalone, bad core", func(c *Config) { c.Standalone, c.Core = false, []string{"nohostport"} }, "--core address"},
		{"not standalone, no CA", func(c *Config) { c.Standalone, c.Core = false, []string{"127.0.0.1:7443"} }, "--ca-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			c.SetDefaults()
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.CPEAuth != AuthDigest || c.MaxBodyBytes != 4<<20 || c.SessionTimeout != 30*time.Second ||
		c.APIAddr != "127.0.0.1:7557" || c.CWMPAddr != "0.0.0.0:7547" || c.Realm != "edgeacs" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestNodeRunTwiceAndAddrs(t *testing.T) {
	e := startEdge(t, "", nil)
	a := e.node.Addrs()
	for _, s := range []string{a.CWMP, a.API, a.STUN} {
		if s == "" || strings.HasSuffix(s, ":0") {
			t.Fatalf("addrs %+v", a)
		}
	}
	if err := e.node.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestNodeBindFailure(t *testing.T) {
	e := startEdge(t, "", nil)
	n, err := New(Config{ID: "dup", DataDir: t.TempDir(), CWMPAddr: e.node.Addrs().CWMP, APIAddr: "127.0.0.1:0",
		CPEAuth: AuthNone, Standalone: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen for CWMP") {
		t.Fatalf("Run on a taken port: %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "edge-test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSWithBasicAuth: HTTPS for CPEs, where basic auth is allowed
// without the override flag; simulated CPEs verify the certificate.
func TestTLSWithBasicAuth(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	e := startEdge(t, "", func(c *Config) { c.TLSCert, c.TLSKey, c.CPEAuth = certFile, keyFile, AuthBasic })
	e.acs = "https://" + e.node.Addrs().CWMP + "/"
	f := startFleet(t, e, 2, func(c *sim.Config) { c.RootCAs = pool })
	waitInformed(t, e, f)
	task := e.postTask(f.Device(0).ID(), `{"name":"getRPCMethods"}`, "connection_request&wait=10s")
	if task.Status != fleet.StatusDone {
		t.Fatalf("task over TLS: %s", task.Status)
	}
	if !strings.HasPrefix(e.device(f.Device(0).ID()).RemoteAddr, "127.0.0.1:") {
		t.Fatal("no remote address recorded")
	}
}

func TestTLSBadCertificateFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.pem"), []byte("not a cert"), 0o600)
	n, err := New(Config{ID: "x", DataDir: t.TempDir(), CWMPAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", CPEAuth: AuthNone,
		TLSCert: filepath.Join(dir, "c.pem"), TLSKey: filepath.Join(dir, "c.pem"), Standalone: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("Run with a bad certificate: %v", err)
	}
}

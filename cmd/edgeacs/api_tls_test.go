package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgeacs/edgeacs/core"
	"github.com/edgeacs/edgeacs/internal/testnet"
)

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and
// localhost, and its key, into dir; pool trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "edgeacs api test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// freeTCPAddr reserves a loopback port (see internal/testnet): the
// commands under test take addresses, not listeners.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	return testnet.Addr(t)
}

// runApp runs `edgeacs args...` until ctx ends; the returned channel
// yields the exit code.
func runApp(ctx context.Context, args ...string) <-chan int {
	done := make(chan int, 1)
	go func() {
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := app.RunContext(ctx, append([]string{"edgeacs", "--log-level", "error"}, args...))
		code := 0
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		} else if err != nil {
			code = 1
		}
		done <- code
	}()
	return done
}

// waitHTTPS polls url with a client trusting pool until it answers 200.
func waitHTTPS(t *testing.T, url string, pool *x509.CertPool, exited <-chan int) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case code := <-exited:
			t.Fatalf("the node exited (%d) before %s answered: %s", code, url, last)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200: %s", url, last)
		}
		time.Sleep(20 * time.Millisecond) // polling a starting process, not synchronisation
	}
}

// loadCoreVia parses args as `edgeacs core ...` and returns the loaded
// config and error, without starting a node.
func loadCoreVia(t *testing.T, args ...string) (core.Config, error) {
	t.Helper()
	cmd := coreCommand()
	var got core.Config
	var lerr error
	cmd.Action = func(c *cli.Context) error { got, lerr = loadCoreConfig(c); return nil }
	app := &cli.App{Name: "edgeacs", Commands: []*cli.Command{cmd}}
	if err := app.Run(append([]string{"edgeacs", "core"}, args...)); err != nil {
		t.Fatalf("app.Run: %v", err)
	}
	return got, lerr
}

// TestCoreAPITLSFlags: a non-loopback --api-addr needs --api-tls-cert and
// --api-tls-key or --api-insecure, by flag or YAML key.
func TestCoreAPITLSFlags(t *testing.T) {
	dir := t.TempDir()
	_, err := loadCoreVia(t, "--id", "n1", "--api-addr", "0.0.0.0:7080")
	if err == nil || !strings.Contains(err.Error(), "--api-tls-cert") || !strings.Contains(err.Error(), "--api-insecure") {
		t.Fatalf("plain HTTP on 0.0.0.0: %v, want an error naming --api-tls-cert and --api-insecure", err)
	}
	if _, err := loadCoreVia(t, "--id", "n1", "--api-addr", "0.0.0.0:7080", "--api-tls-cert", "api.crt"); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("certificate without key: %v", err)
	}
	cfg, err := loadCoreVia(t, "--id", "n1", "--api-addr", "0.0.0.0:7080", "--api-insecure")
	if err != nil || !cfg.APIInsecure {
		t.Fatalf("--api-insecure: %v %+v", err, cfg)
	}
	cfg, err = loadCoreVia(t, "--id", "n1", "--api-addr", "10.0.0.1:7080", "--api-tls-cert", "a.crt", "--api-tls-key", "a.key")
	if err != nil || cfg.APITLSCert != "a.crt" || cfg.APITLSKey != "a.key" {
		t.Fatalf("--api-tls-cert/--api-tls-key: %v %+v", err, cfg)
	}
	yml := filepath.Join(dir, "core.yaml")
	os.WriteFile(yml, []byte("id: n1\napiAddr: 0.0.0.0:7080\napiTLSCert: y.crt\napiTLSKey: y.key\n"), 0o600)
	if cfg, err = loadCoreVia(t, "--config", yml); err != nil || cfg.APITLSCert != "y.crt" || cfg.APITLSKey != "y.key" {
		t.Fatalf("YAML apiTLSCert/apiTLSKey: %v %+v", err, cfg)
	}
	os.WriteFile(yml, []byte("id: n1\napiAddr: 0.0.0.0:7080\napiInsecure: true\n"), 0o600)
	if cfg, err = loadCoreVia(t, "--config", yml); err != nil || !cfg.APIInsecure {
		t.Fatalf("YAML apiInsecure: %v %+v", err, cfg)
	}
	// The default stays loopback, plain HTTP.
	if cfg, err = loadCoreVia(t, "--id", "n1"); err != nil || cfg.APIAddr != defaultCoreAPIAddr || cfg.APITLSCert != "" {
		t.Fatalf("defaults: %v %+v", err, cfg)
	}
	if _, code := runCoreArgs(t, "--id", "n1", "--api-addr", "0.0.0.0:7080"); code != 2 {
		t.Fatalf("edgeacs core with plain HTTP on 0.0.0.0: exit %d, want 2", code)
	}
}

// TestCoreServesAPIOverTLS runs `edgeacs core` with a self-signed API
// certificate: the API answers over HTTPS only, and `edgeacs cluster
// status` reaches it with --api-ca.
func TestCoreServesAPIOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSignedCert(t, dir)
	api := freeTCPAddr(t)
	stageSecret(t, filepath.Join(dir, "data"))
	ctx, cancel := context.WithCancel(context.Background())
	exited := runApp(ctx, "core", "--id", "n1", "--data", filepath.Join(dir, "data"), "--raft-addr", freeTCPAddr(t), "--api-addr", api,
		"--api-tls-cert", cert, "--api-tls-key", key, "--bootstrap", "--raft-nosync", "--heartbeat-timeout", "300ms", "--election-timeout", "300ms")
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("edgeacs core exited %d", code)
		}
	}()
	waitHTTPS(t, "https://"+api+"/readyz", pool, exited)
	waitSecretFile(t, filepath.Join(dir, "data"))

	// Plain HTTP gets nothing from it.
	plain := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + api + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the TLS API answered plain HTTP")
		}
	}

	oldExit := cli.OsExiter
	defer func() { cli.OsExiter = oldExit }()
	run := func(args ...string) (string, int) {
		code := 0
		cli.OsExiter = func(c int) { code = c }
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, io.Discard
		err := app.Run(append([]string{"edgeacs", "cluster", "status"}, args...))
		var ec cli.ExitCoder
		if code == 0 && errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		return out.String(), code
	}
	out, code := run("--api", "https://"+api, "--api-ca", cert, "--json")
	var st core.ClusterStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Leader != "n1" {
		t.Fatalf("cluster status over TLS with --api-ca: exit %d %q", code, out)
	}
	if _, code := run("--api", "https://"+api); code != 1 {
		t.Fatalf("cluster status without trusting the certificate: exit %d, want 1", code)
	}
	if _, code := run("--api", "https://"+api, "--api-ca", filepath.Join(dir, "none.pem")); code != 2 {
		t.Fatalf("cluster status with a missing --api-ca: exit %d, want 2", code)
	}
}

// TestEdgeAPITLSFlags: as for the core, by flag or YAML key.
func TestEdgeAPITLSFlags(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--id", "e", "--data", dir, "--standalone", "--cpe-auth", "none"}
	_, err := loadVia(t, append(base, "--api-addr", "0.0.0.0:7557")...)
	if err == nil || !strings.Contains(err.Error(), "--api-tls-cert") || !strings.Contains(err.Error(), "--api-insecure") {
		t.Fatalf("plain HTTP on 0.0.0.0: %v, want an error naming --api-tls-cert and --api-insecure", err)
	}
	if _, err := loadVia(t, append(base, "--api-addr", "0.0.0.0:7557", "--api-tls-key", "a.key")...); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("key without certificate: %v", err)
	}
	cfg, err := loadVia(t, append(base, "--api-addr", "0.0.0.0:7557", "--api-insecure")...)
	if err != nil || !cfg.APIInsecure {
		t.Fatalf("--api-insecure: %v %+v", err, cfg)
	}
	cfg, err = loadVia(t, append(base, "--api-addr", "[::]:7557", "--api-tls-cert", "a.crt", "--api-tls-key", "a.key")...)
	if err != nil || !cfg.APITLS() {
		t.Fatalf("--api-tls-cert/--api-tls-key: %v %+v", err, cfg)
	}
	yml := filepath.Join(dir, "edge.yaml")
	os.WriteFile(yml, []byte("api_addr: 0.0.0.0:7557\napi_tls_cert: y.crt\napi_tls_key: y.key\n"), 0o600)
	if cfg, err = loadVia(t, append(base, "--config", yml)...); err != nil || cfg.APITLSCert != "y.crt" || cfg.APITLSKey != "y.key" {
		t.Fatalf("YAML api_tls_cert/api_tls_key: %v %+v", err, cfg)
	}
	os.WriteFile(yml, []byte("api_addr: 0.0.0.0:7557\napi_insecure: true\n"), 0o600)
	if cfg, err = loadVia(t, append(base, "--config", yml)...); err != nil || !cfg.APIInsecure {
		t.Fatalf("YAML api_insecure: %v %+v", err, cfg)
	}
	if cfg, err = loadVia(t, base...); err != nil || cfg.APITLS() || cfg.APIInsecure {
		t.Fatalf("defaults: %v %+v", err, cfg)
	}
}

// TestEdgeServesAPIOverTLS runs `edgeacs edge` with a self-signed API
// certificate: the local API answers over HTTPS.
func TestEdgeServesAPIOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSignedCert(t, dir)
	api := freeTCPAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	exited := runApp(ctx, "edge", "--id", "e", "--data", filepath.Join(dir, "data"), "--standalone", "--cpe-auth", "none",
		"--cwmp-addr", "127.0.0.1:0", "--api-addr", api, "--api-tls-cert", cert, "--api-tls-key", key)
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("edgeacs edge exited %d", code)
		}
	}()
	waitHTTPS(t, "https://"+api+"/healthz", pool, exited)
	plain := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + api + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the TLS API answered plain HTTP")
		}
	}
}

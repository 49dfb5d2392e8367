package sync

// The cluster CA and the mutual-TLS configuration of the sync link.
//
// Files. A CA directory holds ca.crt and ca.key (made by InitCA) and one
// <name>.crt / <name>.key pair per node (made by IssueCert). Keys are PKCS#8
// PEM, mode 0600; certificates are PEM, mode 0644. ca.key only ever needs to
// live where certificates are issued: a node needs ca.crt and its own pair.
//
// Identity encoding. A node certificate carries its name and role in exactly
// one URI subject alternative name,
//
//	edgeacs://<role>/<name>     e.g. edgeacs://edge/pop-fra-1, edgeacs://core/core-1
//
// which is the authoritative, machine-read identity. For people reading the
// certificate with openssl, the subject repeats it: CN = <name> and
// OU = edgeacs-<role>. A verifier (PeerIdentity) requires exactly one
// edgeacs: URI SAN, a known role, a valid node name, and a subject that
// agrees with it; anything else is refused as ErrNoIdentity, so a
// certificate can never be read as two different identities.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeacs/edgeacs/internal/tokenfile"
)

// ALPN is the TLS application protocol of the sync link; both sides of a
// QUIC connection must offer it.
const ALPN = "edgeacs-sync/1"

// CACertFile and CAKeyFile are the names of the CA's certificate and private
// key inside a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Role is what a node certificate allows its holder to be on the sync link.
type Role string

// The roles a node certificate can carry.
const (
	// RoleEdge is a sync client: an edge node dialling the core.
	RoleEdge Role = "edge"
	// RoleCore is a sync server: a core node accepting edges.
	RoleCore Role = "core"
)

func (r Role) valid() bool { return r == RoleEdge || r == RoleCore }

// Errors that name why a peer certificate was refused. The messages of the
// errors returned by the TLS configurations wrap them, so callers can test
// with errors.Is and log the full text.
var (
	// ErrWrongRole: the certificate is valid but for the other role (a core
	// certificate presented by a client, an edge certificate by a server).
	ErrWrongRole = errors.New("certificate has the wrong role")
	// ErrRevoked: the certificate's node name is revoked in the cluster.
	ErrRevoked = errors.New("certificate name is revoked")
	// ErrNoIdentity: the certificate does not carry exactly one well-formed
	// edgeacs identity (see the identity encoding above).
	ErrNoIdentity = errors.New("certificate carries no valid edgeacs identity")
)

const (
	// uriScheme is the scheme of the identity URI SAN.
	uriScheme = "edgeacs"
	// ouPrefix prefixes the role in the subject's OrganizationalUnit.
	ouPrefix = "edgeacs-"
	// maxNodeID bounds a node name.
	maxNodeID = 128
	// clockSkew backdates NotBefore so that a node whose clock is a little
	// behind the issuer's accepts a certificate issued a moment ago.
	clockSkew = 5 * time.Minute
	// caYears is the CA's validity: long, because replacing it means
	// reissuing every node certificate at once.
	caYears = 10
	// certYears is a node certificate's validity. Revocation is by name (a
	// list in the replicated state), not by CRL or OCSP, so a lost key is
	// only cut off where that list is checked; a bounded lifetime caps what
	// a leaked key is worth everywhere else. Two years keeps reissuing a
	// rare, deliberate operator task (a POP is visited about that often)
	// rather than a monthly chore that would need automation the cluster
	// does not have yet.
	certYears = 2
)

// ValidNodeID reports whether id can name a node certificate: 1 to 128
// characters of [A-Za-z0-9._-], not starting with '.'. The rule keeps a
// name usable as a file name, in a URI path and in a log line unquoted.
func ValidNodeID(id string) error {
	if id == "" || len(id) > maxNodeID {
		return fmt.Errorf("node name %q must be 1 to %d characters", id, maxNodeID)
	}
	if id[0] == '.' {
		return fmt.Errorf("node name %q must not start with '.'", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("node name %q: character %q not allowed (use A-Z a-z 0-9 . _ -)", id, c)
		}
	}
	return nil
}

// InitCA creates a new cluster CA in dir: an ECDSA P-256 key (dir/ca.key,
// mode 0600) and a self-signed CA certificate valid for 10 years
// (dir/ca.crt). dir is created with mode 0700 if missing; an existing dir
// keeps its mode. It refuses, writing nothing, if either file exists.
func InitCA(dir string) error {
	crtPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	if err := refuseExisting(crtPath, keyPath); err != nil {
		return fmt.Errorf("init CA in %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("init CA: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The serial in the name tells two clusters' CAs apart in the
		// "unknown authority" errors of a miswired node.
		Subject:               pkix.Name{CommonName: "edgeacs cluster CA " + hex.EncodeToString(serial.Bytes()[:4]), Organization: []string{"edgeacs"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.AddDate(caYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0, // node certificates only, no intermediates
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("init CA: create certificate: %w", err)
	}
	if err := writePair(crtPath, der, keyPath, key); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	return nil
}

// IssueCert issues a certificate for node name with the given role, signed
// by the CA in dir, and writes dir/<name>.crt and dir/<name>.key (0600).
// alg is the node's key type: "ecdsa" (P-256, also when empty) or
// "ed25519". The certificate is valid for 2 years (never beyond the CA),
// has CN = name and the identity URI SAN edgeacs://<role>/<name>, and allows
// both TLS server and client authentication. It refuses an invalid node
// name, the reserved name "ca", an unknown role or algorithm, and an
// existing pair for name.
func IssueCert(dir, name string, role Role, alg string) error {
	now := time.Now()
	return issueCert(dir, name, role, alg, now.Add(-clockSkew), now.AddDate(certYears, 0, 0))
}

// issueCert is IssueCert with an explicit validity window (tests use it to
// make expired certificates).
func issueCert(dir, name string, role Role, alg string, notBefore, notAfter time.Time) error {
	if err := ValidNodeID(name); err != nil {
		return fmt.Errorf("issue %s: %w", name, err)
	}
	if strings.EqualFold(name, "ca") {
		return fmt.Errorf("issue %s: the name is reserved for the CA's own files", name)
	}
	if !role.valid() {
		return fmt.Errorf("issue %s: unknown role %q (want %s or %s)", name, role, RoleEdge, RoleCore)
	}
	crtPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := refuseExisting(crtPath, keyPath); err != nil {
		return fmt.Errorf("issue %s: %w", name, err)
	}
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return fmt.Errorf("issue %s: %w", name, err)
	}
	if !time.Now().Before(caCert.NotAfter) {
		return fmt.Errorf("issue %s: the CA in %s expired on %s", name, dir, caCert.NotAfter.UTC().Format(time.RFC3339))
	}
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	var key crypto.Signer
	switch strings.ToLower(alg) {
	case "", "ecdsa":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return fmt.Errorf("issue %s: unknown key algorithm %q (want ecdsa or ed25519)", name, alg)
	}
	if err != nil {
		return fmt.Errorf("issue %s: generate key: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("issue %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         name,
			Organization:       []string{"edgeacs"},
			OrganizationalUnit: []string{ouPrefix + string(role)},
		},
		URIs:                  []*url.URL{identityURI(name, role)},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("issue %s: create certificate: %w", name, err)
	}
	if err := writePair(crtPath, der, keyPath, key); err != nil {
		return fmt.Errorf("issue %s: %w", name, err)
	}
	return nil
}

// ServerTLS returns the TLS configuration of core node id's sync server,
// from dir/ca.crt and dir/<id>.crt/.key. It refuses to start when the pair
// is not a core certificate for id that verifies against the CA. The
// configuration requires TLS 1.3 and ALPN, and a client certificate from
// the CA with role edge whose name is not revoked: revoked (nil means none
// is) is asked on every handshake. A refused client's handshake error names
// the reason and wraps ErrWrongRole, ErrRevoked or ErrNoIdentity, or is the
// x509 verification error (unknown authority, expired).
func ServerTLS(dir, id string, revoked func(name string) bool) (*tls.Config, error) {
	pair, pool, err := loadNode(dir, id, RoleCore, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, fmt.Errorf("sync server TLS: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{ALPN},
		// Every connection presents and verifies a full certificate, so
		// expiry and revocation are checked on each one.
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			// RequireAndVerifyClientCert has verified the chain against
			// ClientCAs (and expiry, and the client-auth usage) by now.
			name, role, err := PeerIdentity(cs)
			if err != nil {
				return fmt.Errorf("refuse client: %w", err)
			}
			if role != RoleEdge {
				return fmt.Errorf("refuse client %q: it presented a %s certificate where an edge certificate is required: %w", name, role, ErrWrongRole)
			}
			if revoked != nil && revoked(name) {
				return fmt.Errorf("refuse edge %q: %w", name, ErrRevoked)
			}
			return nil
		},
	}, nil
}

// ClientTLS returns the TLS configuration of edge id's sync client, from
// dir/ca.crt and dir/<id>.crt/.key. It refuses to start when the pair is not
// an edge certificate for id that verifies against the CA. Cores are
// dialled by IP:port and their certificates name nodes, not hosts, so the
// configuration does not check a host name: it verifies the server's chain
// against the CA itself (InsecureSkipVerify only turns off Go's host-name
// check and chain check, which VerifyConnection replaces) and requires the
// server's certificate to have role core; a refusal names the reason.
func ClientTLS(dir, id string) (*tls.Config, error) {
	pair, pool, err := loadNode(dir, id, RoleEdge, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, fmt.Errorf("sync client TLS: %w", err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Always present the pair, even when the server's list of
		// acceptable CAs does not name its issuer (Go would then send no
		// certificate): the server's log should say "unknown authority",
		// not "no certificate".
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil },
		RootCAs:              pool,
		NextProtos:           []string{ALPN},
		InsecureSkipVerify:   true, // replaced by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("refuse server: it presented no certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{
				Roots:         pool,
				Intermediates: inter,
				CurrentTime:   time.Now(),
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				return fmt.Errorf("refuse server %q: %w", leaf.Subject.CommonName, err)
			}
			name, role, err := identityOf(leaf)
			if err != nil {
				return fmt.Errorf("refuse server: %w", err)
			}
			if role != RoleCore {
				return fmt.Errorf("refuse server %q: it presented a %s certificate where a core certificate is required: %w", name, role, ErrWrongRole)
			}
			return nil
		},
	}, nil
}

// PeerIdentity returns the node name and role of the peer of a connection
// made with a ServerTLS or ClientTLS configuration, read from the peer's
// leaf certificate. On the server that is the leaf of the verified chain;
// on the client, whose chain check is its own VerifyConnection (so Go
// records no verified chain), it is the peer's first certificate, which
// that check verified before the handshake could complete. Do not use it
// on connections from other configurations that skip verification.
func PeerIdentity(cs tls.ConnectionState) (name string, role Role, err error) {
	var leaf *x509.Certificate
	switch {
	case len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0:
		leaf = cs.VerifiedChains[0][0]
	case len(cs.PeerCertificates) > 0:
		leaf = cs.PeerCertificates[0]
	default:
		return "", "", fmt.Errorf("peer identity: no peer certificate: %w", ErrNoIdentity)
	}
	return identityOf(leaf)
}

// identityURI is the identity SAN of a node certificate.
func identityURI(name string, role Role) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: string(role), Path: "/" + name}
}

// identityOf reads and cross-checks the identity of a node certificate.
func identityOf(c *x509.Certificate) (string, Role, error) {
	var id *url.URL
	for _, u := range c.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		if id != nil {
			return "", "", fmt.Errorf("certificate %q has more than one %s: URI: %w", c.Subject.CommonName, uriScheme, ErrNoIdentity)
		}
		id = u
	}
	if id == nil {
		return "", "", fmt.Errorf("certificate %q has no %s: URI: %w", c.Subject.CommonName, uriScheme, ErrNoIdentity)
	}
	role := Role(id.Host)
	name, ok := strings.CutPrefix(id.Path, "/")
	if !role.valid() || !ok || id.User != nil || id.Opaque != "" || id.RawQuery != "" || id.Fragment != "" || id.Port() != "" {
		return "", "", fmt.Errorf("certificate %q: malformed identity %q: %w", c.Subject.CommonName, id, ErrNoIdentity)
	}
	if err := ValidNodeID(name); err != nil {
		return "", "", fmt.Errorf("certificate identity %q: %v: %w", id, err, ErrNoIdentity)
	}
	ou := c.Subject.OrganizationalUnit
	if c.Subject.CommonName != name || len(ou) != 1 || ou[0] != ouPrefix+string(role) {
		return "", "", fmt.Errorf("certificate %q (OU %q) disagrees with its identity %q: %w", c.Subject.CommonName, ou, id, ErrNoIdentity)
	}
	return name, role, nil
}

// loadNode loads node id's pair and the CA pool from dir and checks the
// pair before a node starts with it: the right name and role, and a chain
// to the CA valid now for usage.
func loadNode(dir, id string, want Role, usage x509.ExtKeyUsage) (tls.Certificate, *x509.CertPool, error) {
	if err := ValidNodeID(id); err != nil {
		return tls.Certificate{}, nil, err
	}
	caCert, err := readCACert(dir)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	crtPath, keyPath := filepath.Join(dir, id+".crt"), filepath.Join(dir, id+".key")
	pair, err := tls.LoadX509KeyPair(crtPath, keyPath)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load %s: %w", id, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("load %s: %w", crtPath, err)
		}
		pair.Leaf = leaf
	}
	name, role, err := identityOf(leaf)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load %s: %w", crtPath, err)
	}
	if name != id {
		return tls.Certificate{}, nil, fmt.Errorf("load %s: certificate is for %q, not %q", crtPath, name, id)
	}
	if role != want {
		return tls.Certificate{}, nil, fmt.Errorf("load %s: certificate has role %s, this node needs %s: %w", crtPath, role, want, ErrWrongRole)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load %s: %w", crtPath, err)
	}
	return pair, pool, nil
}

// readCACert reads dir/ca.crt and checks that it is a CA certificate.
func readCACert(dir string) (*x509.Certificate, error) {
	p := filepath.Join(dir, CACertFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read CA certificate %s: no PEM CERTIFICATE block", p)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate %s: %w", p, err)
	}
	if !c.IsCA || !c.BasicConstraintsValid {
		return nil, fmt.Errorf("read CA certificate %s: not a CA certificate", p)
	}
	return c, nil
}

// loadCA reads the CA certificate and its key from dir and checks that
// they belong together.
func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	c, err := readCACert(dir)
	if err != nil {
		return nil, nil, err
	}
	p := filepath.Join(dir, CAKeyFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, nil, fmt.Errorf("read CA key %s: no PEM PRIVATE KEY block", p)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA key %s: %w", p, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("read CA key %s: unsupported key type %T", p, k)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(c.PublicKey) {
		return nil, nil, fmt.Errorf("CA key %s does not match %s", p, filepath.Join(dir, CACertFile))
	}
	return c, signer, nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // keep 16 bytes, so the CA name's 4-byte prefix exists
	return new(big.Int).SetBytes(b), nil
}

// refuseExisting fails with an existsError if any of paths exists.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return existsError(p)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// existsError is the refusal to overwrite a file; it matches fs.ErrExist.
type existsError string

func (e existsError) Error() string { return string(e) + " already exists; refusing to overwrite it" }
func (e existsError) Unwrap() error { return fs.ErrExist }

// writePair writes a key (PKCS#8, 0600) and then its certificate (0644),
// each created exclusively, so that an existing file is never replaced.
// When the certificate cannot be written the key written just before is
// removed again.
func writePair(crtPath string, der []byte, keyPath string, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := writeNew(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		_ = os.Remove(keyPath)
		return err
	}
	tokenfile.SyncDir(keyPath) // make the new names durable where the OS allows it
	return nil
}

// writeNew creates path (failing with existsError if it exists), writes
// data and syncs it; on failure it removes what it created.
func writeNew(path string, data []byte, perm os.FileMode) error {
	err := tokenfile.CreateNew(path, data, perm)
	if errors.Is(err, fs.ErrExist) {
		return existsError(path)
	}
	return err
}

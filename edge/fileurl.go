package edge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Signed file URLs. With files_auth on (the default), the CWMP listener
// serves /files/<name> only to a request that proves it may have it. Most
// CPEs fetch a Download's URL with no credentials at all (or with the
// Download's Username/Password, which would put a password in the SOAP body
// in the clear over HTTP), so the edge signs the URL it puts in each
// Download instead: /files/<name>?exp=<unix seconds>&sig=<HMAC>. The
// signature covers the name and the expiry, under a random key kept in the
// cache (so URLs survive a restart) and never sent anywhere. A URL is a
// bearer capability for one file until it expires; nothing else is needed
// to use it, and it cannot be stretched to another file or a later time.

// ErrBadFileURL means a /files/ URL whose signature is missing, malformed,
// wrong or expired (the listener answers 403).
var ErrBadFileURL = errors.New("edge: file URL not signed or expired")

// fileSigLen is the signature's length in bytes before base64: 128 bits
// keep forgery hopeless and the URL short (TR-069 Download URLs are
// string(256)).
const fileSigLen = 16

// loadFileKey reads the URL signing key, creating it on first use.
func (c *Cache) loadFileKey() ([]byte, error) {
	var key []byte
	err := c.update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(kFileKey))
		if err == nil {
			key, err = item.ValueCopy(nil)
			return err
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		key = make([]byte, 32)
		_, _ = rand.Read(key) // never fails since Go 1.24
		return txn.Set([]byte(kFileKey), key)
	})
	if err != nil {
		return nil, fmt.Errorf("load file URL key: %w", err)
	}
	return key, nil
}

func (c *Cache) fileSig(name string, exp int64) []byte {
	m := hmac.New(sha256.New, c.fileKey)
	m.Write([]byte("edgeacs-file\x00"))
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(strconv.AppendInt(nil, exp, 10))
	return m.Sum(nil)[:fileSigLen]
}

// signedFileQuery returns the query string ("exp=…&sig=…") that lets a
// client fetch the file name from the CWMP listener until exp.
func (c *Cache) signedFileQuery(name string, exp time.Time) string {
	e := exp.Unix()
	return "exp=" + strconv.FormatInt(e, 10) + "&sig=" + base64.RawURLEncoding.EncodeToString(c.fileSig(name, e))
}

// verifyFileURL checks a /files/ request's signature for name at now; an
// error wraps ErrBadFileURL.
func (c *Cache) verifyFileURL(name string, q url.Values, now time.Time) error {
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no expiry", ErrBadFileURL)
	}
	sig, err := base64.RawURLEncoding.DecodeString(q.Get("sig"))
	if err != nil || len(sig) != fileSigLen {
		return fmt.Errorf("%w: malformed signature", ErrBadFileURL)
	}
	if !hmac.Equal(sig, c.fileSig(name, exp)) {
		return fmt.Errorf("%w: wrong signature", ErrBadFileURL)
	}
	if now.Unix() > exp {
		return fmt.Errorf("%w: expired %s ago", ErrBadFileURL, now.Sub(time.Unix(exp, 0)).Round(time.Second))
	}
	return nil
}

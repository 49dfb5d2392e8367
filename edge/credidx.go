package edge

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/httpapi"
)

// The CWMP listener authenticates a CPE from its request headers alone,
// before it reads the body: a client that cannot authenticate then costs no
// body, no decompression and no parse. The Authorization header names a
// username, not a device, so per-device credentials are also indexed by
// username: u/<username> lists the devices whose own credentials use it,
// with their passwords, and one point read finds every candidate. The
// session then checks that the Inform's DeviceId is one the credentials
// belong to (see identity).

// MaxDevicesPerUsername bounds how many devices' own credentials may share
// one username. Each is a password to try against a digest response before
// the body is read; per-device usernames are meant to be (nearly) unique,
// and credentials common to many devices are what the shared ones are for.
const MaxDevicesPerUsername = 16

// Limits of per-device credentials: TR-098/TR-181 ManagementServer.Username
// and Password are string(256).
const (
	maxUsernameLen = 256
	maxPasswordLen = 256
)

// ErrBadCredentials means per-device credentials that cannot be stored: a
// bad device ID, an over-long username or password, or control characters
// (API → 400).
var ErrBadCredentials = httpapi.Mark(errors.New("edge: bad credentials"), httpapi.ErrBadRequest)

// ErrUsernameTaken means MaxDevicesPerUsername devices already use that
// per-device username (API → 409).
var ErrUsernameTaken = httpapi.Mark(errors.New("edge: username used by too many devices"), httpapi.ErrConflict)

// credRef is one device using a per-device username, in u/<username>.
type credRef struct {
	_        struct{} `cbor:",toarray"`
	Device   string
	Password string
}

// checkCredentials validates per-device credentials before they are stored.
func checkCredentials(username, password string) error {
	if len(username) > maxUsernameLen || len(password) > maxPasswordLen {
		return fmt.Errorf("%w: username and password are at most %d bytes each", ErrBadCredentials, maxUsernameLen)
	}
	for _, s := range []string{username, password} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: not UTF-8", ErrBadCredentials)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("%w: control character in username or password", ErrBadCredentials)
			}
		}
	}
	return nil
}

func loadCredRefs(txn *badger.Txn, username string) ([]credRef, error) {
	var refs []credRef
	if err := getCBOR(txn, pUser+username, &refs); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("load credentials of username: %w", err)
	}
	return refs, nil
}

// addCredRef adds (or updates) ref under username.
func addCredRef(txn *badger.Txn, username string, ref credRef) error {
	refs, err := loadCredRefs(txn, username)
	if err != nil {
		return err
	}
	refs = slices.DeleteFunc(refs, func(r credRef) bool { return r.Device == ref.Device })
	if len(refs) >= MaxDevicesPerUsername {
		return fmt.Errorf("%w: %d devices already use it (at most %d; use the shared credentials for many devices)", ErrUsernameTaken, len(refs), MaxDevicesPerUsername)
	}
	return setCBOR(txn, pUser+username, append(refs, ref))
}

// removeCredRef drops device from username's list.
func removeCredRef(txn *badger.Txn, username, device string) error {
	refs, err := loadCredRefs(txn, username)
	if err != nil {
		return err
	}
	n := len(refs)
	refs = slices.DeleteFunc(refs, func(r credRef) bool { return r.Device == device })
	switch {
	case len(refs) == n:
		return nil
	case len(refs) == 0:
		return txn.Delete([]byte(pUser + username))
	}
	return setCBOR(txn, pUser+username, refs)
}

// credentialsByUsername returns the devices whose own credentials use
// username, with their passwords: one point read, on the path of every
// authenticated CPE request.
func (c *Cache) credentialsByUsername(username string) ([]credRef, error) {
	if username == "" {
		return nil, nil
	}
	var refs []credRef
	err := c.db.View(func(txn *badger.Txn) error {
		var err error
		refs, err = loadCredRefs(txn, username)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("credentials by username: %w", err)
	}
	return refs, nil
}

// hasCredentials reports whether the device has credentials of its own,
// in which case the shared ones do not let it in.
func (c *Cache) hasCredentials(id string) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	err := c.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(pCred + id))
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("credentials of %s: %w", id, err)
}

// buildCredIndex fills the u/ index from the c/ records of a cache written
// before the index existed, once: the marker it writes last makes later
// opens skip it, and a crash midway only means it runs again (each list is
// rewritten whole).
func (c *Cache) buildCredIndex() error {
	done := false
	byUser := map[string][]credRef{}
	err := c.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(kCredIndex)); err == nil {
			done = true
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pCred)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var cr credRec
			if err := it.Item().Value(func(b []byte) error { return cborDec.Unmarshal(b, &cr) }); err != nil {
				return fmt.Errorf("decode %s: %w", it.Item().Key(), err)
			}
			// Everything is indexed, even past MaxDevicesPerUsername (a
			// limit on new credentials): a device with a c/ record is
			// refused the shared credentials, so leaving it out would lock
			// it out.
			id := string(it.Item().Key()[len(pCred):])
			byUser[cr.Username] = append(byUser[cr.Username], credRef{Device: id, Password: cr.Password})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build credentials index: %w", err)
	}
	if done {
		return nil
	}
	wb := c.db.NewWriteBatch()
	defer wb.Cancel()
	for u, refs := range byUser {
		b, err := cborEnc.Marshal(refs)
		if err != nil {
			return fmt.Errorf("build credentials index: %w", err)
		}
		if err := wb.Set([]byte(pUser+u), b); err != nil {
			return fmt.Errorf("build credentials index: %w", err)
		}
	}
	if err := wb.Set([]byte(kCredIndex), []byte{}); err != nil {
		return fmt.Errorf("build credentials index: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("build credentials index: %w", err)
	}
	if len(byUser) > 0 {
		c.log.Info("indexed per-device credentials by username", "usernames", len(byUser))
	}
	return nil
}

package edge

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func refsOf(t *testing.T, c *Cache, username string) []credRef {
	t.Helper()
	refs, err := c.credentialsByUsername(username)
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

// TestCredentialIndex: the username index follows every change of
// per-device credentials (set, change, removal, device deletion), bounds
// how many devices share a username, and refuses unstorable credentials.
func TestCredentialIndex(t *testing.T) {
	c := openTestCache(t, "")
	if err := c.SetDeviceCredentials("dev-a", "shared-name", "pa"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeviceCredentials("dev-b", "shared-name", "pb"); err != nil {
		t.Fatal(err)
	}
	want := []credRef{{Device: "dev-a", Password: "pa"}, {Device: "dev-b", Password: "pb"}}
	if got := refsOf(t, c, "shared-name"); !reflect.DeepEqual(got, want) {
		t.Fatalf("index %+v, want %+v", got, want)
	}
	// A new username moves the device.
	if err := c.SetDeviceCredentials("dev-a", "own-a", "pa2"); err != nil {
		t.Fatal(err)
	}
	if got := refsOf(t, c, "shared-name"); len(got) != 1 || got[0].Device != "dev-b" {
		t.Fatalf("old username still lists dev-a: %+v", got)
	}
	if got := refsOf(t, c, "own-a"); len(got) != 1 || got[0].Password != "pa2" {
		t.Fatalf("new username: %+v", got)
	}
	// Removal and device deletion drop the entry.
	if err := c.SetDeviceCredentials("dev-b", "", ""); err != nil {
		t.Fatal(err)
	}
	if got := refsOf(t, c, "shared-name"); len(got) != 0 {
		t.Fatalf("removed credentials still indexed: %+v", got)
	}
	w := mustBegin(t, c, tr098("IDX"), t0)
	w.End(true)
	if err := c.SetDeviceCredentials(w.DeviceID(), "idx-user", "p"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteDevice(w.DeviceID()); err != nil {
		t.Fatal(err)
	}
	if got := refsOf(t, c, "idx-user"); len(got) != 0 {
		t.Fatalf("deleted device still indexed: %+v", got)
	}
	if own, err := c.hasCredentials(w.DeviceID()); own || err != nil {
		t.Fatalf("deleted device has credentials: %v %v", own, err)
	}

	for i := 0; i < MaxDevicesPerUsername; i++ {
		if err := c.SetDeviceCredentials(fmt.Sprintf("many-%d", i), "common", "p"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetDeviceCredentials("one-too-many", "common", "p"); !errors.Is(err, ErrUsernameTaken) {
		t.Fatalf("username over the limit: %v", err)
	}
	if err := c.SetDeviceCredentials("many-0", "common", "new"); err != nil {
		t.Fatalf("changing the password of a device already listed: %v", err)
	}
	for _, bad := range [][2]string{{string(make([]byte, 257)), "p"}, {"u", "p\n"}, {"u\x00", "p"}, {"\xff", "p"}} {
		if err := c.SetDeviceCredentials("dev-x", bad[0], bad[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("credentials %q: %v", bad, err)
		}
	}
}

// TestCredentialIndexBuiltOnOpen: a cache written before the index existed
// (c/ records, no u/ keys, no marker) gets it on its next open.
func TestCredentialIndexBuiltOnOpen(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	err := c.db.Update(func(txn *badger.Txn) error {
		for _, d := range []string{"old-1", "old-2"} {
			if err := setCBOR(txn, pCred+d, credRec{Username: "legacy", Password: "pw-" + d}); err != nil {
				return err
			}
		}
		return txn.Delete([]byte(kCredIndex))
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = openTestCache(t, dir)
	want := []credRef{{Device: "old-1", Password: "pw-old-1"}, {Device: "old-2", Password: "pw-old-2"}}
	if got := refsOf(t, c, "legacy"); !reflect.DeepEqual(got, want) {
		t.Fatalf("index after open %+v, want %+v", got, want)
	}
}

package edge

import (
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/preset"
)

// TestDropLocalProvisioning: a standalone edge's own presets, scripts and
// virtual parameters go when it starts synced; what the core sent stays,
// including a core preset that replaced a local one of the same name.
func TestDropLocalProvisioning(t *testing.T) {
	names := func(c *Cache) []string {
		t.Helper()
		var out []string
		if err := c.db.View(func(txn *badger.Txn) error {
			for _, pre := range provisioningPrefixes {
				out = append(out, keysWithPrefix(txn, pre)...)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}

	t.Run("after a core's records", func(t *testing.T) {
		c := openTestCache(t, t.TempDir())
		if _, err := c.SeedDefaultPresets(preset.Defaults(true)); err != nil {
			t.Fatal(err)
		}
		if err := c.PutPreset(&fleet.Preset{Name: "mine", Channel: "mine"}); err != nil {
			t.Fatal(err)
		}
		if err := c.PutProvision(&fleet.Provision{Name: "myscript", Script: "log('x');"}); err != nil {
			t.Fatal(err)
		}
		if err := c.PutVirtualParameter(&fleet.VirtualParameter{Name: "myvp", Script: "return {writable: false, value: ['x', 'xsd:string']};"}); err != nil {
			t.Fatal(err)
		}
		// The core's inform replaces the local default; core-only is the core's.
		if err := c.StoreDownlink([]fleet.DownRecord{
			{Seq: 1, Shared: true, Kind: fleet.DownPreset, Preset: &fleet.Preset{Name: preset.DefaultInform, Weight: 7}},
			{Seq: 2, Shared: true, Kind: fleet.DownPreset, Preset: &fleet.Preset{Name: "core-only"}},
			{Seq: 3, Shared: true, Kind: fleet.DownProvision, Provision: &fleet.Provision{Name: "corescript", Script: "log('y');"}},
		}); err != nil {
			t.Fatal(err)
		}
		dropped, err := c.DropLocalProvisioning()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(dropped)
		if want := []string{"pr/myscript", "s/" + preset.DefaultBootstrap, "s/mine", "vp/myvp"}; !slices.Equal(dropped, want) {
			t.Fatalf("dropped %v, want %v", dropped, want)
		}
		if got, want := names(c), []string{"pr/corescript", "s/core-only", "s/" + preset.DefaultInform}; !slices.Equal(got, want) {
			t.Fatalf("left %v, want %v", got, want)
		}
		if p, err := c.Preset(preset.DefaultInform); err != nil || p.Weight != 7 {
			t.Fatalf("the core's inform preset: %+v %v", p, err)
		}
		// Once more: nothing left to drop.
		if again, err := c.DropLocalProvisioning(); err != nil || len(again) != 0 {
			t.Fatalf("second drop: %v %v", again, err)
		}
	})

	t.Run("never synced, records made before the marks", func(t *testing.T) {
		c := openTestCache(t, t.TempDir())
		if err := c.update(func(txn *badger.Txn) error {
			return setRecord(txn, pPreset+"old", &fleet.Preset{Name: "old"})
		}); err != nil {
			t.Fatal(err)
		}
		dropped, err := c.DropLocalProvisioning()
		if err != nil || !slices.Equal(dropped, []string{"s/old"}) {
			t.Fatalf("dropped %v %v, want s/old", dropped, err)
		}
		if got := names(c); len(got) != 0 {
			t.Fatalf("left %v", got)
		}
	})
}

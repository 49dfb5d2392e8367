package edge

import (
	"testing"
	"time"

	"github.com/edgeacs/edgeacs/cwmp"
	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/sim"
)

// TestChannelFaultSync: a channel fault goes upstream when recorded, and
// its clearing when deleted through the API; the core's clearing (the
// downlink) deletes it unless the edge faulted again since.
func TestChannelFaultSync(t *testing.T) {
	c := openTestCache(t, "")
	cpe := newSimCPE(t, c, sim.ModelTR098, 6)
	putPresets(t, c, &fleet.Preset{Name: "bad", Channel: "bad", Provisions: [][]any{{"noSuchScript"}}})
	cpe.session(cwmp.EventBoot)
	id := cpe.id()
	fid := ChannelFaultID(id, "bad")
	stored := cpe.faults()[fid]
	if stored.Code != FaultCodeUnknownProvision {
		t.Fatalf("faults %+v", cpe.faults())
	}
	upstream := func() []fleet.ChannelFault {
		t.Helper()
		recs, err := c.ReadOutbox(0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		var out []fleet.ChannelFault
		for _, r := range recs {
			var cf fleet.ChannelFault
			if k, _ := fleet.KindOf(r.Data); k == fleet.KindChannelFault {
				if err := fleet.Unmarshal(r.Data, &cf); err != nil {
					t.Fatal(err)
				}
				out = append(out, cf)
			}
		}
		return out
	}
	if up := upstream(); len(up) != 1 || up[0].ID() != fid || up[0].Cleared || up[0].Code != FaultCodeUnknownProvision || !up[0].Timestamp.Equal(stored.Timestamp) {
		t.Fatalf("upstream %+v", up)
	}

	// The core clears an older fault: the edge keeps its newer one.
	clear := func(seq uint64, at time.Time) {
		t.Helper()
		if err := c.StoreDownlink([]fleet.DownRecord{{Seq: seq, Kind: fleet.DownFaultClear, Device: id,
			Fault: &fleet.ChannelFault{Device: id, Channel: "bad", Timestamp: at, Cleared: true}}}); err != nil {
			t.Fatal(err)
		}
	}
	clear(1, stored.Timestamp.Add(-time.Minute))
	if _, ok := cpe.faults()[fid]; !ok {
		t.Fatal("a clear of an older fault deleted the newer one")
	}
	clear(2, stored.Timestamp)
	if _, ok := cpe.faults()[fid]; ok {
		t.Fatal("the core's clear did not delete the fault")
	}
	// The next session runs the channel again (and it faults again); a
	// delete through the API goes upstream as a clearing.
	cpe.after(time.Minute)
	cpe.session(cwmp.EventPeriodic)
	if err := c.DeleteFault(fid); err != nil {
		t.Fatal(err)
	}
	up := upstream()
	if len(up) != 3 || up[1].Cleared || !up[2].Cleared || !up[2].Timestamp.Equal(up[1].Timestamp) {
		t.Fatalf("upstream %+v", up)
	}
}

package console

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgeacs/edgeacs/client"
	"github.com/edgeacs/edgeacs/fleet"
)

// Online states of a device, as the overview counts them and the device
// pages show them.
const (
	StateOnline  = "online"
	StateLate    = "late"
	StateOffline = "offline"
	StateNever   = "never informed"
)

// DeviceState says whether d is online, late or offline at now: the API's
// own judgement (fleet.OnlineState, against the device's periodic inform
// interval) when the view carries one, otherwise the same rule with the
// default interval. A device that never informed is "never informed".
var DeviceState = func(d client.Device, now time.Time) string {
	if d.LastInform.IsZero() {
		return StateNever
	}
	if d.State != "" {
		return d.State
	}
	return fleet.OnlineState(d.LastInform, 0, now)
}

// Sortable device columns. "id" pages through the API's own ID order;
// the others sort one scan of the matching devices, kept for a while.
var sortColumns = map[string]func(a, b *client.Device) int{
	"id":         func(a, b *client.Device) int { return strings.Compare(a.ID, b.ID) },
	"model":      func(a, b *client.Device) int { return cmp.Compare(a.ProductClass, b.ProductClass) },
	"software":   func(a, b *client.Device) int { return cmp.Compare(a.SoftwareVersion, b.SoftwareVersion) },
	"lastInform": func(a, b *client.Device) int { return a.LastInform.Compare(b.LastInform) },
	"edge":       func(a, b *client.Device) int { return cmp.Compare(a.Edge, b.Edge) },
	"tags": func(a, b *client.Device) int {
		return cmp.Compare(strings.Join(a.Tags, ","), strings.Join(b.Tags, ","))
	},
}

// sortCacheTTL is how long one sorted scan serves the pages after it: a
// 100k-device fleet is scanned once per filter and column, not per page.
const sortCacheTTL = 30 * time.Second

// maxSortScan bounds the devices one sort scans (the API's own ID order
// has no bound).
const maxSortScan = 1_000_000

// sortCache keeps recent sorted scans, keyed by token, filter and column.
type sortCache struct {
	mu  sync.Mutex
	m   map[string]*sorted
	now func() time.Time
}

type sorted struct {
	at   time.Time
	devs []client.Device
}

func newSortCache(now func() time.Time) *sortCache {
	return &sortCache{m: map[string]*sorted{}, now: now}
}

// get returns the devices f selects, sorted by col (desc reversed),
// scanning them with fetch when no recent scan is kept.
func (sc *sortCache) get(ctx context.Context, key string, col string, desc bool,
	fetch func(ctx context.Context) ([]client.Device, error)) ([]client.Device, error) {
	key += "\x00" + col
	if desc {
		key += "\x00desc"
	}
	now := sc.now()
	sc.mu.Lock()
	for k, s := range sc.m {
		if now.Sub(s.at) > sortCacheTTL {
			delete(sc.m, k)
		}
	}
	s := sc.m[key]
	sc.mu.Unlock()
	if s != nil {
		return s.devs, nil
	}
	devs, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	less := sortColumns[col]
	slices.SortStableFunc(devs, func(a, b client.Device) int {
		c := less(&a, &b)
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if desc {
			c = -c
		}
		return c
	})
	sc.mu.Lock()
	sc.m[key] = &sorted{at: now, devs: devs}
	sc.mu.Unlock()
	return devs, nil
}

package preset_test

import (
	"fmt"
	"time"

	"github.com/edgeacs/edgeacs/fleet"
	"github.com/edgeacs/edgeacs/provision/expr"
	"github.com/edgeacs/edgeacs/provision/preset"
)

func Example() {
	// At PUT time: compile to validate (an error here is a 400).
	c, err := preset.Compile(&fleet.Preset{
		Name:         "upgrade",
		Channel:      "firmware",
		Events:       map[string]bool{"1 BOOT": true},
		Precondition: `DeviceID.ProductClass LIKE 'HG8%' AND Device.DeviceInfo.SoftwareVersion <> "2.0"`,
		Schedule:     "7200 0 1 * * *",
		Provisions:   [][]any{{"download", "1 Firmware Upgrade Image", "hg-2.0.bin"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// In a session: fetch what the preconditions need, then match.
	params := map[string]expr.Value{
		"DeviceID.ProductClass":             expr.StringValue("HG8245"),
		"Device.DeviceInfo.SoftwareVersion": expr.FromCWMP("1.9", "xsd:string"),
	}
	s := preset.Session{
		Events: []string{"1 BOOT", "4 VALUE CHANGE"},
		Now:    time.Date(2024, 6, 1, 1, 30, 0, 0, time.UTC),
		Env:    expr.MapEnv(params, time.Time{}),
	}
	fmt.Println(preset.Prefetch([]*preset.Compiled{c}, s))
	for _, g := range preset.Groups(preset.Match([]*preset.Compiled{c}, s)) {
		for _, p := range g.Provisions() {
			fmt.Println(g.Channel, p.Name, p.Values(s.Env))
		}
	}
	// Output:
	// [DeviceID.ProductClass Device.DeviceInfo.SoftwareVersion]
	// firmware download ["1 Firmware Upgrade Image" "hg-2.0.bin"]
}

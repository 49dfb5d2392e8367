package nbi_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/edgeacs/edgeacs/nbi"
)

// A GET /devices handler: parse query and projection, fetch by ID when the
// query pins _id (else scan), filter with Match, render each match.
func Example() {
	devices := map[string]*nbi.Record{
		"202BC1-BM632w-000000": {
			Info: nbi.Meta{
				ID:         "202BC1-BM632w-000000",
				Tags:       []string{"test"},
				LastInform: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC),
				DeviceID:   nbi.DeviceID{OUI: "202BC1", ProductClass: "BM632w", SerialNumber: "000000"},
			},
			Params: map[string]nbi.Entry{
				"InternetGatewayDevice.DeviceInfo.SoftwareVersion": {Value: "1.2.3", Type: "xsd:string"},
				"InternetGatewayDevice.DeviceInfo.UpTime":          {Value: "3600", Type: "xsd:unsignedInt"},
			},
		},
	}
	q, err := nbi.ParseQuery([]byte(`{"_id": "202BC1-BM632w-000000", "InternetGatewayDevice.DeviceInfo.UpTime": {"$gt": 60}}`))
	if err != nil {
		fmt.Println(err) // 400 {"error": err.Error()}
		return
	}
	p, err := nbi.ParseProjection("_lastInform,InternetGatewayDevice.DeviceInfo.UpTime")
	if err != nil {
		fmt.Println(err)
		return
	}
	ids, ok := q.IDs()
	fmt.Println("fetch by ID:", ids, ok)
	for _, id := range ids {
		d, found := devices[id]
		if !found || !q.Match(d) {
			continue
		}
		b, _ := json.Marshal(nbi.DeviceDocument(d, p))
		fmt.Println(string(b))
	}
	// Output:
	// fetch by ID: [202BC1-BM632w-000000] true
	// {"InternetGatewayDevice":{"DeviceInfo":{"UpTime":{"_object":false,"_type":"xsd:unsignedInt","_value":3600}}},"_id":"202BC1-BM632w-000000","_lastInform":"2024-06-01T12:00:00.000Z"}
}

package main

import (
	"testing"
	"time"
)

// TestProvisionReachesEdge: a provision script PUT on the core travels
// the shared downlink to the edge, which serves it on its own API; its
// deletion travels the same way.
func TestProvisionReachesEdge(t *testing.T) {
	s := startContractSystem(t)
	coreAPI, edgeAPI := s.core.node.APIAddr(), s.edge.api
	src := "const v = 300;\ndeclare(\"Device.ManagementServer.PeriodicInformInterval\", {value: 1}, {value: v});\n"
	if code, _, v := s.call(t, coreAPI, "PUT", "/api/v1/provisions/inform", src, "Content-Type", "application/javascript"); code != 200 {
		t.Fatalf("PUT on the core: %d %v", code, v)
	}
	isoWait(t, "the edge to hold the provision", 15*time.Second, func() bool {
		p, err := s.edge.node.Cache().Provision("inform")
		return err == nil && p.Script == src
	})
	code, _, v := s.call(t, edgeAPI, "GET", "/api/v1/provisions/inform", "")
	if m, _ := v.(map[string]any); code != 200 || m["_id"] != "inform" || m["script"] != src {
		t.Fatalf("GET on the edge: %d %v", code, v)
	}
	if code, _, v := s.call(t, coreAPI, "DELETE", "/api/v1/provisions/inform", ""); code != 204 {
		t.Fatalf("DELETE on the core: %d %v", code, v)
	}
	isoWait(t, "the edge to drop the provision", 15*time.Second, func() bool {
		code, _, _ := s.call(t, edgeAPI, "GET", "/api/v1/provisions/inform", "")
		return code == 404
	})
}

package sim

import (
	"net"
	"testing"

	"github.com/pion/stun/v3"
)

// TestSTUNBinding runs a one-shot STUN server that claims the simulator
// sits behind a NAT at 203.0.113.5:40000, and checks the devices report it.
func TestSTUNBinding(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil || req.Type != stun.BindingRequest {
				continue
			}
			resp := stun.MustBuild(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: net.ParseIP("203.0.113.5"), Port: 40000}, stun.Fingerprint)
			_, _ = pc.WriteTo(resp.Raw, from)
		}
	}()
	acs := newTestACS(t, "", "", "")
	f := startFleet(t, Config{ACSURL: acs.srv.URL, Count: 2, UDPCRAddr: "127.0.0.1:0", STUNServer: pc.LocalAddr().String()})
	waitFor(t, func() bool { return f.UDPConnectionRequestAddr() == "203.0.113.5:40000" })
	d := f.Device(1)
	waitFor(t, func() bool {
		v, _ := d.Get(d.Root() + "ManagementServer.UDPConnectionRequestAddress")
		return v == "203.0.113.5:40000"
	})
	if v, _ := d.Get(d.Root() + "ManagementServer.NATDetected"); v != "true" {
		t.Errorf("NATDetected = %q", v)
	}
	if v, _ := d.Get(d.Root() + "ManagementServer.STUNEnable"); v != "true" {
		t.Errorf("STUNEnable = %q", v)
	}
	pc.Close()
	<-done
}

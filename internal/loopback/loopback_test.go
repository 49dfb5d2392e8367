package loopback

import "testing"

func TestIsAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7080": true, "127.1.2.3:1": true, "[::1]:7080": true, "localhost:7080": true, "LOCALHOST:1": true,
		"0.0.0.0:7080": false, "[::]:7080": false, ":7080": false, "10.0.0.1:7080": false, "example.com:7080": false,
		"127.0.0.1": false, "": false,
	} {
		if got := IsAddr(addr); got != want {
			t.Errorf("IsAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

package cwmp

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func benchFixture(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func benchDecode(b *testing.B, data []byte, want int) {
	b.Helper()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		env, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		if want > 0 {
			var n int
			switch m := env.Body.(type) {
			case *Inform:
				n = len(m.ParameterList)
			case *GetParameterValuesResponse:
				n = len(m.ParameterList)
			}
			if n != want {
				b.Fatalf("decoded %d parameters, want %d", n, want)
			}
		}
	}
}

// BenchmarkDecodeInform decodes a TR-098 Inform with 37 parameters (the
// "30 parameter" case of issue 3, with every xsd type represented).
func BenchmarkDecodeInform(b *testing.B) {
	benchDecode(b, benchFixture(b, "inform-tr098-full.xml"), 37)
}

// BenchmarkDecodeGPVResponse300 decodes a 300-parameter GetParameterValuesResponse.
func BenchmarkDecodeGPVResponse300(b *testing.B) {
	benchDecode(b, benchFixture(b, "gpv-response-300.xml"), 300)
}

func benchEncode(b *testing.B, env *Envelope) {
	b.Helper()
	out, err := Encode(env)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		if _, err := Encode(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeGetParameterValues encodes a GetParameterValues of 32
// names, GenieACS's default batch size.
func BenchmarkEncodeGetParameterValues(b *testing.B) {
	names := make([]string, 32)
	for i := range names {
		names[i] = fmt.Sprintf("InternetGatewayDevice.LANDevice.1.WLANConfiguration.%d.SSID", i+1)
	}
	benchEncode(b, &Envelope{Namespace: ns10, ID: "gpv-0001", HasID: true, Body: &GetParameterValues{ParameterNames: names}})
}

// BenchmarkEncodeInformResponse encodes the reply every session starts with.
func BenchmarkEncodeInformResponse(b *testing.B) {
	benchEncode(b, &Envelope{Namespace: ns12, ID: "100001", HasID: true, Body: &InformResponse{MaxEnvelopes: 1}})
}

// BenchmarkEncodeGPVResponse300 encodes what the simulator answers to a big GPV.
func BenchmarkEncodeGPVResponse300(b *testing.B) {
	ps := make([]ParameterValue, 300)
	for i := range ps {
		ps[i] = ParameterValue{Name: fmt.Sprintf("Device.X_TEST.Table.%d.Param%d", i/10+1, i%10), Value: fmt.Sprint(i), Type: TypeUnsignedInt}
	}
	benchEncode(b, &Envelope{Namespace: ns12, ID: "gpv-300", HasID: true, Body: &GetParameterValuesResponse{ParameterList: ps}})
}

// BenchmarkEncodeInform encodes a 37-parameter Inform (simulator side).
func BenchmarkEncodeInform(b *testing.B) {
	env, err := Decode(benchFixture(b, "inform-tr098-full.xml"))
	if err != nil {
		b.Fatal(err)
	}
	env.Body.(*Inform).CurrentTime = time.Date(2024, 5, 1, 8, 15, 2, 0, time.UTC)
	benchEncode(b, env)
}

package cwmp

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fdHead = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-2" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soap:Header><cwmp:ID soap:mustUnderstand="1">7</cwmp:ID></soap:Header><soap:Body>`
const fdTail = `</soap:Body></soap:Envelope>`

// fastDecodeCases exercise the typed fast path's shapes and the ways out
// of it: bad entries, repeated fields, nesting, namespaces, headers.
var fastDecodeCases = []string{
	fdHead + `<cwmp:GetParameterNamesResponse><ParameterList><ParameterInfoStruct><Name>A.B</Name><Writable>1</Writable></ParameterInfoStruct><ParameterInfoStruct><Name>.A.C</Name><Writable>30</Writable></ParameterInfoStruct><ParameterInfoStruct><Name> </Name><Writable>1</Writable></ParameterInfoStruct><x><Name>A.D</Name><Writable>maybe</Writable></x><y><Writable>x</Writable></y><z/></ParameterList></cwmp:GetParameterNamesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterNamesResponse><ParameterList></ParameterList><ParameterList><P><Name>A</Name></P></ParameterList></cwmp:GetParameterNamesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterNamesResponse><ParameterList><P><Name/></P></ParameterList></cwmp:GetParameterNamesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterNamesResponse/>` + fdTail,
	fdHead + `<cwmp:GetParameterValuesResponse><ParameterList soap:arrayType="cwmp:ParameterValueStruct[3]"><ParameterValueStruct><Name>A.B</Name><Value xsi:type="xsd:unsignedInt">5</Value></ParameterValueStruct><ParameterValueStruct><Name>A.C</Name><Value> a &amp; b&#10; </Value></ParameterValueStruct><ParameterValueStruct><Name>A.D</Name><Value type="int">x</Value><Value xsi:type="xsd:boolean">1</Value></ParameterValueStruct><ParameterValueStruct><Name>A.E</Name></ParameterValueStruct><ParameterValueStruct><Name>A.F</Name><Value xsi:type="xsd:dateTime"/></ParameterValueStruct><ParameterValueStruct><Value>v</Value></ParameterValueStruct></ParameterList></cwmp:GetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value>é€</Value><Name>B</Name></P></ParameterList><Other><x>1</x></Other></cwmp:GetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterValuesResponse><ParameterList><P><Value>1</Value></P></ParameterList></cwmp:GetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterValues><ParameterNames><string>A.</string><string> B.C </string><string/></ParameterNames></cwmp:GetParameterValues>` + fdTail,
	fdHead + `<cwmp:Inform><DeviceId><Manufacturer>M &amp; Co</Manufacturer><OUI>0011AA</OUI><ProductClass>PC</ProductClass><SerialNumber>SN1</SerialNumber></DeviceId><Event><EventStruct><EventCode>0 BOOTSTRAP</EventCode><CommandKey/></EventStruct><EventStruct><EventCode>1 boot</EventCode><CommandKey>k</CommandKey></EventStruct><EventStruct><EventCode></EventCode></EventStruct></Event><MaxEnvelopes>1</MaxEnvelopes><CurrentTime>2024-01-02T03:04:05Z</CurrentTime><RetryCount>2</RetryCount><ParameterList><ParameterValueStruct><Name>Device.DeviceInfo.SoftwareVersion</Name><Value xsi:type="xsd:string">1.0</Value></ParameterValueStruct></ParameterList></cwmp:Inform>` + fdTail,
	fdHead + `<cwmp:Inform><ParameterList><P><Name/></P></ParameterList><Event><E><EventCode/></E></Event></cwmp:Inform>` + fdTail,
	fdHead + `<cwmp:Inform><Event><E><EventCode/></E></Event><ParameterList><P><Name/></P></ParameterList></cwmp:Inform>` + fdTail,
	fdHead + `<cwmp:Inform><MaxEnvelopes>x</MaxEnvelopes></cwmp:Inform>` + fdTail,
	fdHead + `<cwmp:Inform><RetryCount>99999999999</RetryCount><CurrentTime>garbage</CurrentTime></cwmp:Inform>` + fdTail,
	fdHead + `<cwmp:Inform><DeviceId><OUI>1</OUI><OUI>2</OUI></DeviceId><DeviceId><OUI>3</OUI></DeviceId></cwmp:Inform>` + fdTail,
	fdHead + `<cwmp:GetParameterNames><ParameterPath> InternetGatewayDevice. </ParameterPath><NextLevel>0</NextLevel></cwmp:GetParameterNames>` + fdTail,
	fdHead + `<cwmp:GetParameterNames><NextLevel>maybe</NextLevel></cwmp:GetParameterNames>` + fdTail,
	fdHead + `<cwmp:GetParameterNames><NextLevel>7</NextLevel><ParameterPath>A.</ParameterPath><ParameterPath>B.</ParameterPath><x><y/></x></cwmp:GetParameterNames>` + fdTail,
	fdHead + `<cwmp:InformResponse><MaxEnvelopes>1</MaxEnvelopes></cwmp:InformResponse>` + fdTail,
	fdHead + `<cwmp:InformResponse><MaxEnvelopes>-1</MaxEnvelopes></cwmp:InformResponse>` + fdTail,
	fdHead + `<cwmp:InformResponse/>` + fdTail,
	fdHead + `<cwmp:SetParameterValuesResponse><Status>1</Status></cwmp:SetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:SetParameterValuesResponse><Status>x</Status></cwmp:SetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:SetParameterValues><ParameterList><P><Name>A.B</Name><Value xsi:type="xsd:boolean">1</Value></P><P><Value>2</Value></P></ParameterList><ParameterKey> k </ParameterKey><ParameterKey>j</ParameterKey></cwmp:SetParameterValues>` + fdTail,
	fdHead + `<cwmp:SetParameterValues><ParameterKey>k</ParameterKey></cwmp:SetParameterValues>` + fdTail,
	// Header variants.
	`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cwmp="urn:dslforum-org:cwmp-1-0"><soap:Header><cwmp:id>1</cwmp:id><cwmp:ID>2</cwmp:ID><cwmp:HoldRequests>true</cwmp:HoldRequests><cwmp:NoMoreRequests>1</cwmp:NoMoreRequests><cwmp:sessionTimeout>99999999999</cwmp:sessionTimeout><cwmp:SupportedCWMPVersions>1.0,1.4</cwmp:SupportedCWMPVersions></soap:Header><soap:Body><cwmp:GetParameterValuesResponse/></soap:Body></soap:Envelope>`,
	`<Envelope><Body><GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value>1</Value></P></ParameterList></GetParameterValuesResponse></Body></Envelope>`,
	`<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:c="urn:dslforum-org:cwmp-1-4"><Header><ID>x</ID></Header><Body><c:GetParameterValuesResponse/></Body></Envelope>`,
	`<Envelope xmlns="urn:dslforum-org:cwmp-1-1"><Header><ID>x</ID></Header><Body><GetParameterValuesResponse/></Body></Envelope>`,
	`<s:Envelope xmlns:s="urn:other"><s:Body><GetParameterValuesResponse/></s:Body></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:b="urn:other"><b:Body><GetParameterValuesResponse/></b:Body></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><cwmp:GetParameterValuesResponse xmlns:cwmp="urn:dslforum-org:cwmp-1-0"/></s:Body></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetParameterValuesResponse/><Extra><x/></Extra>text</s:Body></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><Reboot/></s:Body></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetParameterValuesResponse><!-- c --></GetParameterValuesResponse></s:Body></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetParameterValuesResponse><ParameterList><P><Name>A<b/></Name></P></ParameterList></GetParameterValuesResponse></s:Body></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value>&nbsp;</Value></P></ParameterList></GetParameterValuesResponse></s:Body></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value>1</Value></P></ParameterList></GetParameterValuesResponse></s:Body></s:Envelope> <!-- after -->`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetParameterValuesResponse/></s:Body><s:Header/></s:Envelope>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetParameterValuesResponse/></s:Body></s:Envelope><x/>`,
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetParameterValuesResponse></s:Body></s:Envelope>`,
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">\r\n<s:Body>\r\n<GetParameterValuesResponse>\r\n<ParameterList>\r\n<P><Name>A</Name><Value>a\r\nb</Value></P>\r\n</ParameterList></GetParameterValuesResponse></s:Body></s:Envelope>\r\n",
	`<?xml version="1.0" <!DOCTYPE x> ?><Envelope><Body><GetParameterValuesResponse/></Body></Envelope>`,
	`<!DOCTYPE x><Envelope><Body><GetParameterValuesResponse/></Body></Envelope>`,
	`<Envelope><Body><GetParameterValuesResponse><!-- <!DOCTYPE x> --><ParameterList/></GetParameterValuesResponse></Body></Envelope>`,
	`<Envelope><Body><GetParameterValuesResponse><![CDATA[x]]></GetParameterValuesResponse></Body></Envelope>`,
	`<Envelope xmlns:a="urn:x" a:s="1" s="2"><Body><GetParameterValuesResponse/></Body></Envelope>`,
	`<Envelope xmlns:a="urn:x" s="2" a:s="1"><Body><GetParameterValuesResponse/></Body></Envelope>`,
	`<Envelope><Body><GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value type="int" xsi:type="xsd:string">1</Value></P><P><Name>B</Name><Value xsi:type="xsd:boolean" type="int">1</Value></P></ParameterList></GetParameterValuesResponse></Body></Envelope>`,
	`<Envelope><Body><GetParameterValuesResponse><ParameterList>` + strings.Repeat(`<P><Name/></P>`, 70) + `</ParameterList></GetParameterValuesResponse></Body></Envelope>`,
	// quickPair's shape and its near misses (each must decode as the
	// token path does).
	fdHead + "<cwmp:GetParameterValuesResponse><ParameterList>\n <P>\n\t<Name>A.B</Name>\n\t<Value xsi:type=\"xsd:int\">1</Value>\n </P>\n <P><Name></Name><Value></Value></P><P><Name>A.C</Name><Value>x y</Value></P></ParameterList></cwmp:GetParameterValuesResponse>" + fdTail,
	fdHead + `<cwmp:GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value xsi:type="xsd:int" >1</Value></P><P><Name>B</Name><Value  xsi:type="xsd:int">2</Value></P><P><Name>C</Name><Value xsi:type='xsd:int'>3</Value></P><P><Name>D</Name><Value xsi:type="">4</Value></P><P><Name>E</Name><Value xsi:type="a&amp;b">5</Value></P></ParameterList></cwmp:GetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterValuesResponse><ParameterList><P><Name>A</Name ><Value>1</Value></P><P><Name>B</Name><Value>2</Value ></P><P><Name>C</Name><Value>3</Value></P ><P><Name>D]</Name><Value>4]</Value></P><P><Name>E</Name><Value>5</Value><Extra/></P><P><Value>6</Value><Name>F</Name></P></ParameterList></cwmp:GetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value xsi:type="xsd:int">1</Value></Q></ParameterList></cwmp:GetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value xsi:type="xsd:int">1</Value>`,
	fdHead + `<cwmp:GetParameterValuesResponse><ParameterList><P><Name>A</Name><Value xsi:type="xsd:int">1</Value></P><P><Name>B</Name><Value>` + "\r" + `</Value></P><P><Name>C</Name><Value x:type="xsd:int">3</Value></P><P><Name>D</Name><Valuex>4</Valuex></P></ParameterList></cwmp:GetParameterValuesResponse>` + fdTail,
	fdHead + `<cwmp:GetParameterNamesResponse><ParameterList><P> <Name>A.</Name> <Writable>0</Writable> </P><P><Name>A.B</Name><Writable xsi:type="xsd:boolean">1</Writable></P><P><Name>A.C</Name><Writable>x</Writable></P><P><Name>A.D</Name><Writable></Writable></P></ParameterList></cwmp:GetParameterNamesResponse>` + fdTail,
}

// TestFastDecodeMatches: wherever the typed fast path accepts input, its
// Envelope is the DOM path's (decodeDoc over fastParse), skipped entries
// included; the fixtures and the cases above go through it, and the
// bootstrap's shapes must take it.
func TestFastDecodeMatches(t *testing.T) {
	inputs, _ := withFixtures(t, fastDecodeCases)
	fast := 0
	for _, in := range inputs {
		if checkFastDecode(t, []byte(in)) {
			fast++
		}
	}
	t.Logf("%d of %d inputs took the typed fast path", fast, len(inputs))
	for _, f := range []string{"gpn-response.xml", "gpv-response-300.xml", "gpv-response.xml", "inform-tr098-bootstrap.xml", "inform-tr181.xml", "gpv-request.xml", "gpn-request.xml", "inform-response.xml", "spv-request.xml", "spv-response.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fastDecode(b, DefaultMaxDepth); !ok {
			t.Errorf("%s did not take the typed fast path", f)
		}
	}
	for i, in := range fastDecodeCases[14:24] {
		if _, ok := fastDecode([]byte(in), DefaultMaxDepth); ok != (i != 1 && i != 4 && i != 7) { // bad NextLevel, MaxEnvelopes, Status fall back
			t.Errorf("case %d: took the typed fast path: %v", 14+i, ok)
		}
	}
	for i, in := range fastDecodeCases[:14] {
		if _, ok := fastDecode([]byte(in), DefaultMaxDepth); !ok && i != 9 && i != 11 && i != 12 { // those three must fall back
			t.Errorf("case %d did not take the typed fast path", i)
		}
	}
}

// checkFastDecode compares the typed fast path with the DOM path on in
// and reports whether the fast path took it.
func checkFastDecode(t *testing.T, in []byte) bool {
	t.Helper()
	env, ok := fastDecode(in, DefaultMaxDepth)
	if !ok {
		return false
	}
	if err := refuseDirectives(in); err != nil {
		// decode checks for them only when the fast path refuses.
		t.Fatalf("typed fast path accepted a markup declaration:\n%q", in)
	}
	doc, ok := fastParse(in, DefaultMaxDepth)
	if !ok {
		t.Fatalf("typed fast path accepted what fastParse refuses:\n%q", in)
	}
	want, err := decodeDoc(doc)
	if err != nil {
		t.Fatalf("typed fast path accepted what decodeDoc refuses (%v):\n%q", err, in)
	}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("typed fast path differs on %q:\n got %s\nwant %s", in, dumpEnv(env), dumpEnv(want))
	}
	return true
}

func dumpEnv(e *Envelope) string {
	return fmt.Sprintf("%+v body=%#v", *e, e.Body)
}

func FuzzFastDecode(f *testing.F) {
	for _, s := range fastDecodeCases {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("testdata/*.xml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkFastDecode(t, in) })
}

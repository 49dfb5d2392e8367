// Package sim simulates CPEs: virtual TR-098 and TR-181 gateways and a
// TR-104 VoIP adapter, built from embedded data-model templates, that run
// CWMP sessions against any ACS URL and listen for connection requests.
//
// # Programmatic API
//
//	f, err := sim.New(sim.Config{
//		ACSURL: "http://127.0.0.1:7547/", Count: 100, Model: "mixed", Seed: 1,
//		InformInterval: 5 * time.Minute, CRAddr: "127.0.0.1:0",
//		Username: "cpe", Password: "secret",
//	})
//	err = f.Start(ctx)           // devices inform 0 BOOTSTRAP + 1 BOOT, spread over Config.Ramp
//	d := f.Device(0)             // *Device, 0 ≤ i < f.Len()
//	d.ID()                       // "00D09E-HG%2D2000-ESG000100000000" (GenieACS style)
//	d.Get("InternetGatewayDevice.DeviceInfo.SoftwareVersion")
//	d.ConnectionRequestURL()     // http://<CRAddr>/<serial>, digest-protected
//	d.Wake()                     // inform now with 6 CONNECTION REQUEST
//	d.SetLocal(name, value)      // a change made on the device: 4 VALUE CHANGE if notified
//	st := f.Stats()              // sessions, errors, faults, per-RPC counts, p50/p99
//	f.Close()                    // stops devices and listeners, waits for them
//
// Other knobs are on Config: UDPCRAddr and STUNServer (TR-111 UDP
// connection requests), TimeScale (retry back-off and scheduled delays),
// RebootDelay, Insecure/CAFile/RootCAs for HTTPS, PoolConnections,
// MaxConnecting (how many devices open a session at once), MaxSockets
// (how many connections to the ACS a process holds at once; by default
// its descriptor limit less a tenth, so a storm's flood waits for
// descriptors instead of failing sessions on them).
//
// # Data model
//
// Config.Model picks the template: "tr098" (home gateway), "tr181"
// (router), "voip" (a two-line SIP adapter: TR-098 root with TR-104
// Services.VoiceService.1.VoiceProfile.1.Line.{1,2}, as most ATAs and VoIP
// phones report themselves), "mixed" (tr098 and tr181 alternating) or a
// comma-separated rotation such as "tr098,tr181,voip".
//
// models/tr098.txt, models/tr181.txt and models/voip.txt hold one entry per
// parameter: path (with "{i}" for table instances), type, flags (R/W, F
// forced into every Inform, A active notification, S secret) and a default
// value or a generator such as {serial}, {mac}, {ip:10.0.0.0/8} or {hex:16}.
// Values are deterministic in (Seed, device index), except the live ones,
// computed at every read: DeviceInfo.UpTime ({uptime}: seconds since the
// device booted, counted again from every reboot) and Time.CurrentLocalTime
// ({now}). Every model has DeviceInfo.MemoryStatus.Total/Free (KiB) and
// ProcessStatus.CPUUsage. A Model is compiled once; every device shares its
// names, types and layout and stores only a slice of its own values, copying
// the layout only when AddObject or DeleteObject changes it (about 6 KB per
// idle device; 10,000 devices run in ~250 MB RSS).
//
// # Device behaviour
//
// A Device answers GetRPCMethods, Get/SetParameterValues (atomic, per
// parameter faults 9005–9008 under 9003: 9007 for a value that does not
// parse as the parameter's type, 9006 for a value sent as another type,
// the integer types being interchangeable within range; ParameterKey
// stored),
// GetParameterNames, Get/SetParameterAttributes, Add/DeleteObject, Reboot
// (offline for RebootDelay, then 1 BOOT + M Reboot), FactoryReset (template
// values, 0 BOOTSTRAP), Download (a real HTTP GET; firmware sets
// SoftwareVersion from X-Firmware-Version or a "_v<version>.bin" name; then
// 7 TRANSFER COMPLETE + M Download and a TransferComplete with the fault
// code), Upload (a real PUT of a config dump or log), ScheduleInform
// (3 SCHEDULED + M ScheduleInform), Get(All)QueuedTransfers and GetOptions;
// anything else faults 9000. A failed session is retried on TR-069's
// schedule (5 s·2^(n-1) … 5 s·2^n) with RetryCount in the Inform.
//
// Each session uses its own cookie jar and, unless PoolConnections is set,
// its own TCP connection, as real CPEs do (GenieACS ties sessions to
// connections). ACS credentials are answered with cwmp.DigestTransport
// (Digest or Basic). To a loopback address (Linux), each device
// connects from an address of its own, 127.a.b.c from its index,
// as CPEs do from theirs: one source address has ~28,000 ephemeral ports
// toward the ACS's port, each held a minute in TIME_WAIT, which caps a
// fleet near 470 new connections a second (Config.SingleSource turns it
// off).
//
// # Scale
//
// An idle device costs ~12.5 KB (50,000 devices waiting for their first
// Inform: 628 MB RSS; 10,000: 151 MB): its value slice (~3.8 KB for the
// ~240 nodes of a layout, 16 bytes each), the generated values (~1 KB), the
// Device and its goroutine's stack. A session in flight costs more: the
// encoded Inform and the decoded requests, the cookie jar, a socket, and
// formerly the net/http machinery of a cloned Transport per session (a
// read loop and a write loop goroutine per connection and one more per
// request for the client timeout): ~54 KB per device with 15,000 sessions
// waiting on a silent ACS. That, not the idle cost, is why a fleet whose
// ACS is slow looked like 44 KB per device at 50,000. Sessions now run on
// one goroutine each (connTransport: one connection, deadlines instead of
// timers, a pooled write buffer): ~34 KB per device in the same test.
// That goroutine is a session worker kept between sessions (workers.go),
// not the device's own, whose stack the collector shrank while it slept
// and every session grew again on fresh pages. A fleet is built from
// each model's device-independent values, copied, plus the ~60 values
// generated per device. The other limit is file descriptors: every session in flight is a
// socket, so one process can hold at most its fd limit (20,000 here) of
// sessions waiting at once; more fail to dial and retry.
//
// A large fleet is therefore split: Config.Offset (`edgeacs sim --offset`)
// starts a fleet at a device index, and fleets with the same Seed and
// disjoint [Offset, Offset+Count) ranges simulate disjoint devices, on one
// machine or several. `edgeacs sim --processes N` does it on one machine:
// it runs N children with a share of the range each (their own fds, heap
// and connection-request listener) and merges their Stats (Stats.Merge, an
// exact merge of the duration histograms). The storm benchmark runs
// 100,000 devices on a 2-vCPU box as two processes of 50,000: four of
// 25,000 cost more in process switches than they saved, and one
// process per CPU is as many as help.
package sim

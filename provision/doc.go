// Package provision is the declarative provisioning engine: GenieACS's
// declare() semantics evaluated at the edge, without I/O.
//
// Presets, tasks and scripts (package provision/script) state what they
// need as declarations: "this path, this fresh, with this value / this
// many instances". A Run collects the declarations of one CWMP session, per
// channel (a preset's channel, "task_<id>" for a task), and plans the
// fewest RPCs that satisfy them against the device's cached tree:
//
//	run := provision.NewRun(provision.Options{Now: start, DeviceID: id})
//	ch, _ := run.Channel("task_" + taskID)
//	_ = ch.Provision("value", "Device.ManagementServer.PeriodicInformInterval", 300.0)
//	for {
//		rpcs, done := run.Next(tree)
//		if done {
//			break
//		}
//		for _, req := range rpcs {
//			answer := send(req) // the CWMP session: cwmp.Session.Next / Receive
//			_ = run.Answer(tree, answer, time.Now())
//		}
//	}
//	out := run.Outcome() // tags, faults per channel, changes, reboot/download
//
// Like the cwmp.Session state machine, a Run sends nothing and stores
// nothing: the caller owns the transport and the tree. The tree is read
// through the small Tree interface (an entry per node with the times its
// existence, writable flag, value and child list were learnt), so the
// edge's Badger cache can serve it directly; MemTree is an in-memory
// implementation. Answer applies each response to the tree with the
// exported helpers (ApplyResponse, ApplyFault, ApplyDownload), which the
// edge may also call for RPCs it sends on its own.
//
// Each Next replans from the tree, so a run is robust to answers applied
// piecemeal, and bounded: a declaration that cannot be satisfied (a path
// the CPE lacks, a CPE that contradicts itself) ends as a warning or a
// channel fault after at most Options.MaxIterations rounds, never a loop.
package provision

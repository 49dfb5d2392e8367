package core

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/edgeacs/edgeacs/fleet"
)

// Preset channel faults. An edge records a fault per device and preset
// channel ("<device>:<channel>", GenieACS's ID) and reports it, and its
// clearing, upstream (fleet.ChannelFault); the core keeps the latest one
// under f/<device>\0:<channel>, next to the device's task faults (task
// IDs are ULIDs: never a ':'), so the fault lists and a device's
// deletion cover both. Deleting one here tells the edge that recorded it
// (DownFaultClear on its own log), which deletes its copy unless it
// faulted again since; the next session there retries the channel.

// channelFaultKey is the key of a channel's fault ("" : every channel's
// of the device).
func channelFaultKey(device, channel string) []byte {
	return key(pFault, device, ":"+channel)
}

// channelFault applies an edge's report of a channel fault, or of its
// clearing. Reports carry the fault's time: an older one than stored
// changes nothing (a clear of an older fault keeps the newer), so
// reports that cross a delete at the core settle on the latest fault.
func (p processor) channelFault(w *wtx, c *Command, cf *fleet.ChannelFault) error {
	if err := cf.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := checkName("device ID", cf.Device); err != nil {
		return err
	}
	k := channelFaultKey(cf.Device, cf.Channel)
	var cur Fault
	v, found, err := w.get(k)
	if err != nil {
		return storageError{err}
	}
	if found {
		if err := decodeRecord(v, &cur); err != nil {
			return storageError{err}
		}
	}
	if cf.Cleared {
		if !found || cur.Time.After(cf.Timestamp) {
			return nil
		}
		if err := w.del(k); err != nil {
			return storageError{err}
		}
		return nil
	}
	if found && cur.Time.After(cf.Timestamp) {
		return nil
	}
	if _, _, ok, err := p.device(w, cf.Device); err != nil {
		return storageError{err}
	} else if !ok {
		return nil // deleted at the core meanwhile: its faults went with it
	}
	return p.putRecord(w, k, Fault{Device: cf.Device, Channel: cf.Channel, Retries: cf.Retries, Edge: c.Edge, Time: cf.Timestamp,
		Fault: fleet.TaskFault{Code: cf.Code, Message: cf.Message, Detail: cf.Detail}})
}

// deleteChannelFault applies OpDeleteChannelFault: the fault Name is
// deleted and its edge told, with the fault's time.
func (p processor) deleteChannelFault(w *wtx, c *Command) error {
	dev, ch, ok := splitChannelFaultID(c.Name)
	if !ok {
		return fmt.Errorf("fault %q: %w", c.Name, ErrNotFound)
	}
	k := channelFaultKey(dev, ch)
	v, found, err := w.get(k)
	if err != nil {
		return storageError{err}
	}
	if !found {
		return fmt.Errorf("fault %s: %w", c.Name, ErrNotFound)
	}
	var f Fault
	if err := decodeRecord(v, &f); err != nil {
		return storageError{err}
	}
	if err := w.del(k); err != nil {
		return storageError{err}
	}
	if f.Edge == "" {
		return nil
	}
	return p.appendDown(w, c, f.Edge, fleet.DownRecord{Kind: fleet.DownFaultClear, Device: dev,
		Fault: &fleet.ChannelFault{Device: dev, Channel: ch, Timestamp: f.Time, Cleared: true}})
}

// splitChannelFaultID splits "<device>:<channel>" (device IDs have no
// ':'); a task's channel ("task_<id>") is not a preset channel.
func splitChannelFaultID(id string) (device, channel string, ok bool) {
	device, channel, ok = strings.Cut(id, ":")
	if !ok || device == "" || channel == "" || strings.HasPrefix(channel, "task_") {
		return "", "", false
	}
	return device, channel, true
}

// deleteFault answers DELETE /api/v1/faults/{id} as the edge does: a
// preset channel's fault ("<device>:<channel>") is deleted here and at
// the edge that recorded it, whose next session with the device retries
// the channel. A task's fault goes with its task (DELETE
// /api/v1/tasks/{id}).
func (n *Node) deleteFault(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, _, ok := splitChannelFaultID(id); !ok {
		// A task's fault: its _id is the task's.
		n.deleteTaskFault(w, r)
		return
	}
	if _, ok := n.applyOK(w, r, Command{Op: OpDeleteChannelFault, Name: id}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

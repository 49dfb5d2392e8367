package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// TaskRequest is a task to create, in GenieACS's NBI shape: the name and
// the arguments its kind takes (see fleet.Task.Validate).
type TaskRequest struct {
	Name                string               `json:"name"`
	ParameterNames      []string             `json:"parameterNames,omitempty"`
	ParameterValues     []ParameterValue     `json:"parameterValues,omitempty"`
	ParameterAttributes []ParameterAttribute `json:"parameterAttributes,omitempty"`
	ObjectName          string               `json:"objectName,omitempty"`
	ParameterPath       string               `json:"parameterPath,omitempty"`
	NextLevel           bool                 `json:"nextLevel,omitempty"`
	ParameterKey        string               `json:"parameterKey,omitempty"`
	FileType            string               `json:"fileType,omitempty"`
	FileName            string               `json:"fileName,omitempty"`
	TargetFileName      string               `json:"targetFileName,omitempty"`
	URL                 string               `json:"url,omitempty"`
	Username            string               `json:"username,omitempty"`
	Password            string               `json:"password,omitempty"`
	DelaySeconds        uint32               `json:"delaySeconds,omitempty"`
	CommandKey          string               `json:"commandKey,omitempty"`
	// Diagnostics' arguments (ping, traceroute, nslookup,
	// downloadDiagnostics, uploadDiagnostics; see fleet.Task).
	Host           string `json:"host,omitempty"`
	Count          uint32 `json:"count,omitempty"`
	MaxHopCount    uint32 `json:"maxHopCount,omitempty"`
	DNSServer      string `json:"dnsServer,omitempty"`
	TestFileLength uint32 `json:"testFileLength,omitempty"`
	// Expiry is how long, in seconds, the task may stay pending.
	Expiry float64 `json:"expiry,omitempty"`
}

// CreateOptions say how CreateTask queues a task.
type CreateOptions struct {
	// Wake asks the device's edge to send it a connection request, so it
	// runs the task now rather than at its next periodic inform.
	Wake bool
	// Wait, if positive, makes the API answer only when the task is final
	// or Wait has passed (at most 5 minutes).
	Wait time.Duration
	// IdempotencyKey, if set, makes a retry of the same request answer
	// the first task instead of queueing a second one.
	IdempotencyKey string
}

// waitQuery adds ?wait= (whole milliseconds) to q.
func waitQuery(q url.Values, d time.Duration) {
	if d > 0 {
		q.Set("wait", d.Truncate(time.Millisecond).String())
	}
}

// CreateTask queues a task for one device and returns it: final (done,
// fault or expired) if it ended within o.Wait, else as it stands. Task's
// Warning says why a connection request asked for failed; the task is
// queued all the same.
func (c *Client) CreateTask(ctx context.Context, device string, t TaskRequest, o CreateOptions) (Task, error) {
	q := url.Values{}
	if o.Wake {
		q.Set("connection_request", "true")
	}
	waitQuery(q, o.Wait)
	path := withQuery("/api/v1/devices/"+url.PathEscape(device)+"/tasks", q)
	var out Task
	if o.IdempotencyKey == "" {
		err := c.Do(ctx, http.MethodPost, path, t, &out)
		return out, err
	}
	h := http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {o.IdempotencyKey}}
	body, err := jsonBody(t)
	if err != nil {
		return out, fmt.Errorf("encode POST %s: %w", path, err)
	}
	err = c.Upload(ctx, http.MethodPost, path, body, h, &out)
	return out, err
}

// jsonBody is v encoded as a request body.
func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// FilterTasks is the answer to CreateFilterTasks: how many tasks were
// queued, and their IDs (one per selected device).
type FilterTasks struct {
	Count int      `json:"count"`
	IDs   []string `json:"ids"`
}

// CreateFilterTasks queues the task t for every device f selects, in one
// request; wake asks each device's edge to send a connection request. An
// empty filter is refused by the API (it would select the whole fleet by
// accident): select everything explicitly with Expr "true".
func (c *Client) CreateFilterTasks(ctx context.Context, f DeviceFilter, t TaskRequest, wake bool) (FilterTasks, error) {
	q := url.Values{}
	if wake {
		q.Set("connection_request", "true")
	}
	body := struct {
		Filter DeviceFilter `json:"filter"`
		Task   TaskRequest  `json:"task"`
	}{f, t}
	var out FilterTasks
	err := c.Do(ctx, http.MethodPost, withQuery("/api/v1/tasks", q), body, &out)
	return out, err
}

// Task returns one task as it stands.
func (c *Client) Task(ctx context.Context, id string) (Task, error) {
	return c.WaitTask(ctx, id, 0)
}

// WaitTask returns a task once it is final, or when wait has passed
// (at most 5 minutes; 0 does not wait) as it stands.
func (c *Client) WaitTask(ctx context.Context, id string, wait time.Duration) (Task, error) {
	q := url.Values{}
	waitQuery(q, wait)
	var out Task
	err := c.Do(ctx, http.MethodGet, withQuery("/api/v1/tasks/"+url.PathEscape(id), q), nil, &out)
	return out, err
}

// maxWait is the longest ?wait= the API takes.
const maxWait = 5 * time.Minute

// pollMargin is how long before a deadline (the context's, or a
// request's timeout) a long poll is asked to end, so the API's answer
// arrives before the deadline cuts the request; a fifth of the time left
// when that is less.
const pollMargin = 500 * time.Millisecond

// PollWait is the ?wait= to ask for with the time left before a
// deadline: most of it, less a margin for the answer to travel; 0 when
// too little is left to wait at all.
func PollWait(left time.Duration) time.Duration {
	w := min(maxWait, left-min(pollMargin, left/5))
	if w < 10*time.Millisecond {
		return 0
	}
	return w
}

// AwaitTask waits for a task to become final, with long polls, until ctx
// ends. When ctx's deadline comes first it returns the task as last seen
// (empty if no poll answered) and an error wrapping
// context.DeadlineExceeded.
func (c *Client) AwaitTask(ctx context.Context, id string) (Task, error) {
	var last Task
	for {
		wait := PollWait(c.hc.Timeout)
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, PollWait(time.Until(dl)))
			if wait == 0 {
				return last, fmt.Errorf("task %s: %w", id, context.DeadlineExceeded)
			}
		}
		if err := ctx.Err(); err != nil {
			return last, fmt.Errorf("task %s: %w", id, err)
		}
		if wait == 0 {
			wait = time.Second // a request timeout too short to leave a margin
		}
		t, err := c.WaitTask(ctx, id, wait)
		if err != nil {
			if ctx.Err() != nil {
				return last, fmt.Errorf("task %s: %w", id, ctx.Err())
			}
			return last, err
		}
		last = t
		if t.Task != nil && t.Status.Final() {
			return t, nil
		}
	}
}

// TaskQuery is one page of a task list.
type TaskQuery struct {
	// Device, if set, lists only that device's tasks (an unknown device
	// is ErrNotFound).
	Device string
	// Status, if set, lists only tasks in that status.
	Status TaskStatus
	// Limit is the page size (the API's default when 0).
	Limit int
	// Cursor is where the page starts: the previous page's next cursor.
	Cursor string
}

// Tasks lists one page of tasks in creation order; next is the cursor of
// the next page, "" after the last.
func (c *Client) Tasks(ctx context.Context, q TaskQuery) (tasks []Task, next string, err error) {
	v := url.Values{}
	if q.Device != "" {
		v.Set("device", q.Device)
	}
	if q.Status != "" {
		v.Set("status", string(q.Status))
	}
	pageQuery(v, q.Limit, q.Cursor)
	h, err := c.DoHeader(ctx, http.MethodGet, withQuery("/api/v1/tasks", v), nil, &tasks)
	if err != nil {
		return nil, "", err
	}
	return tasks, h.Get("X-Next-Cursor"), nil
}

// AllTasks yields every task q selects, page by page (pages of 1000 when
// q.Limit is 0), stopping at the first error, which it yields.
func (c *Client) AllTasks(ctx context.Context, q TaskQuery) iter.Seq2[Task, error] {
	if q.Limit <= 0 {
		q.Limit = listPage
	}
	return func(yield func(Task, error) bool) {
		for {
			ts, next, err := c.Tasks(ctx, q)
			if err != nil {
				yield(Task{}, err)
				return
			}
			for _, t := range ts {
				if !yield(t, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			q.Cursor = next
		}
	}
}

// CancelTask deletes a task; the edge holding it drops it too.
func (c *Client) CancelTask(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/tasks/"+url.PathEscape(id), nil, nil)
}

// Faults lists the faults of one device, or of every device when device
// is "".
func (c *Client) Faults(ctx context.Context, device string) ([]Fault, error) {
	v := url.Values{}
	if device != "" {
		v.Set("device", device)
	}
	var out []Fault
	err := c.Do(ctx, http.MethodGet, withQuery("/api/v1/faults", v), nil, &out)
	return out, err
}

// ClearFault deletes a fault by its ID (the ID of the task that
// faulted); the task is removed with it.
func (c *Client) ClearFault(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/faults/"+url.PathEscape(id), nil, nil)
}

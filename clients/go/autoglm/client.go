package autoglm

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	autoglmv1 "github.com/open-autoglm/autoglm/clients/go/gen/autoglm/v1"
)

// Client calls the public API over one connection. It is safe for
// concurrent use; Close it when done.
type Client struct {
	conn    *grpc.ClientConn
	tasks   autoglmv1.TaskServiceClient
	timeout time.Duration
}

// Dial connects to the public endpoint and returns once the connection is
// ready, so that a wrong address or CA shows here rather than at the first
// call. ctx bounds the wait, and Options.Timeout when ctx has no deadline.
// When ctx ends first, the error is ctx's: a status error of code
// codes.Canceled or codes.DeadlineExceeded for which errors.Is(err,
// ctx.Err()) holds. A connection not ready within Options.Timeout is a
// codes.Unavailable status error. Both messages give the connection's state
// and its last failed TLS handshake, if any. Bad options (an unreadable CA
// file) are plain errors.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	handshakes := new(handshakeErrors)
	dialOptions, err := opts.dialOptions(handshakes)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(opts.Address, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("autoglm: %w", err)
	}
	if state, ready := awaitReady(ctx, conn, opts.Timeout); !ready {
		_ = conn.Close()
		return nil, notReadyError(ctx, opts, state, handshakes.lastError())
	}
	return &Client{conn: conn, tasks: autoglmv1.NewTaskServiceClient(conn), timeout: opts.Timeout}, nil
}

// awaitReady waits until conn is READY, or ctx ends, or timeout passes when
// ctx has no deadline. It returns the last state seen, and whether it is READY.
func awaitReady(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) (connectivity.State, bool) {
	ctx, cancel := withDefaultDeadline(ctx, timeout)
	defer cancel()
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready {
			return state, true
		}
		if !conn.WaitForStateChange(ctx, state) {
			return conn.GetState(), false
		}
	}
}

// notReadyError is Dial's error for a connection that did not become ready:
// ctx's own when ctx has ended, codes.Unavailable when Options.Timeout passed.
func notReadyError(ctx context.Context, opts Options, state connectivity.State, handshakeErr error) error {
	detail := "connection " + state.String()
	if handshakeErr != nil {
		detail += ", last TLS handshake: " + handshakeErr.Error()
	}
	if err := ctx.Err(); err != nil {
		code := status.FromContextError(err).Code()
		return &contextError{
			status: status.Newf(code, "autoglm: %s not ready: %v (%s)", opts.Address, err, detail),
			err:    err,
		}
	}
	return status.Errorf(codes.Unavailable, "autoglm: %s not ready after %s (%s)", opts.Address, opts.Timeout, detail)
}

// contextError is a status error caused by a context's end: status.Code
// reads its code, and errors.Is matches the context's error.
type contextError struct {
	status *status.Status
	err    error
}

func (e *contextError) Error() string              { return e.status.Err().Error() }
func (e *contextError) GRPCStatus() *status.Status { return e.status }
func (e *contextError) Unwrap() error              { return e.err }

// withDefaultDeadline gives ctx a deadline timeout from now unless it has one.
func withDefaultDeadline(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}

// Conn is the client's connection, with its credentials, for the services
// and calls this package does not wrap: for example
// autoglmv1.NewClusterServiceClient(c.Conn()).ListNodes.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection; calls in flight end with codes.Canceled.
func (c *Client) Close() error { return c.conn.Close() }

// Submit submits a task and returns once it is durable. With a request_id,
// submitting again returns the same task (Created false).
func (c *Client) Submit(ctx context.Context, req *autoglmv1.SubmitTaskRequest) (*autoglmv1.SubmitTaskResponse, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	return c.tasks.SubmitTask(ctx, req)
}

// Get returns a task with its result.
func (c *Client) Get(ctx context.Context, taskID string) (*autoglmv1.Task, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	return c.tasks.GetTask(ctx, &autoglmv1.GetTaskRequest{TaskId: taskID})
}

// List returns one page of tasks, newest first; pass NextPageToken back as
// PageToken for the next.
func (c *Client) List(ctx context.Context, req *autoglmv1.ListTasksRequest) (*autoglmv1.ListTasksResponse, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	return c.tasks.ListTasks(ctx, req)
}

// Cancel cancels a task that has not finished and returns it; a finished
// task is returned unchanged. reason is recorded with the CANCELLED event.
func (c *Client) Cancel(ctx context.Context, taskID, reason string) (*autoglmv1.Task, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	return c.tasks.CancelTask(ctx, &autoglmv1.CancelTaskRequest{TaskId: taskID, Reason: reason})
}

// Explain returns why a task has the priority and queue position it has.
func (c *Client) Explain(ctx context.Context, taskID string) (*autoglmv1.PriorityExplanation, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.timeout)
	defer cancel()
	return c.tasks.ExplainTask(ctx, &autoglmv1.ExplainTaskRequest{TaskId: taskID})
}

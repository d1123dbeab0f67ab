package autoglm

import (
	"context"
	"errors"
	"io"
	"iter"

	autoglmv1 "github.com/open-autoglm/autoglm/clients/go/gen/autoglm/v1"
)

// Watch streams a task's transitions, from after req.AfterSequence (0: the
// whole history), until the final one:
//
//	for event, err := range client.Watch(ctx, &autoglmv1.WatchTaskRequest{TaskId: id}) {
//		if err != nil {
//			return err // a status error
//		}
//		if event.GetFinal() { ... }
//	}
//
// The loop ends after the final event. An error is yielded once, last.
// Breaking out of the loop cancels the stream. The stream has no deadline of
// its own: ctx bounds it.
func (c *Client) Watch(ctx context.Context, req *autoglmv1.WatchTaskRequest) iter.Seq2[*autoglmv1.TaskEvent, error] {
	return func(yield func(*autoglmv1.TaskEvent, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.tasks.WatchTask(ctx, req)
		if err != nil {
			yield(nil, err)
			return
		}
		for {
			event, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(event, nil) {
				return
			}
		}
	}
}

package autoglm

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	autoglmv1 "github.com/open-autoglm/autoglm/clients/go/gen/autoglm/v1"
)

// closeReason is recorded with the CANCELLED event of a task whose stream
// was closed before it ended.
const closeReason = "the client closed the Infer stream"

// InferStream is one interactive inference: Recv its messages (accepted,
// then chunks, then done) until io.EOF; Cancel stops it early. Close it when
// done with it, whether or not it was read to its end.
type InferStream struct {
	stream grpc.BidiStreamingClient[autoglmv1.InferRequest, autoglmv1.InferResponse]
	// cancel ends the stream's context, and with it the stream.
	cancel context.CancelFunc
	// sendMu: Cancel may run beside Recv, and at most one goroutine may send.
	sendMu sync.Mutex
	// closed: the send side is closed; nothing more is sent.
	closed bool
}

// Infer starts an interactive inference. A refused start (an unknown model:
// codes.InvalidArgument) is the error of the first Recv. The stream has no
// deadline of its own: ctx bounds it, and cancelling ctx abandons it at once
// (the task ends CANCELLED). Close the stream when done with it:
//
//	stream, err := client.Infer(ctx, start)
//	if err != nil {
//		return err
//	}
//	defer stream.Close()
//
// A stream neither read to io.EOF nor closed holds its resources, and its task
// goes on generating, until ctx ends.
func (c *Client) Infer(ctx context.Context, start *autoglmv1.InferStart) (*InferStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.tasks.Infer(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := stream.Send(&autoglmv1.InferRequest{Kind: &autoglmv1.InferRequest_Start{Start: start}}); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream already: Recv returns its status.
			if _, err = stream.Recv(); err == nil {
				err = status.Error(codes.Internal, "autoglm: the Infer stream ended before its start was sent")
			}
		}
		cancel()
		return nil, err
	}
	return &InferStream{stream: stream, cancel: cancel}, nil
}

// Recv returns the next message: InferResponse.GetAccepted() first (the task
// id), then GetChunk() for every piece of generated text, then GetDone()
// with the finish reason and usage. After done it returns io.EOF; any other
// error is a status error.
func (s *InferStream) Recv() (*autoglmv1.InferResponse, error) {
	msg, err := s.stream.Recv()
	if err != nil || msg.GetDone() != nil {
		// Nothing more is sent on a finished stream.
		s.closeSend()
	}
	if err != nil {
		// The stream is over: release its context.
		s.cancel()
	}
	return msg, err
}

// Cancel asks the server to stop generating; reason is recorded with the
// task's CANCELLED event. Keep calling Recv: the stream ends with a done
// whose finish reason is "cancelled" (or the reason it finished first).
// Cancel may be called from another goroutine than Recv's; calls after the
// first, or after the stream ended, do nothing.
func (s *InferStream) Cancel(reason string) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.stream.Send(&autoglmv1.InferRequest{Kind: &autoglmv1.InferRequest_Cancel{Cancel: &autoglmv1.InferCancel{Reason: reason}}})
	_ = s.stream.CloseSend()
	if errors.Is(err, io.EOF) {
		// The server has ended the stream already; Recv tells how.
		return nil
	}
	return err
}

// Close ends the stream and releases its resources. A stream that has not
// ended is cancelled first, as by Cancel, so that its task stops generating
// and ends CANCELLED; a Recv blocked in another goroutine then returns
// codes.Canceled. Close may be called from another goroutine than Recv's,
// and more than once. Its error is that of sending the cancel message.
func (s *InferStream) Close() error {
	err := s.Cancel(closeReason)
	s.cancel()
	return err
}

func (s *InferStream) closeSend() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.closed {
		s.closed = true
		_ = s.stream.CloseSend()
	}
}

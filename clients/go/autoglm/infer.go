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

// InferStream is one interactive inference: Recv its messages (accepted,
// then chunks, then done) until io.EOF; Cancel stops it early.
type InferStream struct {
	stream grpc.BidiStreamingClient[autoglmv1.InferRequest, autoglmv1.InferResponse]
	// sendMu: Cancel may run beside Recv, and at most one goroutine may send.
	sendMu sync.Mutex
	closed bool
}

// Infer starts an interactive inference. A refused start (an unknown model:
// codes.InvalidArgument) is the error of the first Recv. The stream has no
// deadline of its own: ctx bounds it, and cancelling ctx abandons it at once
// (the task ends CANCELLED). Read it to io.EOF or cancel ctx, or it leaks.
func (c *Client) Infer(ctx context.Context, start *autoglmv1.InferStart) (*InferStream, error) {
	stream, err := c.tasks.Infer(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&autoglmv1.InferRequest{Kind: &autoglmv1.InferRequest_Start{Start: start}}); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream already: Recv returns its status.
			if _, err = stream.Recv(); err == nil {
				err = status.Error(codes.Internal, "autoglm: the Infer stream ended before its start was sent")
			}
		}
		return nil, err
	}
	return &InferStream{stream: stream}, nil
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

func (s *InferStream) closeSend() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.closed {
		s.closed = true
		_ = s.stream.CloseSend()
	}
}

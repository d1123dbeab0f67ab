package autoglm

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
)

// handshakeErrors records the last failed TLS handshake of a connection, so
// that Dial can tell why it never became ready (a wrong CA, a plaintext
// endpoint); gRPC keeps that error to itself.
type handshakeErrors struct {
	mu   sync.Mutex
	last error
}

func (h *handshakeErrors) record(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = err
}

// lastError is the error of the last failed handshake, or nil.
func (h *handshakeErrors) lastError() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// recordingCredentials are transport credentials that record their failed
// client handshakes.
type recordingCredentials struct {
	credentials.TransportCredentials
	errors *handshakeErrors
}

func (c recordingCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	secured, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		c.errors.record(err)
	}
	return secured, info, err
}

func (c recordingCredentials) Clone() credentials.TransportCredentials {
	return recordingCredentials{TransportCredentials: c.TransportCredentials.Clone(), errors: c.errors}
}

package autoglm

import (
	"context"

	"google.golang.org/grpc/credentials"
)

// callCredentials put the bearer token and the tenant on every call.
type callCredentials struct {
	token  string
	tenant string
	// secure: the connection uses TLS; gRPC then refuses to send the token
	// over a connection without it.
	secure bool
}

var _ credentials.PerRPCCredentials = callCredentials{}

func (c callCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	md := make(map[string]string, 2)
	if c.token != "" {
		md["authorization"] = "Bearer " + c.token
	}
	if c.tenant != "" {
		md["x-autoglm-tenant"] = c.tenant
	}
	return md, nil
}

func (c callCredentials) RequireTransportSecurity() bool { return c.secure }

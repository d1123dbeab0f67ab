package autoglm

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultAddress is the public endpoint of a local mesh started with the documented ports.
const DefaultAddress = "127.0.0.1:50051"

// DefaultTimeout bounds a unary call whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// maxMessageBytes matches the service's limit: prompts and outputs can be long.
const maxMessageBytes = 16 << 20

// Options configure Dial.
type Options struct {
	// Address is host:port of the public endpoint (the parser).
	// Default: DefaultAddress.
	Address string
	// Token is the API token, sent as "authorization: Bearer <token>" on
	// every call; it says who calls (tenant and role). A local mesh writes
	// its admin token to <data dir>/admin-token. Empty: calls are refused
	// with codes.Unauthenticated.
	Token string
	// CAFile is a PEM file with the CA the endpoint's certificate is checked
	// against; a local mesh's is <data dir>/tls/ca.pem. Empty: the system's
	// roots, unless Insecure is set.
	CAFile string
	// Tenant is sent as "x-autoglm-tenant": the tenant of requests that
	// name none. Empty: the token's tenant.
	Tenant string
	// Insecure dials without TLS, for an endpoint that serves plaintext; the
	// token then travels in the clear. Not allowed with CAFile.
	Insecure bool
	// Timeout bounds each unary call whose context has no deadline, and the
	// wait in Dial when its context has none. Default: DefaultTimeout.
	Timeout time.Duration
	// DialOptions are appended to the client's own (interceptors, keepalive, ...).
	DialOptions []grpc.DialOption
}

// withDefaults returns o with the zero fields that have a default filled in.
func (o Options) withDefaults() Options {
	if o.Address == "" {
		o.Address = DefaultAddress
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// dialOptions turns o into the gRPC options of the connection; the failed
// TLS handshakes of the connection go to handshakes.
func (o Options) dialOptions(handshakes *handshakeErrors) ([]grpc.DialOption, error) {
	transport, err := o.transportCredentials()
	if err != nil {
		return nil, err
	}
	if !o.Insecure {
		transport = recordingCredentials{TransportCredentials: transport, errors: handshakes}
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
	}
	if o.Token != "" || o.Tenant != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(callCredentials{token: o.Token, tenant: o.Tenant, secure: !o.Insecure}))
	}
	return append(opts, o.DialOptions...), nil
}

func (o Options) transportCredentials() (credentials.TransportCredentials, error) {
	if o.Insecure {
		if o.CAFile != "" {
			return nil, errors.New("autoglm: Options.Insecure and Options.CAFile exclude each other")
		}
		return insecure.NewCredentials(), nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("autoglm: reading the CA file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("autoglm: the CA file %s holds no PEM certificate", o.CAFile)
		}
		config.RootCAs = roots
	}
	return credentials.NewTLS(config), nil
}

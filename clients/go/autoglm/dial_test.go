package autoglm_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/open-autoglm/autoglm/clients/go/autoglm"
	autoglmv1 "github.com/open-autoglm/autoglm/clients/go/gen/autoglm/v1"
)

// metadataEcho answers GetTask with the caller's credentials in the task's
// fields: Tenant from x-autoglm-tenant, Reason from authorization.
type metadataEcho struct {
	autoglmv1.UnimplementedTaskServiceServer
}

func (metadataEcho) GetTask(ctx context.Context, req *autoglmv1.GetTaskRequest) (*autoglmv1.Task, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("authorization")) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no token")
	}
	return &autoglmv1.Task{Id: req.GetTaskId(), Tenant: strings.Join(md.Get("x-autoglm-tenant"), ","), Reason: strings.Join(md.Get("authorization"), ",")}, nil
}

// plaintextServer serves metadataEcho without TLS on a free loopback port.
func plaintextServer(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	autoglmv1.RegisterTaskServiceServer(server, metadataEcho{})
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	return listener.Addr().String()
}

func TestEveryCallCarriesTheTokenAndTenant(t *testing.T) {
	ctx := testContext(t)
	client, err := autoglm.Dial(ctx, autoglm.Options{Address: plaintextServer(t), Token: "agl_secret", Tenant: "acme", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	task, err := client.Get(ctx, "t-1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if task.GetReason() != "Bearer agl_secret" || task.GetTenant() != "acme" {
		t.Errorf("the server saw authorization %q and tenant %q; want %q and %q", task.GetReason(), task.GetTenant(), "Bearer agl_secret", "acme")
	}
	if _, err := client.Explain(ctx, "t-1"); status.Code(err) != codes.Unimplemented {
		t.Errorf("an RPC the server lacks: %v; want the server's status, Unimplemented", err)
	}
}

func TestDialWithTLSToAPlaintextServerIsUnavailable(t *testing.T) {
	start := time.Now()
	// t.Context() has no deadline: Options.Timeout bounds the wait.
	_, err := autoglm.Dial(t.Context(), autoglm.Options{Address: plaintextServer(t), Token: "agl_secret", Timeout: 2 * time.Second})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "TLS handshake") {
		t.Errorf("Dial: %v; want Unavailable naming the failed TLS handshake", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Dial waited %s past its 2s timeout", elapsed)
	}
}

func TestDialReturnsTheErrorOfItsContext(t *testing.T) {
	address := plaintextServer(t) // TLS never succeeds: the wait ends with ctx
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	for _, c := range []struct {
		name  string
		ctx   context.Context
		code  codes.Code
		cause error
	}{
		{"cancelled context", cancelled, codes.Canceled, context.Canceled},
		{"context past its deadline", expired, codes.DeadlineExceeded, context.DeadlineExceeded},
	} {
		start := time.Now()
		_, err := autoglm.Dial(c.ctx, autoglm.Options{Address: address, Token: "agl_secret"})
		if status.Code(err) != c.code || !errors.Is(err, c.cause) {
			t.Errorf("Dial with a %s: %v; want %s and errors.Is %v", c.name, err, c.code, c.cause)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("Dial with a %s returned after %s", c.name, elapsed)
		}
	}
}

func TestDialRefusesBadOptions(t *testing.T) {
	ctx := testContext(t)
	for name, opts := range map[string]autoglm.Options{
		"missing CA file":   {CAFile: filepath.Join(t.TempDir(), "ca.pem")},
		"CA file of no PEM": {CAFile: "dial_test.go"},
		"insecure with CA":  {CAFile: "dial_test.go", Insecure: true},
	} {
		if client, err := autoglm.Dial(ctx, opts); err == nil {
			_ = client.Close()
			t.Errorf("%s: Dial succeeded", name)
		}
	}
}

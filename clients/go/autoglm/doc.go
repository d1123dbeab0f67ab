// Package autoglm is a thin Go client of the Open-AutoGLM public API
// (proto/autoglm/v1): submit, inspect, watch and cancel tasks, and stream
// interactive inference.
//
// Requests and answers are the generated messages of package autoglmv1
// (github.com/open-autoglm/autoglm/clients/go/gen/autoglm/v1); the client
// adds the connection (TLS with the mesh's CA), the bearer token and the
// tenant on every call, and a default deadline on unary calls.
//
// # Errors
//
// Every error a call returns is a gRPC status error: read its code with
// status.Code(err) and its message with status.Convert(err).Message().
// The codes the service uses:
//
//   - codes.InvalidArgument: the request is malformed (an unknown model, a bad field).
//   - codes.Unauthenticated: no token, or one that is unknown or revoked.
//   - codes.PermissionDenied: the token's role or tenant does not allow the call.
//   - codes.NotFound: no such task, or one of another tenant.
//   - codes.ResourceExhausted: the tenant is over its quota or rate.
//   - codes.FailedPrecondition: the deadline cannot be met (DEADLINE_POLICY_REFUSE_UNMEETABLE).
//   - codes.Unavailable: the endpoint cannot be reached or is shutting down.
//   - codes.DeadlineExceeded, codes.Canceled: the context ended first.
//
// Unavailable is the only code worth retrying as is; SubmitTask is safe to
// retry when its request_id is set (the same id returns the same task).
// Streams end with io.EOF from Recv (or the end of a Watch loop) when the
// server completes them; close an Infer stream when done with it (defer
// stream.Close()), which also stops a task whose stream was left early.
package autoglm

package autoglm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/open-autoglm/autoglm/clients/go/autoglm"
	autoglmv1 "github.com/open-autoglm/autoglm/clients/go/gen/autoglm/v1"
)

const (
	tenant = "go"
	model  = "glm-4-9b"
	// testTimeout bounds each test: the sim backend runs 50 times faster than
	// real time, so a healthy mesh answers in well under a second.
	testTimeout = 60 * time.Second
)

// dial connects to the mesh as its admin, acting for tenant "go".
func dial(t *testing.T, ctx context.Context) *autoglm.Client {
	t.Helper()
	requireMesh(t)
	return dialWith(t, ctx, autoglm.Options{Token: mesh.token, Tenant: tenant})
}

// dialWith connects to the mesh with opts, its address and CA filled in.
func dialWith(t *testing.T, ctx context.Context, opts autoglm.Options) *autoglm.Client {
	t.Helper()
	opts.Address = mesh.address
	opts.CAFile = mesh.caFile
	client, err := autoglm.Dial(ctx, opts)
	if err != nil {
		t.Fatalf("Dial(%s): %v", mesh.address, err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// requestID is a fresh idempotency key.
func requestID(t *testing.T) string {
	return fmt.Sprintf("go-%s-%d", t.Name(), time.Now().UnixNano())
}

// watchToEnd collects a task's events until the final one.
func watchToEnd(t *testing.T, ctx context.Context, client *autoglm.Client, taskID string) []*autoglmv1.TaskEvent {
	t.Helper()
	var events []*autoglmv1.TaskEvent
	for event, err := range client.Watch(ctx, &autoglmv1.WatchTaskRequest{TaskId: taskID}) {
		if err != nil {
			t.Fatalf("Watch(%s) after %d events: %v", taskID, len(events), err)
		}
		if event.GetTaskId() != taskID {
			t.Fatalf("Watch(%s) sent an event of task %s", taskID, event.GetTaskId())
		}
		if want := uint64(len(events) + 1); event.GetSequence() != want {
			t.Fatalf("Watch(%s): event sequence %d, want %d", taskID, event.GetSequence(), want)
		}
		events = append(events, event)
	}
	if len(events) == 0 || !events[len(events)-1].GetFinal() {
		t.Fatalf("Watch(%s) ended without a final event; states: %v", taskID, states(events))
	}
	return events
}

func states(events []*autoglmv1.TaskEvent) []string {
	names := make([]string, len(events))
	for i, e := range events {
		names[i] = e.GetState().String()
	}
	return names
}

func TestSubmitBatchJobWatchedToSucceeded(t *testing.T) {
	ctx := testContext(t)
	client := dial(t, ctx)
	req := &autoglmv1.SubmitTaskRequest{
		RequestId: requestID(t),
		Payload: &autoglmv1.SubmitTaskRequest_Batch{Batch: &autoglmv1.BatchPayload{
			ExpectedDuration: durationpb.New(2 * time.Second), // 40 ms at time scale 50
		}},
	}

	submitted, err := client.Submit(ctx, req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	task := submitted.GetTask()
	if !submitted.GetCreated() || task.GetId() == "" || task.GetTenant() != tenant {
		t.Fatalf("Submit returned created=%v id=%q tenant=%q; want a new task of tenant %q", submitted.GetCreated(), task.GetId(), task.GetTenant(), tenant)
	}

	events := watchToEnd(t, ctx, client, task.GetId())
	last := events[len(events)-1]
	if last.GetState() != autoglmv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("task ended %s (%s); states: %v", last.GetState(), last.GetReason(), states(events))
	}
	if !slices.Contains(states(events), autoglmv1.TaskState_TASK_STATE_RUNNING.String()) {
		t.Errorf("the task never ran: states %v", states(events))
	}

	got, err := client.Get(ctx, task.GetId())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.GetState() != autoglmv1.TaskState_TASK_STATE_SUCCEEDED || !strings.Contains(got.GetResult().GetOutput(), "simulated job ran") {
		t.Errorf("Get: state %s, output %q; want SUCCEEDED with the sim backend's output", got.GetState(), got.GetResult().GetOutput())
	}

	again, err := client.Submit(ctx, req)
	if err != nil {
		t.Fatalf("Submit again: %v", err)
	}
	if again.GetCreated() || again.GetTask().GetId() != task.GetId() {
		t.Errorf("Submit with the same request id: created=%v id=%s; want the existing task %s", again.GetCreated(), again.GetTask().GetId(), task.GetId())
	}

	listed, err := client.List(ctx, &autoglmv1.ListTasksRequest{States: []autoglmv1.TaskState{autoglmv1.TaskState_TASK_STATE_SUCCEEDED}})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.ContainsFunc(listed.GetTasks(), func(t *autoglmv1.Task) bool { return t.GetId() == task.GetId() }) {
		t.Errorf("List(SUCCEEDED) of tenant %s does not hold task %s", tenant, task.GetId())
	}

	explained, err := client.Explain(ctx, task.GetId())
	if err != nil {
		t.Fatalf("Explain: %v", err)
	}
	if explained.GetTaskId() != task.GetId() || explained.GetState() != autoglmv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Errorf("Explain: task %s state %s; want %s SUCCEEDED", explained.GetTaskId(), explained.GetState(), task.GetId())
	}
}

func TestCancelEndsATaskCancelled(t *testing.T) {
	ctx := testContext(t)
	client := dial(t, ctx)
	submitted, err := client.Submit(ctx, &autoglmv1.SubmitTaskRequest{
		Payload: &autoglmv1.SubmitTaskRequest_Batch{Batch: &autoglmv1.BatchPayload{
			ExpectedDuration: durationpb.New(time.Hour), // 72 s at time scale 50: cancelled long before
		}},
	})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	id := submitted.GetTask().GetId()

	if _, err := client.Cancel(ctx, id, "go test"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	events := watchToEnd(t, ctx, client, id)
	if last := events[len(events)-1]; last.GetState() != autoglmv1.TaskState_TASK_STATE_CANCELLED || !strings.Contains(last.GetReason(), "go test") {
		t.Errorf("task ended %s (%q); want CANCELLED with the reason given", last.GetState(), last.GetReason())
	}
}

// inferResult is what one Infer stream sent.
type inferResult struct {
	accepted   *autoglmv1.InferAccepted
	chunks     int
	chunkTexts strings.Builder
	tokens     uint32
	done       *autoglmv1.InferDone
}

// readInfer reads stream to its end, checking the order of its messages;
// afterFirstChunk runs once, when the first chunk arrives.
func readInfer(t *testing.T, stream *autoglm.InferStream, afterFirstChunk func()) *inferResult {
	t.Helper()
	var r inferResult
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Infer: Recv after %d chunks: %v", r.chunks, err)
		}
		switch {
		case msg.GetAccepted() != nil:
			if r.accepted != nil {
				t.Fatal("Infer sent accepted twice")
			}
			r.accepted = msg.GetAccepted()
		case msg.GetChunk() != nil:
			if r.accepted == nil || r.done != nil {
				t.Fatal("Infer sent a chunk before accepted or after done")
			}
			r.chunks++
			r.tokens += msg.GetChunk().GetTokenCount()
			r.chunkTexts.WriteString(msg.GetChunk().GetText())
			if r.chunks == 1 && afterFirstChunk != nil {
				afterFirstChunk()
			}
		case msg.GetDone() != nil:
			if r.accepted == nil || r.done != nil {
				t.Fatal("Infer sent done before accepted, or twice")
			}
			r.done = msg.GetDone()
		default:
			t.Fatalf("Infer sent a message without a kind: %v", msg)
		}
	}
	if r.accepted.GetTaskId() == "" || r.done == nil {
		t.Fatalf("Infer ended without accepted (task id %q) or without done (%v)", r.accepted.GetTaskId(), r.done)
	}
	return &r
}

func TestInferStreamsChunksThenDoneWithUsage(t *testing.T) {
	ctx := testContext(t)
	client := dial(t, ctx)
	const maxTokens = 16
	stream, err := client.Infer(ctx, &autoglmv1.InferStart{
		RequestId: requestID(t),
		Model:     model,
		Input: &autoglmv1.InferencePayload{
			Prompt: "Name three colours.",
			Params: &autoglmv1.GenerationParams{MaxTokens: maxTokens},
		},
	})
	if err != nil {
		t.Fatalf("Infer: %v", err)
	}
	defer stream.Close()
	r := readInfer(t, stream, nil)

	if r.chunks == 0 || r.chunkTexts.Len() == 0 {
		t.Errorf("Infer sent %d chunks with %d bytes of text; want some", r.chunks, r.chunkTexts.Len())
	}
	usage := r.done.GetUsage()
	if usage.GetCompletionTokens() != r.tokens || usage.GetCompletionTokens() == 0 || usage.GetCompletionTokens() > maxTokens {
		t.Errorf("done's usage has %d completion tokens, the chunks carried %d, max_tokens %d", usage.GetCompletionTokens(), r.tokens, maxTokens)
	}
	if usage.GetPromptTokens() == 0 {
		t.Error("done's usage has no prompt tokens")
	}
	if reason := r.done.GetFinishReason(); reason != "stop" && reason != "length" {
		t.Errorf("finish reason %q; want stop or length", reason)
	}
	if r.done.GetNodeId() == "" {
		t.Error("done names no node")
	}
}

// startLongStory starts an inference asking for far more tokens than are
// generated before the test stops it.
func startLongStory(t *testing.T, ctx context.Context, client *autoglm.Client) *autoglm.InferStream {
	t.Helper()
	stream, err := client.Infer(ctx, &autoglmv1.InferStart{
		Model: model,
		Input: &autoglmv1.InferencePayload{
			Prompt: "Tell a long story.",
			Params: &autoglmv1.GenerationParams{MaxTokens: 4096},
		},
	})
	if err != nil {
		t.Fatalf("Infer: %v", err)
	}
	return stream
}

func TestInferCancelledMidStreamLeavesTheTaskCancelled(t *testing.T) {
	ctx := testContext(t)
	client := dial(t, ctx)
	stream := startLongStory(t, ctx, client)
	defer stream.Close()
	r := readInfer(t, stream, func() {
		if err := stream.Cancel("go test: enough"); err != nil {
			t.Errorf("Cancel: %v", err)
		}
	})

	t.Logf("cancelled after %d chunks, %d tokens", r.chunks, r.done.GetUsage().GetCompletionTokens())
	if r.done.GetFinishReason() != "cancelled" {
		t.Errorf("finish reason %q after %d chunks; want cancelled", r.done.GetFinishReason(), r.chunks)
	}
	events := watchToEnd(t, ctx, client, r.accepted.GetTaskId())
	if last := events[len(events)-1]; last.GetState() != autoglmv1.TaskState_TASK_STATE_CANCELLED {
		t.Errorf("task %s ended %s (%s); want CANCELLED", r.accepted.GetTaskId(), last.GetState(), last.GetReason())
	}
}

func TestInferClosedAfterTheFirstChunkLeavesTheTaskCancelled(t *testing.T) {
	ctx := testContext(t)
	client := dial(t, ctx)
	stream := startLongStory(t, ctx, client)
	defer stream.Close()
	var taskID string
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("Infer: Recv before the first chunk: %v", err)
		}
		if id := msg.GetAccepted().GetTaskId(); id != "" {
			taskID = id
		}
		if msg.GetChunk() != nil {
			break // a caller that has read enough
		}
		if msg.GetDone() != nil {
			t.Fatalf("Infer sent done (%s) before any chunk", msg.GetDone().GetFinishReason())
		}
	}
	if taskID == "" {
		t.Fatal("Infer sent a chunk before accepted")
	}

	if err := stream.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := stream.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}

	// The task ends CANCELLED: poll it until the test's deadline.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		task, err := client.Get(ctx, taskID)
		if err != nil {
			t.Fatalf("Get(%s): %v", taskID, err)
		}
		if task.GetState() == autoglmv1.TaskState_TASK_STATE_CANCELLED {
			return
		}
		if isFinal(task.GetState()) {
			t.Fatalf("task %s ended %s (%s); want CANCELLED", taskID, task.GetState(), task.GetReason())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("task %s still %s when the test's deadline passed; want CANCELLED", taskID, task.GetState())
		case <-tick.C:
		}
	}
}

// isFinal reports whether a task in state s has ended.
func isFinal(s autoglmv1.TaskState) bool {
	switch s {
	case autoglmv1.TaskState_TASK_STATE_SUCCEEDED, autoglmv1.TaskState_TASK_STATE_FAILED,
		autoglmv1.TaskState_TASK_STATE_CANCELLED, autoglmv1.TaskState_TASK_STATE_DEAD_LETTER:
		return true
	}
	return false
}

func TestDialWithTheWrongCANamesTheHandshakeError(t *testing.T) {
	requireMesh(t)
	// The system's roots, not the mesh's CA; t.Context() has no deadline, so Timeout bounds the wait.
	_, err := autoglm.Dial(t.Context(), autoglm.Options{Address: mesh.address, Token: mesh.token, Timeout: 2 * time.Second})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "x509") {
		t.Errorf("Dial with the system's roots: %v; want Unavailable naming the certificate error", err)
	}
}

func TestUnknownModelIsInvalidArgument(t *testing.T) {
	ctx := testContext(t)
	client := dial(t, ctx)
	input := &autoglmv1.InferencePayload{Prompt: "hello", Params: &autoglmv1.GenerationParams{MaxTokens: 4}}

	_, err := client.Submit(ctx, &autoglmv1.SubmitTaskRequest{Model: "glm-9", Payload: &autoglmv1.SubmitTaskRequest_Inference{Inference: input}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "glm-9") {
		t.Errorf("Submit with model glm-9: %v; want InvalidArgument naming the model", err)
	}

	stream, err := client.Infer(ctx, &autoglmv1.InferStart{Model: "glm-9", Input: input})
	if err == nil {
		defer stream.Close()
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("Infer with model glm-9: %v; want InvalidArgument", err)
	}
}

func TestMissingTokenIsUnauthenticated(t *testing.T) {
	ctx := testContext(t)
	requireMesh(t)
	client := dialWith(t, ctx, autoglm.Options{Tenant: tenant})

	_, err := client.List(ctx, &autoglmv1.ListTasksRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("List without a token: %v; want Unauthenticated", err)
	}
	_, err = client.Submit(ctx, &autoglmv1.SubmitTaskRequest{Model: model, Payload: &autoglmv1.SubmitTaskRequest_Inference{Inference: &autoglmv1.InferencePayload{Prompt: "hello"}}})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("Submit without a token: %v; want Unauthenticated", err)
	}
}

func TestExample(t *testing.T) {
	requireMesh(t)
	t.Setenv("AUTOGLM_ADDRESS", mesh.address)
	t.Setenv("AUTOGLM_TOKEN", mesh.token)
	t.Setenv("AUTOGLM_CA", mesh.caFile)
	Example() // exits the test binary (log.Fatal) on any error
}

package autoglm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/open-autoglm/autoglm/clients/go/autoglm"
	autoglmv1 "github.com/open-autoglm/autoglm/clients/go/gen/autoglm/v1"
)

// The README's example; TestExample runs it against the mesh.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := autoglm.Dial(ctx, autoglm.Options{
		Address: os.Getenv("AUTOGLM_ADDRESS"), // the public endpoint, host:port
		Token:   os.Getenv("AUTOGLM_TOKEN"),   // a local mesh's: <data dir>/admin-token
		CAFile:  os.Getenv("AUTOGLM_CA"),      // a local mesh's: <data dir>/tls/ca.pem
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// A batch job, watched until it ends.
	submitted, err := client.Submit(ctx, &autoglmv1.SubmitTaskRequest{
		Payload: &autoglmv1.SubmitTaskRequest_Batch{Batch: &autoglmv1.BatchPayload{
			ExpectedDuration: durationpb.New(time.Second),
		}},
	})
	if err != nil {
		log.Fatalf("submit: %s: %v", status.Code(err), err)
	}
	for event, err := range client.Watch(ctx, &autoglmv1.WatchTaskRequest{TaskId: submitted.GetTask().GetId()}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(event.GetState())
	}

	// Interactive inference: text as it is generated.
	stream, err := client.Infer(ctx, &autoglmv1.InferStart{
		Model: "glm-4-9b",
		Input: &autoglmv1.InferencePayload{
			Prompt: "Name three colours.",
			Params: &autoglmv1.GenerationParams{MaxTokens: 32},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close() // stops the task if the loop ends early
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err) // status.Code(err) is codes.InvalidArgument for an unknown model
		}
		fmt.Print(msg.GetChunk().GetText())
		if done := msg.GetDone(); done != nil {
			fmt.Printf("\n%s after %d tokens\n", done.GetFinishReason(), done.GetUsage().GetCompletionTokens())
		}
	}
}

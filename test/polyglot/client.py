"""A Python client of the autoglm.v1 public API, driven by python-client.test.ts.

Usage: client.py <public address> <directory of the generated Python stubs>

Submits an inference task and watches it to SUCCEEDED, runs one interactive
Infer stream, and checks that a bad submission is refused with
INVALID_ARGUMENT. Prints one JSON summary line on stdout and exits 0; on any
failure prints the reason on stderr and exits 1.
"""

import json
import os
import sys
import threading
import uuid

import grpc

# Every call has a deadline, generous for a loaded CI machine; the sim backend
# runs with a small time scale, so a healthy mesh answers in well under a second.
CALL_TIMEOUT_S = 30
STREAM_TIMEOUT_S = 60

TENANT = "py"
MODEL = "glm-4-9b"
MAX_TOKENS = 16


class CheckFailed(Exception):
    """An outcome the client did not expect."""


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def submit_and_watch(task_pb2, stub):
    """(a) SubmitTask, then (b) WatchTask until the task reaches a final state."""
    request = task_pb2.SubmitTaskRequest(
        request_id="py-" + uuid.uuid4().hex,
        tenant=TENANT,
        model=MODEL,
        inference=task_pb2.InferencePayload(
            prompt="Write one sentence about the sea.",
            params=task_pb2.GenerationParams(max_tokens=MAX_TOKENS),
        ),
    )
    response = stub.SubmitTask(request, timeout=CALL_TIMEOUT_S, metadata=auth_metadata())
    task_id = response.task.id
    check(task_id != "", "SubmitTask returned a task without an id")
    check(response.created, "SubmitTask with a fresh request id did not create a task")

    states = []
    last = None
    previous_sequence = 0
    # The server ends the stream after a final state; the deadline guards a stream that never ends.
    for event in stub.WatchTask(task_pb2.WatchTaskRequest(task_id=task_id), timeout=STREAM_TIMEOUT_S, metadata=auth_metadata()):
        check(event.task_id == task_id, "WatchTask sent an event of task %r" % event.task_id)
        check(
            event.sequence == previous_sequence + 1,
            "WatchTask sequence jumped from %d to %d" % (previous_sequence, event.sequence),
        )
        previous_sequence = event.sequence
        states.append(task_pb2.TaskState.Name(event.state))
        last = event
    check(last is not None, "WatchTask ended without any event")
    check(
        last.state == task_pb2.TASK_STATE_SUCCEEDED,
        "task %s ended %s (%s); states seen: %s"
        % (task_id, task_pb2.TaskState.Name(last.state), last.reason, ", ".join(states)),
    )
    output = last.task.result.output
    check(output != "", "the SUCCEEDED event's task has an empty result output")
    return {
        "task_id": task_id,
        "state": states[-1],
        "states": states,
        "output": output,
        "completion_tokens": last.task.result.completion_tokens,
    }


def infer(task_pb2, stub):
    """(c) A bidirectional Infer stream: start in; accepted, chunks, done out."""
    start = task_pb2.InferRequest(
        start=task_pb2.InferStart(
            request_id="py-infer-" + uuid.uuid4().hex,
            tenant=TENANT,
            model=MODEL,
            input=task_pb2.InferencePayload(
                prompt="Name three colours.",
                params=task_pb2.GenerationParams(max_tokens=MAX_TOKENS),
            ),
        )
    )
    # Keep our side of the stream open until done arrives, as a client that
    # may still want to send a cancel would; finished is set on every exit.
    finished = threading.Event()

    def requests():
        yield start
        finished.wait(STREAM_TIMEOUT_S)

    accepted = None
    done = None
    chunks = 0
    chunk_tokens = 0
    text = []
    try:
        for response in stub.Infer(requests(), timeout=STREAM_TIMEOUT_S, metadata=auth_metadata()):
            kind = response.WhichOneof("kind")
            if kind == "accepted":
                check(accepted is None, "Infer sent accepted twice")
                accepted = response.accepted
            elif kind == "chunk":
                check(accepted is not None, "Infer sent a chunk before accepted")
                check(done is None, "Infer sent a chunk after done")
                chunks += 1
                chunk_tokens += response.chunk.token_count
                text.append(response.chunk.text)
            elif kind == "done":
                check(accepted is not None, "Infer sent done before accepted")
                check(done is None, "Infer sent done twice")
                done = response.done
            else:
                raise CheckFailed("Infer sent a message without a kind")
    finally:
        finished.set()

    check(accepted is not None, "Infer ended without accepted")
    check(accepted.task_id != "", "Infer accepted has an empty task id")
    check(done is not None, "Infer ended without done")
    check(chunks > 0, "Infer sent no chunks")
    check(
        done.finish_reason in ("stop", "length"),
        "Infer finished with %r, expected stop or length" % done.finish_reason,
    )
    check(
        done.usage.completion_tokens == chunk_tokens,
        "Infer usage says %d completion tokens, the chunks carried %d"
        % (done.usage.completion_tokens, chunk_tokens),
    )
    check(
        done.usage.completion_tokens <= MAX_TOKENS,
        "Infer generated %d tokens with max_tokens %d" % (done.usage.completion_tokens, MAX_TOKENS),
    )
    return {
        "task_id": accepted.task_id,
        "chunks": chunks,
        "chunk_tokens": chunk_tokens,
        "completion_tokens": done.usage.completion_tokens,
        "prompt_tokens": done.usage.prompt_tokens,
        "finish_reason": done.finish_reason,
        "node_id": done.node_id,
        "text": "".join(text),
    }


def bad_submission(task_pb2, stub):
    """(d) An unknown model is refused with INVALID_ARGUMENT naming the model."""
    request = task_pb2.SubmitTaskRequest(
        tenant=TENANT,
        model="glm-9",
        inference=task_pb2.InferencePayload(
            prompt="hello",
            params=task_pb2.GenerationParams(max_tokens=MAX_TOKENS),
        ),
    )
    try:
        response = stub.SubmitTask(request, timeout=CALL_TIMEOUT_S, metadata=auth_metadata())
    except grpc.RpcError as error:
        code = error.code()
        message = error.details() or ""
        check(
            code == grpc.StatusCode.INVALID_ARGUMENT,
            "unknown model got %s (%s), expected INVALID_ARGUMENT" % (code.name, message),
        )
        check("model" in message, "the INVALID_ARGUMENT message does not name the model: %r" % message)
        return {"code": code.name, "message": message}
    raise CheckFailed("SubmitTask with model glm-9 was accepted as task %s" % response.task.id)


def auth_metadata():
    """The API token from AUTOGLM_TOKEN, as every call to the public API carries it."""
    token = os.environ.get("AUTOGLM_TOKEN", "")
    return (("authorization", "Bearer " + token),) if token else ()


def main(argv):
    if len(argv) != 3:
        print("usage: client.py <public address> <stub directory>", file=sys.stderr)
        return 2
    address, stub_dir = argv[1], argv[2]
    sys.path.insert(0, stub_dir)
    from autoglm.v1 import task_pb2, task_pb2_grpc  # generated at test time

    # A local mesh serves TLS with its own CA (<data dir>/tls/ca.pem): AUTOGLM_CA names it.
    ca_file = os.environ.get("AUTOGLM_CA", "")
    if ca_file:
        with open(ca_file, "rb") as f:
            channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=f.read()))
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_S)
        stub = task_pb2_grpc.TaskServiceStub(channel)
        summary = {
            "grpc_version": grpc.__version__,
            "submit": submit_and_watch(task_pb2, stub),
            "infer": infer(task_pb2, stub),
            "error": bad_submission(task_pb2, stub),
        }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except CheckFailed as failure:
        print("client.py: check failed: %s" % failure, file=sys.stderr)
        sys.exit(1)
    except grpc.RpcError as error:
        print("client.py: RPC failed: %s: %s" % (error.code().name, error.details()), file=sys.stderr)
        sys.exit(1)

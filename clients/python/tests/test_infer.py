"""The bidi Infer stream with the sync client: chunks, usage, and cancelling mid-stream."""

from __future__ import annotations

import weakref
from typing import Any

from conftest import MODEL

from autoglm import Client, InferStream, TaskState
from autoglm.v1 import task_pb2

# Long enough that a cancel after the first chunk lands well before the end.
LONG = 2000
# Far longer than the server takes to answer a cancel with its done: the tests
# that read the done must not race the cut that ends a stream without one.
PATIENT_GRACE = 60.0


def final_state(client: Client, task_id: str) -> int:
    events = list(client.watch(task_id, timeout=60))
    return events[-1].state


def test_infer_streams_chunks_then_usage(client: Client) -> None:
    stream = client.infer(model=MODEL, prompt="Name three colours.", max_tokens=16)
    chunks = list(stream)

    assert chunks, "no chunks"
    assert "".join(chunks) == stream.text
    assert stream.task_id
    assert stream.result is not None
    assert stream.result.finish_reason in ("stop", "length")
    assert stream.usage is not None
    assert 0 < stream.usage.completion_tokens <= 16
    assert stream.usage.prompt_tokens > 0
    assert final_state(client, stream.task_id) == TaskState.TASK_STATE_SUCCEEDED


def test_leaving_the_loop_cancels_the_task(client: Client) -> None:
    stream = client.infer(model=MODEL, prompt="Tell me a very long story.", max_tokens=LONG, cancel_grace=PATIENT_GRACE)
    for _ in stream:
        break

    assert stream.task_id
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
    assert final_state(client, stream.task_id) == TaskState.TASK_STATE_CANCELLED


def test_cancel_mid_stream_ends_the_stream_cancelled(client: Client) -> None:
    with client.infer(model=MODEL, prompt="Tell me another long story.", max_tokens=LONG, cancel_grace=PATIENT_GRACE) as stream:
        received = 0
        for _ in stream:
            received += 1
            if received == 1:
                stream.cancel("enough")

    assert stream.task_id
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
    assert stream.usage is not None and stream.usage.completion_tokens < LONG
    task = client.get(stream.task_id)
    assert final_state(client, stream.task_id) == TaskState.TASK_STATE_CANCELLED
    assert task.id == stream.task_id


def test_a_cut_without_grace_ends_quietly(client: Client) -> None:
    stream = client.infer(model=MODEL, prompt="Tell me a long story.", max_tokens=LONG, cancel_grace=0)
    for _ in stream:
        break

    assert stream.task_id
    assert stream.result is None or stream.result.finish_reason == "cancelled"
    assert final_state(client, stream.task_id) == TaskState.TASK_STATE_CANCELLED


class _Calls:
    """Stands in for the Infer method: records each call, which keeps its request iterator as grpc's request thread does and ends at once."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __call__(self, requests: Any, **_: Any) -> Any:
        self.requests.append(requests)
        return iter(())


def test_a_stream_never_read_makes_no_call_and_is_collected() -> None:
    infer = _Calls()
    stream = InferStream(infer, task_pb2.InferRequest(), (), None, 1.0)
    collected = weakref.ref(stream)

    del stream

    assert infer.requests == []
    assert collected() is None


def test_the_call_starts_on_enter_and_does_not_keep_the_stream_alive() -> None:
    infer = _Calls()
    stream = InferStream(infer, task_pb2.InferRequest(), (), None, 1.0)
    stream.__enter__()
    collected = weakref.ref(stream)

    del stream

    assert len(infer.requests) == 1
    assert collected() is None, "the request iterator grpc holds keeps the stream alive"

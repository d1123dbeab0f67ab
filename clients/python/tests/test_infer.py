"""The bidi Infer stream with the sync client: chunks, usage, and cancelling mid-stream."""

from __future__ import annotations

from conftest import MODEL

from autoglm import Client, TaskState

# Long enough that a cancel after the first chunk lands well before the end.
LONG = 2000


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
    stream = client.infer(model=MODEL, prompt="Tell me a very long story.", max_tokens=LONG)
    for _ in stream:
        break

    assert stream.task_id
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
    assert final_state(client, stream.task_id) == TaskState.TASK_STATE_CANCELLED


def test_cancel_mid_stream_ends_the_stream_cancelled(client: Client) -> None:
    with client.infer(model=MODEL, prompt="Tell me another long story.", max_tokens=LONG) as stream:
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

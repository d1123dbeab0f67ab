"""The asyncio client: Infer and WatchTask."""

from __future__ import annotations

import asyncio
import weakref

import pytest
from conftest import MODEL

from autoglm import AsyncClient, AsyncInferStream, InvalidArgumentError, TaskState
from autoglm.v1 import task_pb2

# Far longer than the server takes to answer a cancel with its done: the tests
# that read the done must not race the cut that ends a stream without one.
PATIENT_GRACE = 60.0


async def final_state(client: AsyncClient, task_id: str) -> int:
    states = [event.state async for event in client.watch(task_id, timeout=60)]
    return states[-1]


@pytest.mark.asyncio
async def test_async_infer_streams_chunks_then_usage(async_client: AsyncClient) -> None:
    stream = async_client.infer(model=MODEL, prompt="Name three rivers.", max_tokens=16)
    chunks = [chunk async for chunk in stream]

    assert chunks, "no chunks"
    assert "".join(chunks) == stream.text
    assert stream.task_id
    assert stream.result is not None and stream.result.finish_reason in ("stop", "length")
    assert stream.usage is not None and 0 < stream.usage.completion_tokens <= 16
    assert await final_state(async_client, stream.task_id) == TaskState.TASK_STATE_SUCCEEDED


@pytest.mark.asyncio
async def test_async_submit_then_watch_ends_succeeded(async_client: AsyncClient) -> None:
    task_id = (await async_client.submit(model=MODEL, prompt="Hello from asyncio.", max_tokens=8)).task.id

    events = [event async for event in async_client.watch(task_id, timeout=60)]

    assert events[-1].final
    assert events[-1].state == TaskState.TASK_STATE_SUCCEEDED
    assert (await async_client.get(task_id)).result.output != ""


@pytest.mark.asyncio
async def test_async_leaving_the_block_cancels_the_task(async_client: AsyncClient) -> None:
    async with async_client.infer(model=MODEL, prompt="A long story, please.", max_tokens=2000, cancel_grace=PATIENT_GRACE) as stream:
        async for _ in stream:
            break

    assert stream.task_id
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
    assert await final_state(async_client, stream.task_id) == TaskState.TASK_STATE_CANCELLED


@pytest.mark.asyncio
async def test_async_unknown_model_is_invalid_argument(async_client: AsyncClient) -> None:
    with pytest.raises(InvalidArgumentError, match="glm-9"):
        await async_client.submit(model="glm-9", prompt="hello")



@pytest.mark.asyncio
async def test_async_a_cut_without_grace_ends_quietly(async_client: AsyncClient) -> None:
    # No grace: the call is cut at once, and grpc.aio reports a cut of ours as asyncio.CancelledError.
    async with async_client.infer(model=MODEL, prompt="A long story, please.", max_tokens=2000, cancel_grace=0) as stream:
        async for _ in stream:
            break

    assert stream.task_id
    assert stream.result is None or stream.result.finish_reason == "cancelled"
    assert await final_state(async_client, stream.task_id) == TaskState.TASK_STATE_CANCELLED


@pytest.mark.asyncio
async def test_async_a_cut_does_not_replace_the_callers_exception(async_client: AsyncClient) -> None:
    with pytest.raises(LookupError, match="mine"):
        async with async_client.infer(model=MODEL, prompt="A long story, please.", max_tokens=2000, cancel_grace=0) as stream:
            async for _ in stream:
                raise LookupError("mine")


@pytest.mark.asyncio
async def test_async_a_stream_never_read_makes_no_call_and_is_collected() -> None:
    calls: list[object] = []
    stream = AsyncInferStream(lambda *args, **kwargs: calls.append(args), task_pb2.InferRequest(), (), None, 1.0)
    collected = weakref.ref(stream)

    del stream

    assert calls == []
    assert collected() is None


@pytest.mark.asyncio
async def test_async_cancelling_the_callers_task_still_cancels_it(async_client: AsyncClient) -> None:
    first_chunk = asyncio.Event()

    async def read() -> None:
        async with async_client.infer(model=MODEL, prompt="A long story, please.", max_tokens=2000, cancel_grace=0) as stream:
            async for _ in stream:
                first_chunk.set()

    reader = asyncio.create_task(read())
    await first_chunk.wait()
    reader.cancel()

    with pytest.raises(asyncio.CancelledError):
        await reader

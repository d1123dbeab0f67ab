"""The asyncio client: Infer and WatchTask."""

from __future__ import annotations

import pytest
from conftest import MODEL

from autoglm import AsyncClient, InvalidArgumentError, TaskState


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
    async with async_client.infer(model=MODEL, prompt="A long story, please.", max_tokens=2000) as stream:
        async for _ in stream:
            break

    assert stream.task_id
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
    assert await final_state(async_client, stream.task_id) == TaskState.TASK_STATE_CANCELLED


@pytest.mark.asyncio
async def test_async_unknown_model_is_invalid_argument(async_client: AsyncClient) -> None:
    with pytest.raises(InvalidArgumentError, match="glm-9"):
        await async_client.submit(model="glm-9", prompt="hello")

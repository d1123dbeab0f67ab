"""OpenAI's own Python package (PyPI `openai`) against the parser's OpenAI-compatible API."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Iterator

import openai
import pytest
import pytest_asyncio
from conftest import MODEL, TENANT, Mesh

from autoglm import Client, TaskState

TASK_ID_HEADER = "x-autoglm-task-id"
# The admin token acts for a tenant it names; the SDK's `client` fixture names the same one, so it sees these tasks.
TENANT_HEADER = "x-autoglm-tenant"
CANCEL_TIMEOUT_S = 30


def _openai(mesh: Mesh, *, api_key: str | None = None, max_retries: int = 2) -> openai.OpenAI:
    # verify=<path> is deprecated by the HTTP client under openai; a context trusting the mesh's CA is the lasting form.
    tls = ssl.create_default_context(cafile=mesh.ca_file)
    return openai.OpenAI(
        base_url=mesh.openai_url,
        api_key=mesh.admin_token if api_key is None else api_key,
        default_headers={TENANT_HEADER: TENANT},
        max_retries=max_retries,
        http_client=openai.DefaultHttpxClient(verify=tls),
    )


@pytest.fixture(scope="module")
def oai(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with _openai(mesh) as client:
        yield client


@pytest.fixture(scope="module")
def oai_no_retries(mesh: Mesh) -> Iterator[openai.OpenAI]:
    # Errors must come back as they are, not after the package's own retries.
    with _openai(mesh, max_retries=0) as client:
        yield client


@pytest_asyncio.fixture
async def async_oai(mesh: Mesh) -> AsyncIterator[openai.AsyncOpenAI]:
    tls = ssl.create_default_context(cafile=mesh.ca_file)
    async with openai.AsyncOpenAI(
        base_url=mesh.openai_url,
        api_key=mesh.admin_token,
        default_headers={TENANT_HEADER: TENANT},
        http_client=openai.DefaultAsyncHttpxClient(verify=tls),
    ) as client:
        yield client


def wait_for_state(client: Client, task_id: str, state: int, timeout_s: float) -> int:
    """Polls the task until it is in `state` or the deadline passes; returns the last state seen."""
    deadline = time.monotonic() + timeout_s
    seen = client.get(task_id).state
    while seen != state and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = client.get(task_id).state
    return seen


def test_models_list_has_the_catalog_model(oai: openai.OpenAI) -> None:
    models = oai.models.list()

    ids = [model.id for model in models.data]
    assert MODEL in ids
    assert all(model.object == "model" for model in models.data)


def test_streamed_chat_completion_yields_text_then_a_usage_chunk(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name three rivers."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        task_id = stream.response.headers.get(TASK_ID_HEADER)
        chunks = list(stream)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    last = chunks[-1]
    assert task_id
    assert text != ""
    assert finishes in (["stop"], ["length"])
    assert all(chunk.id == chunks[0].id and chunk.model == MODEL for chunk in chunks)
    # include_usage: one last chunk with no choices and the token counts; none before it has usage.
    assert last.choices == []
    assert last.usage is not None and 0 < last.usage.completion_tokens <= 16
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_streamed_chat_completion_without_include_usage_has_no_usage_chunk(oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8, stream=True) as stream:
        chunks = list(stream)

    assert chunks
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_completion_returns_text_usage_and_the_task_id(oai: openai.OpenAI, client: Client) -> None:
    raw = oai.completions.with_raw_response.create(model=MODEL, prompt="Write one sentence about the sea.", max_tokens=16)
    completion = raw.parse()
    task_id = raw.headers.get(TASK_ID_HEADER)

    assert completion.object == "text_completion"
    assert completion.model == MODEL
    assert len(completion.choices) == 1
    assert completion.choices[0].text != ""
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 16
    assert task_id
    task = client.get(task_id)
    assert task.state == TaskState.TASK_STATE_SUCCEEDED
    assert task.result.output == completion.choices[0].text


def test_unknown_model_is_not_found_model_not_found(oai_no_retries: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        oai_no_retries.chat.completions.create(model="glm-9", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)

    assert raised.value.status_code == 404
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"
    assert "glm-9" in raised.value.message


def test_missing_token_is_an_authentication_error(oai_no_retries: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        # openai.Omit drops the Authorization header the client would send.
        oai_no_retries.completions.create(model=MODEL, prompt="Hi", max_tokens=4, extra_headers={"Authorization": openai.Omit()})

    assert raised.value.status_code == 401
    assert raised.value.request.headers.get("authorization") is None


def test_invalid_token_is_an_authentication_error(mesh: Mesh) -> None:
    with _openai(mesh, api_key="not-a-token", max_retries=0) as stranger, pytest.raises(openai.AuthenticationError) as raised:
        stranger.models.list()

    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"


def test_closing_the_stream_mid_way_cancels_the_task(oai: openai.OpenAI, client: Client) -> None:
    with oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "A long story, please."}],
        max_tokens=2000,
        stream=True,
    ) as stream:
        task_id = stream.response.headers.get(TASK_ID_HEADER)
        texts = 0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                texts += 1
            if texts == 2:
                break
    # Leaving the block closed the connection with the generation far from done.

    assert task_id
    assert texts == 2
    assert wait_for_state(client, task_id, TaskState.TASK_STATE_CANCELLED, CANCEL_TIMEOUT_S) == TaskState.TASK_STATE_CANCELLED


@pytest.mark.asyncio
async def test_async_streamed_chat_completion_with_usage(async_oai: openai.AsyncOpenAI) -> None:
    stream = await async_oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello from asyncio."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    async with stream:
        task_id = stream.response.headers.get(TASK_ID_HEADER)
        chunks = [chunk async for chunk in stream]

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert task_id
    assert text != ""
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 16

"""Failures arrive as typed errors carrying the server's message."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from conftest import MODEL, Mesh

from autoglm import (
    AsyncClient,
    AutoglmError,
    Client,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    RetryPolicy,
    UnauthenticatedError,
    UnavailableError,
)
from autoglm.errors import from_rpc_error, is_retryable
from autoglm.retry import backoff_delay, retry_delay
from autoglm.v1 import task_pb2, task_pb2_grpc


def test_unknown_model_is_invalid_argument_naming_the_field(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.submit(model="glm-9", prompt="hello", max_tokens=4)

    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "model" in caught.value.message
    assert "glm-9" in str(caught.value)


def test_a_call_without_a_token_is_unauthenticated(mesh: Mesh) -> None:
    with Client(mesh.address, token="", ca=mesh.ca_file, tenant="py") as anonymous:
        with pytest.raises(UnauthenticatedError):
            anonymous.list()


def test_another_tenants_task_is_not_found(client: Client, mesh: Mesh) -> None:
    task_id = client.submit(model=MODEL, prompt="Mine.", max_tokens=4).task.id
    secret = client.create_token(tenant="py-other", role="submitter", name="pytest").secret

    with Client(mesh.address, token=secret, ca=mesh.ca_file) as other:
        assert other.whoami().tenant == "py-other"
        with pytest.raises(NotFoundError) as caught:
            other.get(task_id)

    assert isinstance(caught.value, AutoglmError)


class _Refusing(task_pb2_grpc.TaskServiceServicer):
    """A TaskService that answers every SubmitTask with one failure, noting each attempt's request id and time left."""

    def __init__(self, code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        self.code = code
        self.trailers = trailers
        self.attempts: list[tuple[str, float]] = []

    def SubmitTask(self, request: task_pb2.SubmitTaskRequest, context: grpc.ServicerContext) -> task_pb2.SubmitTaskResponse:
        self.attempts.append((request.request_id, context.time_remaining() or 0.0))
        context.set_trailing_metadata(self.trailers)
        context.abort(self.code, "try again later")


@contextmanager
def refusing(code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...] = ()) -> Iterator[tuple[str, _Refusing]]:
    """An in-process server on loopback answering SubmitTask with ``code``: its address and its servicer."""
    servicer = _Refusing(code, trailers)
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    task_pb2_grpc.add_TaskServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_submit_retries_unavailable_then_gives_up() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    with refusing(grpc.StatusCode.UNAVAILABLE) as (address, server), Client(address, token="", retry=policy) as client:
        with pytest.raises(UnavailableError):
            client.submit(model=MODEL, prompt="anyone there?")

    assert len(server.attempts) == 3
    assert len({request_id for request_id, _ in server.attempts}) == 1, "every attempt carries the one request id"


@pytest.mark.asyncio
async def test_async_submit_retries_unavailable_then_gives_up() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    with refusing(grpc.StatusCode.UNAVAILABLE) as (address, server):
        async with AsyncClient(address, token="", retry=policy) as client:
            with pytest.raises(UnavailableError):
                await client.submit(model=MODEL, prompt="anyone there?")

    assert len(server.attempts) == 3


def test_submit_gives_each_attempt_what_is_left_of_one_timeout() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=1.0)
    with refusing(grpc.StatusCode.UNAVAILABLE) as (address, server), Client(address, token="", retry=policy) as client:
        with pytest.raises(UnavailableError):
            # Under a second: grpc sends it to the millisecond (longer ones it rounds coarser).
            client.submit(model=MODEL, prompt="anyone there?", timeout=0.9)

    left = [remaining for _, remaining in server.attempts]
    assert len(left) == 3
    # The waits between attempts are at least 80 % of 0.1 s and of 0.2 s (the jitter's floor).
    assert left[1] <= left[0] - 0.08
    assert left[2] <= left[1] - 0.16


def test_a_retry_after_past_the_timeout_is_not_waited_for() -> None:
    minute = (("retry-after-ms", "60000"),)
    with refusing(grpc.StatusCode.RESOURCE_EXHAUSTED, minute) as (address, server), Client(address, token="") as client:
        with pytest.raises(ResourceExhaustedError) as caught:
            client.submit(model=MODEL, prompt="anyone there?", timeout=5)

    assert caught.value.retry_after == 60
    assert len(server.attempts) == 1


def _no_jitter() -> float:
    return 0.5


def test_retry_delay_stops_at_the_attempts_the_budget_or_a_final_error() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.1)
    unavailable = UnavailableError("down")

    assert retry_delay(1, policy, unavailable, remaining=10, random=_no_jitter) == pytest.approx(0.1)
    assert retry_delay(3, policy, unavailable, remaining=10, random=_no_jitter) is None
    assert retry_delay(1, policy, unavailable, remaining=0.05, random=_no_jitter) is None
    assert retry_delay(1, policy, InternalError("bug"), remaining=10, random=_no_jitter) is None
    limited = ResourceExhaustedError("slow down", trailers=(("retry-after-ms", "3000"),))
    assert retry_delay(1, policy, limited, remaining=10, random=_no_jitter) == 3.0
    assert retry_delay(1, policy, limited, remaining=2, random=_no_jitter) is None


class _Refused(grpc.RpcError):
    """A failed call as grpc raises it, without a server: status, message and trailers."""

    def __init__(self, code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        self._code = code
        self._trailers = trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "tenant py is over its submission rate"

    def trailing_metadata(self) -> Any:  # Any: the stubs' _Metadatum is private; grpc gives (key, value) pairs
        return self._trailers


def test_resource_exhausted_carries_the_retry_after_and_is_retried_only_with_one() -> None:
    limited = from_rpc_error(_Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, (("retry-after-ms", "1500"),)))
    quota = from_rpc_error(_Refused(grpc.StatusCode.RESOURCE_EXHAUSTED))
    internal = from_rpc_error(_Refused(grpc.StatusCode.INTERNAL))

    assert isinstance(limited, ResourceExhaustedError)
    assert limited.retry_after == 1.5
    assert limited.message == "tenant py is over its submission rate"
    assert is_retryable(limited)
    assert quota.retry_after is None and not is_retryable(quota)
    assert isinstance(internal, InternalError) and not is_retryable(internal)
    # The server's retry-after is a floor under the exponential backoff.
    assert backoff_delay(1, RetryPolicy(), limited.retry_after, random=lambda: 0.5) == 1.5
    assert backoff_delay(3, RetryPolicy(initial_backoff=0.1), None, random=lambda: 0.5) == pytest.approx(0.4)

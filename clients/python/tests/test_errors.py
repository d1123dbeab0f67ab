"""Failures arrive as typed errors carrying the server's message."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from conftest import MODEL, Mesh

from autoglm import (
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
from autoglm.retry import backoff_delay


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


def test_submit_retries_unavailable_then_gives_up() -> None:
    # Port 1 on loopback: nothing listens, every attempt is UNAVAILABLE.
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    with Client("127.0.0.1:1", token="", ca=b"", retry=policy, timeout=5) as unreachable:
        with pytest.raises(UnavailableError):
            unreachable.submit(model=MODEL, prompt="anyone there?")


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

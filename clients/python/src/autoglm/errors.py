"""The errors the SDK raises: one class per gRPC status, all under AutoglmError."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, cast

import grpc

#: The trailer a server sets on RESOURCE_EXHAUSTED to say when trying again makes sense.
RETRY_AFTER_TRAILER = "retry-after-ms"


class AutoglmError(Exception):
    """A call failed. ``code`` is the gRPC status, ``message`` the server's own words.

    ``str(error)`` is the message; the class says which status it was.
    """

    #: The status this class stands for; the base class is raised for codes without a class of their own.
    status: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        trailers: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.status
        self.trailers = trailers
        self.retry_after = _retry_after(trailers)
        """Seconds to wait before trying again, from the ``retry-after-ms`` trailer; None when the server sent none."""


class CancelledError(AutoglmError):
    status = grpc.StatusCode.CANCELLED


class UnknownError(AutoglmError):
    status = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(AutoglmError):
    """The request is malformed; the message names the field."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(AutoglmError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(AutoglmError):
    """No such task, or it belongs to another tenant (answered alike, so ids do not leak)."""

    status = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(AutoglmError):
    status = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(AutoglmError):
    """The token's role does not allow the call."""

    status = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(AutoglmError):
    """A rate limit or quota. ``retry_after`` says when to try again, when the server knows."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(AutoglmError):
    status = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(AutoglmError):
    status = grpc.StatusCode.ABORTED


class UnimplementedError(AutoglmError):
    status = grpc.StatusCode.UNIMPLEMENTED


class InternalError(AutoglmError):
    status = grpc.StatusCode.INTERNAL


class UnavailableError(AutoglmError):
    """The endpoint cannot be reached or is shutting down; idempotent calls may be retried."""

    status = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(AutoglmError):
    """No token, or one the mesh does not know."""

    status = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[AutoglmError]] = {
    cls.status: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        UnauthenticatedError,
    )
}


class _Status(Protocol):
    """What both grpc.Call errors (sync) and grpc.aio.AioRpcError carry."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> Iterable[tuple[str, str | bytes]] | None: ...


def from_rpc_error(error: grpc.RpcError) -> AutoglmError:
    """The AutoglmError subclass for a failed call's status."""
    if not (hasattr(error, "code") and hasattr(error, "details")):
        return UnknownError(str(error) or type(error).__name__)
    status = cast(_Status, error)
    code = status.code()
    trailers = tuple((key, value) for key, value in (status.trailing_metadata() or ()))
    cls = _BY_CODE.get(code, AutoglmError)
    return cls(status.details() or code.name, code=code, trailers=trailers)


def is_retryable(error: AutoglmError) -> bool:
    """Whether sending the same idempotent request again may succeed.

    UNAVAILABLE: the request did not reach a server able to handle it; a
    submission carries a request id, so resending one that did arrive returns
    the same task. RESOURCE_EXHAUSTED only with a retry-after: without one the
    limit may be a quota, and retrying would only add load. INTERNAL and
    UNKNOWN are absent on purpose: the server failed on this very request and
    is likely to again. DEADLINE_EXCEEDED: the caller's time budget is spent.
    """
    if isinstance(error, UnavailableError):
        return True
    return isinstance(error, ResourceExhaustedError) and error.retry_after is not None


def _retry_after(trailers: Iterable[tuple[str, str | bytes]]) -> float | None:
    for key, value in trailers:
        if key != RETRY_AFTER_TRAILER:
            continue
        text = value.decode() if isinstance(value, bytes) else value
        try:
            ms = float(text)
        except ValueError:
            return None
        return ms / 1000 if ms >= 0 else None
    return None

"""Python client of the Open-AutoGLM public API (autoglm.v1).

``Client`` (sync) and ``AsyncClient`` (asyncio) submit, watch, cancel and
explain tasks and stream interactive inference; failures raise subclasses of
``AutoglmError``. The request and response messages are the generated ones in
``autoglm.v1``; the ones the clients return are re-exported here.
"""

from ._version import __version__
from .aio import AsyncClient, AsyncInferStream
from .client import Client, InferStream
from .errors import (
    AbortedError,
    AlreadyExistsError,
    AutoglmError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)
from .retry import RetryPolicy
from .v1.auth_pb2 import Role
from .v1.task_pb2 import (
    InferDone,
    ListTasksResponse,
    PriorityClass,
    PriorityExplanation,
    SubmitTaskResponse,
    Task,
    TaskEvent,
    TaskState,
    Usage,
)

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "AsyncClient",
    "AsyncInferStream",
    "AutoglmError",
    "CancelledError",
    "Client",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InferDone",
    "InferStream",
    "InternalError",
    "InvalidArgumentError",
    "ListTasksResponse",
    "NotFoundError",
    "PermissionDeniedError",
    "PriorityClass",
    "PriorityExplanation",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Role",
    "SubmitTaskResponse",
    "Task",
    "TaskEvent",
    "TaskState",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "Usage",
    "__version__",
]

"""The synchronous client."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

import grpc

from . import _requests as build
from ._config import ChannelOptions, Connection, resolve_connection
from ._infer import DEFAULT_CANCEL_GRACE, DEFAULT_CANCEL_REASON, InferProgress, cancel_request
from ._requests import DeadlineLike, MessageLike, PriorityClassLike, RoleName
from .errors import AutoglmError, from_rpc_error
from .retry import Budget, RetryPolicy, retry_delay
from .v1 import auth_pb2, auth_pb2_grpc, task_pb2, task_pb2_grpc

R = TypeVar("R")


class Client:
    """Client of the autoglm.v1 public API over one channel.

    Every argument left None comes from the environment: ``AUTOGLM_ADDRESS``
    (default ``127.0.0.1:50051``), ``AUTOGLM_TOKEN``, ``AUTOGLM_CA`` (a PEM
    file: the channel uses TLS checked against it; unset: plaintext) and
    ``AUTOGLM_TENANT``. A token is only sent in plaintext to this machine
    (localhost, 127.0.0.1, ::1); ``insecure=True`` allows it to other hosts.
    Unary calls have a deadline of ``timeout`` seconds (default 30), which
    covers submit's retries too; streams end when the server ends them or the
    caller cancels. Failures raise AutoglmError subclasses (NotFoundError, ...).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        ca: str | os.PathLike[str] | bytes | None = None,
        tenant: str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy = RetryPolicy(),
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: ChannelOptions = (),
        insecure: bool = False,
    ) -> None:
        self._connection: Connection = resolve_connection(address, token, ca, tenant, timeout, credentials, channel_options, insecure)
        self._retry = retry
        conn = self._connection
        if conn.credentials is not None:
            self._channel = grpc.secure_channel(conn.address, conn.credentials, options=conn.options)
        else:
            self._channel = grpc.insecure_channel(conn.address, options=conn.options)
        self._tasks = task_pb2_grpc.TaskServiceStub(self._channel)
        self._auth = auth_pb2_grpc.AuthServiceStub(self._channel)

    @property
    def address(self) -> str:
        return self._connection.address

    @property
    def tenant(self) -> str | None:
        return self._connection.tenant

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(
        self,
        *,
        model: str = "",
        prompt: str | None = None,
        messages: Sequence[MessageLike] | None = None,
        max_tokens: int = 0,
        temperature: float = 0.0,
        top_p: float = 0.0,
        stop: Sequence[str] = (),
        command: Sequence[str] | None = None,
        expected_duration: timedelta | None = None,
        time_limit: timedelta | None = None,
        env: Mapping[str, str] | None = None,
        gpu_count: int | None = None,
        priority_class: PriorityClassLike | None = None,
        priority: int = 0,
        deadline: DeadlineLike | None = None,
        depends_on: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        preemptible: bool = False,
        max_retries: int | None = None,
        tenant: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> task_pb2.SubmitTaskResponse:
        """Submits a task; returns once it is durable (``.task``, and ``.created``: False for a repeated request id).

        An inference names ``model`` and exactly one of ``prompt`` and ``messages``;
        a batch job names ``command`` and/or ``expected_duration`` instead.
        UNAVAILABLE, and RESOURCE_EXHAUSTED with a retry-after, are retried with
        backoff under one request id (generated when none is given), so a retry
        of a submission that did arrive returns the same task. ``timeout``
        bounds every attempt and wait together, not each attempt.
        """
        request = build.submit_request(
            model=model,
            prompt=prompt,
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            command=command,
            expected_duration=expected_duration,
            time_limit=time_limit,
            env=env,
            gpu_count=gpu_count,
            priority_class=priority_class,
            priority=priority,
            deadline=deadline,
            depends_on=depends_on,
            labels=labels,
            preemptible=preemptible,
            max_retries=max_retries,
            tenant=tenant if tenant is not None else self.tenant,
            request_id=request_id,
        )
        response: task_pb2.SubmitTaskResponse = self._retrying(lambda remaining: self._unary(self._tasks.SubmitTask, request, remaining), timeout)
        return response

    def get(self, task_id: str, *, timeout: float | None = None) -> task_pb2.Task:
        """A task with its result."""
        task: task_pb2.Task = self._unary(self._tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id), timeout)
        return task

    def cancel(self, task_id: str, reason: str = "", *, timeout: float | None = None) -> task_pb2.Task:
        """Cancels a task that has not finished; a finished task comes back unchanged."""
        request = task_pb2.CancelTaskRequest(task_id=task_id, reason=reason)
        task: task_pb2.Task = self._unary(self._tasks.CancelTask, request, timeout)
        return task

    def explain(self, task_id: str, *, timeout: float | None = None) -> task_pb2.PriorityExplanation:
        """Why a task has the priority and queue position it has."""
        request = task_pb2.ExplainTaskRequest(task_id=task_id)
        explanation: task_pb2.PriorityExplanation = self._unary(self._tasks.ExplainTask, request, timeout)
        return explanation

    def watch(self, task_id: str, *, after_sequence: int = 0, timeout: float | None = None) -> Iterator[task_pb2.TaskEvent]:
        """A task's transitions after ``after_sequence`` (0: its whole history), ending after the final one.

        The call starts when iteration starts; leaving the loop early cancels it.
        """
        request = task_pb2.WatchTaskRequest(task_id=task_id, after_sequence=after_sequence)
        call = self._tasks.WatchTask(request, timeout=timeout, metadata=self._connection.metadata())
        ended = False
        try:
            yield from call
            ended = True
        except grpc.RpcError as error:
            ended = True
            raise from_rpc_error(error) from error
        finally:
            if not ended:
                call.cancel()

    def infer(
        self,
        *,
        model: str,
        prompt: str | None = None,
        messages: Sequence[MessageLike] | None = None,
        max_tokens: int = 0,
        temperature: float = 0.0,
        top_p: float = 0.0,
        stop: Sequence[str] = (),
        priority_class: PriorityClassLike | None = None,
        priority: int = 0,
        deadline: DeadlineLike | None = None,
        labels: Mapping[str, str] | None = None,
        tenant: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
        cancel_grace: float = DEFAULT_CANCEL_GRACE,
    ) -> InferStream:
        """Interactive inference: iterate the returned stream for text chunks.

        The call starts when iteration (or the ``with`` block) starts, so a
        stream never read starts no task. After the loop, ``stream.result`` has the finish
        reason and usage and ``stream.task_id`` the task. ``stream.cancel()``, or
        leaving the loop (or the ``with`` block) before the end, cancels the task.
        """
        start = build.infer_start(
            model=model,
            prompt=prompt,
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            priority_class=priority_class,
            priority=priority,
            deadline=deadline,
            labels=labels,
            tenant=tenant if tenant is not None else self.tenant,
            request_id=request_id,
        )
        return InferStream(self._tasks.Infer, start, self._connection.metadata(), timeout, cancel_grace)

    def create_token(
        self,
        *,
        tenant: str,
        role: RoleName | auth_pb2.Role = "submitter",
        name: str = "",
        ttl: timedelta | None = None,
        timeout: float | None = None,
    ) -> auth_pb2.CreateTokenResponse:
        """A new API token (admin only); its ``secret`` is in the answer and nowhere else."""
        request = auth_pb2.CreateTokenRequest(tenant=tenant, role=build.role(role), name=name)
        if ttl is not None:
            request.ttl.CopyFrom(build.duration(ttl))
        response: auth_pb2.CreateTokenResponse = self._unary(self._auth.CreateToken, request, timeout)
        return response

    def whoami(self, *, timeout: float | None = None) -> auth_pb2.WhoAmIResponse:
        """The tenant and role this client's token stands for."""
        response: auth_pb2.WhoAmIResponse = self._unary(self._auth.WhoAmI, auth_pb2.WhoAmIRequest(), timeout)
        return response

    # Named like the RPC; defined last so that `list` in the annotations above is the builtin.
    def list(
        self,
        *,
        tenant: str | None = None,
        states: Sequence[task_pb2.TaskState] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> task_pb2.ListTasksResponse:
        """One page of tasks, newest first (``.tasks``, ``.next_page_token``); the tenant defaults to the client's."""
        request = task_pb2.ListTasksRequest(
            tenant=tenant if tenant is not None else self.tenant or "",
            states=states,
            page_size=page_size,
            page_token=page_token,
        )
        response: task_pb2.ListTasksResponse = self._unary(self._tasks.ListTasks, request, timeout)
        return response

    def _unary(self, method: Any, request: Any, timeout: float | None) -> Any:  # Any: the generated stubs are untyped
        try:
            return method(request, timeout=timeout if timeout is not None else self._connection.timeout, metadata=self._connection.metadata())
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error

    def _retrying(self, call: Callable[[float], R], timeout: float | None) -> R:
        """Calls ``call(seconds left)`` until it succeeds, fails for good, or the one budget of ``timeout`` is spent."""
        budget = Budget(timeout if timeout is not None else self._connection.timeout)
        failures = 0
        while True:
            try:
                return call(budget.remaining())
            except AutoglmError as error:
                failures += 1
                delay = retry_delay(failures, self._retry, error, budget.remaining())
                if delay is None:
                    raise
                time.sleep(delay)


class InferStream(InferProgress):
    """One Infer call: iterate it for text chunks; ``result``, ``usage`` and ``task_id`` say the rest.

    Iterate it once. The call starts on the first iteration or on ``with``, so
    a stream dropped unread costs nothing. Leaving the loop early, ``cancel()``,
    or leaving a ``with`` block before the end sends a cancel: the task ends
    CANCELLED.
    """

    def __init__(
        self,
        method: Any,  # Any: the generated stubs are untyped
        start: task_pb2.InferRequest,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        cancel_grace: float,
    ) -> None:
        super().__init__()
        self._method = method
        self._start_request = start
        self._metadata = metadata
        self._timeout = timeout
        self._cancel_grace = cancel_grace
        self._lock = threading.Lock()
        self._cancel_sent = False
        self._ended = False
        self._grace_timer: threading.Timer | None = None
        self._call: Any = None  # the grpc call once started (Any: untyped stubs)
        # grpc reads the request side on a thread of its own; the queue feeds it and
        # None closes it. It stays open until done or a cancel: the server reads a
        # half-close before a cancel as "no cancel coming", not as a cancel.
        self._requests: queue.SimpleQueue[task_pb2.InferRequest | None] = queue.SimpleQueue()

    def __iter__(self) -> Iterator[str]:
        call = self._start()
        if call is None:
            return  # cancelled before it started: there is no task
        try:
            for response in call:
                text = self._take(response)
                if text is not None:
                    yield text
            self._end()
        except grpc.RpcError as error:
            self._end()
            if self._cancel_sent and error.code() == grpc.StatusCode.CANCELLED:
                return  # cut after the grace: our own cancel
            raise from_rpc_error(error) from error
        finally:
            if not self._ended:  # the caller left the loop
                self.cancel()
                self._drain()

    def cancel(self, reason: str = DEFAULT_CANCEL_REASON) -> None:
        """Asks the server to stop (the task ends CANCELLED); the call is cut if it has not ended after the grace.

        Before the call started, it only makes sure it never starts.
        """
        with self._lock:
            if self._cancel_sent or self._ended:
                return
            self._cancel_sent = True
            call = self._call
            if call is None:
                self._ended = True
                return
        self._requests.put(cancel_request(reason))
        self._requests.put(None)
        self._grace_timer = threading.Timer(self._cancel_grace, call.cancel)
        self._grace_timer.daemon = True
        self._grace_timer.start()

    def wait(self) -> task_pb2.InferDone | None:
        """Reads the stream to its end (collecting ``text``); returns ``result``."""
        for _ in self:
            pass
        return self.result

    def __enter__(self) -> InferStream:
        self._start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._ended:
            self.cancel()
            self._drain()

    def _start(self) -> Any:
        """The call, started on first use; None once the stream ended (or was cancelled) before it started."""
        with self._lock:
            if self._call is None and not self._ended:
                self._requests.put(self._start_request)
                self._call = self._method(_outgoing(self._requests), timeout=self._timeout, metadata=self._metadata)
            return self._call

    def _drain(self) -> None:
        """Reads what the server still sends after a cancel (its done), until it ends the call."""
        try:
            if self._call is not None:
                for response in self._call:
                    self._take(response)
        except grpc.RpcError:
            pass  # the grace cut, or the server's status: the caller already chose to stop
        finally:
            self._end()

    def _end(self) -> None:
        self._ended = True
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._requests.put(None)  # lets grpc's request thread finish


def _outgoing(requests: queue.SimpleQueue[task_pb2.InferRequest | None]) -> Iterator[task_pb2.InferRequest]:
    """The request side, fed by the queue until a None.

    A function of the queue alone: holding the stream would keep it alive
    from grpc's request thread.
    """
    while (message := requests.get()) is not None:
        yield message

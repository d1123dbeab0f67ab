"""The asyncio client (grpc.aio): the same calls as Client, awaited."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

from . import _requests as build
from ._config import ChannelOptions, Connection, resolve_connection
from ._infer import DEFAULT_CANCEL_GRACE, DEFAULT_CANCEL_REASON, InferProgress, cancel_request
from ._requests import DeadlineLike, MessageLike, PriorityClassLike, RoleName
from .errors import AutoglmError, from_rpc_error
from .retry import Budget, RetryPolicy, retry_delay
from .v1 import auth_pb2, auth_pb2_grpc, task_pb2, task_pb2_grpc

R = TypeVar("R")


class AsyncClient:
    """Client of the autoglm.v1 public API for asyncio; configured as Client is.

    Create it inside a running event loop; ``async with AsyncClient() as client``
    closes the channel at the end.
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
            self._channel = grpc.aio.secure_channel(conn.address, conn.credentials, options=conn.options)
        else:
            self._channel = grpc.aio.insecure_channel(conn.address, options=conn.options)
        self._tasks = task_pb2_grpc.TaskServiceStub(self._channel)
        self._auth = auth_pb2_grpc.AuthServiceStub(self._channel)

    @property
    def address(self) -> str:
        return self._connection.address

    @property
    def tenant(self) -> str | None:
        return self._connection.tenant

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def submit(
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
        """Submits a task; see Client.submit."""
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
        response: task_pb2.SubmitTaskResponse = await self._retrying(lambda remaining: self._unary(self._tasks.SubmitTask, request, remaining), timeout)
        return response

    async def get(self, task_id: str, *, timeout: float | None = None) -> task_pb2.Task:
        """A task with its result."""
        task: task_pb2.Task = await self._unary(self._tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id), timeout)
        return task

    async def cancel(self, task_id: str, reason: str = "", *, timeout: float | None = None) -> task_pb2.Task:
        """Cancels a task that has not finished; a finished task comes back unchanged."""
        request = task_pb2.CancelTaskRequest(task_id=task_id, reason=reason)
        task: task_pb2.Task = await self._unary(self._tasks.CancelTask, request, timeout)
        return task

    async def explain(self, task_id: str, *, timeout: float | None = None) -> task_pb2.PriorityExplanation:
        """Why a task has the priority and queue position it has."""
        request = task_pb2.ExplainTaskRequest(task_id=task_id)
        explanation: task_pb2.PriorityExplanation = await self._unary(self._tasks.ExplainTask, request, timeout)
        return explanation

    async def watch(self, task_id: str, *, after_sequence: int = 0, timeout: float | None = None) -> AsyncIterator[task_pb2.TaskEvent]:
        """A task's transitions after ``after_sequence`` (0: its whole history), ending after the final one.

        The call starts when iteration starts; leaving the loop early cancels it.
        """
        request = task_pb2.WatchTaskRequest(task_id=task_id, after_sequence=after_sequence)
        call = self._tasks.WatchTask(request, timeout=timeout, metadata=self._connection.metadata())
        ended = False
        try:
            async for event in call:
                yield event
            ended = True
        except grpc.aio.AioRpcError as error:
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
    ) -> AsyncInferStream:
        """Interactive inference: ``async for`` the returned stream for text chunks; see Client.infer.

        Prefer ``async with client.infer(...) as stream``: leaving the block
        before the end cancels the task at once, where a loop left early only
        cancels it when the event loop finalizes the abandoned iterator.
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
        return AsyncInferStream(self._tasks.Infer, start, self._connection.metadata(), timeout, cancel_grace)

    async def create_token(
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
        response: auth_pb2.CreateTokenResponse = await self._unary(self._auth.CreateToken, request, timeout)
        return response

    async def whoami(self, *, timeout: float | None = None) -> auth_pb2.WhoAmIResponse:
        """The tenant and role this client's token stands for."""
        response: auth_pb2.WhoAmIResponse = await self._unary(self._auth.WhoAmI, auth_pb2.WhoAmIRequest(), timeout)
        return response

    # Named like the RPC; defined last so that `list` in the annotations above is the builtin.
    async def list(
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
        response: task_pb2.ListTasksResponse = await self._unary(self._tasks.ListTasks, request, timeout)
        return response

    async def _unary(self, method: Any, request: Any, timeout: float | None) -> Any:  # Any: the generated stubs are untyped
        try:
            return await method(request, timeout=timeout if timeout is not None else self._connection.timeout, metadata=self._connection.metadata())
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from error

    async def _retrying(self, call: Callable[[float], Awaitable[R]], timeout: float | None) -> R:
        """Awaits ``call(seconds left)`` until it succeeds, fails for good, or the one budget of ``timeout`` is spent."""
        budget = Budget(timeout if timeout is not None else self._connection.timeout)
        failures = 0
        while True:
            try:
                return await call(budget.remaining())
            except AutoglmError as error:
                failures += 1
                delay = retry_delay(failures, self._retry, error, budget.remaining())
                if delay is None:
                    raise
                await asyncio.sleep(delay)


class AsyncInferStream(InferProgress):
    """One Infer call for asyncio: ``async for`` it for text chunks; see InferStream.

    The call starts on the first iteration or on ``async with``.
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
        self._cancel_sent = False
        self._cut = False
        self._ended = False
        self._grace_timer: asyncio.TimerHandle | None = None
        self._drained: asyncio.Event | None = None
        self._call: Any = None  # the grpc.aio call once started (Any: untyped stubs)
        # The request side stays open until done or a cancel (see InferStream); None closes it.
        self._requests: asyncio.Queue[task_pb2.InferRequest | None] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[str]:
        call = self._start()
        if call is None:
            return  # cancelled before it started: there is no task
        try:
            async for response in call:
                text = self._take(response)
                if text is not None:
                    yield text
            self._end()
        except grpc.aio.AioRpcError as error:
            self._end()
            if self._cancel_sent and error.code() == grpc.StatusCode.CANCELLED:
                return  # the status answering our own cancel
            raise from_rpc_error(error) from error
        except asyncio.CancelledError:
            self._end()
            if self._cut_by_grace():
                return  # grpc.aio's word for our own cut after the grace
            call.cancel()
            raise
        finally:
            if not self._ended:  # the caller left the loop
                await self._finish()

    def cancel(self, reason: str = DEFAULT_CANCEL_REASON) -> None:
        """Asks the server to stop (the task ends CANCELLED); the call is cut if it has not ended after the grace.

        Before the call started, it only makes sure it never starts.
        """
        if self._cancel_sent or self._ended:
            return
        self._cancel_sent = True
        if self._call is None:
            self._ended = True
            return
        self._requests.put_nowait(cancel_request(reason))
        self._requests.put_nowait(None)
        self._grace_timer = asyncio.get_running_loop().call_later(self._cancel_grace, self._cut_call)

    async def wait(self) -> task_pb2.InferDone | None:
        """Reads the stream to its end (collecting ``text``); returns ``result``."""
        async for _ in self:
            pass
        return self.result

    async def __aenter__(self) -> AsyncInferStream:
        self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._ended:
            await self._finish()

    def _start(self) -> Any:
        """The call, started on first use; None once the stream ended (or was cancelled) before it started."""
        if self._call is None and not self._ended:
            self._requests.put_nowait(self._start_request)
            self._call = self._method(_outgoing(self._requests), timeout=self._timeout, metadata=self._metadata)
        return self._call

    def _cut_call(self) -> None:
        """The grace is over: cut the call. grpc.aio then raises asyncio.CancelledError from its reads."""
        self._cut = True
        self._call.cancel()

    def _cut_by_grace(self) -> bool:
        """Whether a CancelledError just caught is our grace cut rather than a cancellation of the caller's task.

        Python 3.11+ counts a task's pending cancellations; 3.10 cannot tell, and
        a task cancelled after our cut ends quietly there.
        """
        if not self._cut:
            return False
        cancelling = getattr(asyncio.current_task(), "cancelling", None)
        return not (cancelling is not None and cancelling() > 0)

    async def _finish(self) -> None:
        """Cancels and reads to the end, once.

        Both ``__aexit__`` and the abandoned iterator's finalizer (which asyncio
        runs as a task of its own) come here; two readers of one call collide,
        so the second waits for the first.
        """
        self.cancel()
        if self._drained is not None:
            await self._drained.wait()
            return
        self._drained = asyncio.Event()
        try:
            await self._drain()
        finally:
            self._drained.set()

    async def _drain(self) -> None:
        """Reads what the server still sends after a cancel (its done), until it ends the call."""
        try:
            if self._call is not None:
                async for response in self._call:
                    self._take(response)
        except grpc.aio.AioRpcError:
            pass  # the server's status: the caller already chose to stop
        except asyncio.CancelledError:
            if not self._cut_by_grace():
                raise
        finally:
            self._end()

    def _end(self) -> None:
        self._ended = True
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._requests.put_nowait(None)


async def _outgoing(requests: asyncio.Queue[task_pb2.InferRequest | None]) -> AsyncIterator[task_pb2.InferRequest]:
    """The request side, fed by the queue until a None; a function of the queue alone, so it does not keep the stream alive."""
    while (message := await requests.get()) is not None:
        yield message

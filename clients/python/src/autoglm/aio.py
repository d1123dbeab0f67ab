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
from .errors import AutoglmError, from_rpc_error, is_retryable
from .retry import RetryPolicy, backoff_delay
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
    ) -> None:
        self._connection: Connection = resolve_connection(address, token, ca, tenant, timeout, credentials, channel_options)
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
        response: task_pb2.SubmitTaskResponse = await self._retrying(lambda: self._unary(self._tasks.SubmitTask, request, timeout))
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

    async def _retrying(self, call: Callable[[], Awaitable[R]]) -> R:
        attempt = 1
        while True:
            try:
                return await call()
            except AutoglmError as error:
                if attempt >= self._retry.max_attempts or not is_retryable(error):
                    raise
                await asyncio.sleep(backoff_delay(attempt, self._retry, error.retry_after))
                attempt += 1


class AsyncInferStream(InferProgress):
    """One Infer call for asyncio: ``async for`` it for text chunks; see InferStream."""

    def __init__(
        self,
        method: Any,  # Any: the generated stubs are untyped
        start: task_pb2.InferRequest,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        cancel_grace: float,
    ) -> None:
        super().__init__()
        self._cancel_grace = cancel_grace
        self._cancel_sent = False
        self._ended = False
        self._grace_timer: asyncio.TimerHandle | None = None
        # The request side stays open until done or a cancel (see InferStream); None closes it.
        self._requests: asyncio.Queue[task_pb2.InferRequest | None] = asyncio.Queue()
        self._requests.put_nowait(start)
        self._call = method(self._outgoing(), timeout=timeout, metadata=metadata)

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for response in self._call:
                text = self._take(response)
                if text is not None:
                    yield text
            self._end()
        except grpc.aio.AioRpcError as error:
            self._end()
            if self._cancel_sent and error.code() == grpc.StatusCode.CANCELLED:
                return  # cut after the grace: our own cancel
            raise from_rpc_error(error) from error
        except asyncio.CancelledError:
            self._call.cancel()
            self._end()
            raise
        finally:
            if not self._ended:  # the caller left the loop
                self.cancel()
                await self._drain()

    def cancel(self, reason: str = DEFAULT_CANCEL_REASON) -> None:
        """Asks the server to stop (the task ends CANCELLED); the call is cut if it has not ended after the grace."""
        if self._cancel_sent or self._ended:
            return
        self._cancel_sent = True
        self._requests.put_nowait(cancel_request(reason))
        self._requests.put_nowait(None)
        self._grace_timer = asyncio.get_running_loop().call_later(self._cancel_grace, self._call.cancel)

    async def wait(self) -> task_pb2.InferDone | None:
        """Reads the stream to its end (collecting ``text``); returns ``result``."""
        async for _ in self:
            pass
        return self.result

    async def __aenter__(self) -> AsyncInferStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._ended:
            self.cancel()
            await self._drain()

    async def _outgoing(self) -> AsyncIterator[task_pb2.InferRequest]:
        while (message := await self._requests.get()) is not None:
            yield message

    async def _drain(self) -> None:
        """Reads what the server still sends after a cancel (its done), until it ends the call."""
        try:
            async for response in self._call:
                self._take(response)
        except grpc.aio.AioRpcError:
            pass  # the grace cut, or the server's status: the caller already chose to stop
        finally:
            self._end()

    def _end(self) -> None:
        self._ended = True
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._requests.put_nowait(None)

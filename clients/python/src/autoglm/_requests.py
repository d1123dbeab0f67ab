"""Turns the keyword arguments of submit and infer into their request messages."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Literal, Union

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from .v1 import auth_pb2, task_pb2

PriorityClassName = Literal["urgent", "normal", "background"]
#: "urgent", "normal", "background", or a task_pb2.PriorityClass value.
PriorityClassLike = Union[PriorityClassName, "task_pb2.PriorityClass"]
RoleName = Literal["viewer", "submitter", "admin"]
#: A chat turn: a ChatMessage, or a mapping with "role" and "content".
MessageLike = Union["task_pb2.ChatMessage", Mapping[str, str]]
#: An absolute time, or a time from now.
DeadlineLike = Union[datetime, timedelta]

_PRIORITY_CLASSES: dict[str, task_pb2.PriorityClass] = {
    "urgent": task_pb2.PRIORITY_CLASS_URGENT,
    "normal": task_pb2.PRIORITY_CLASS_NORMAL,
    "background": task_pb2.PRIORITY_CLASS_BACKGROUND,
}
_ROLES: dict[str, auth_pb2.Role] = {"viewer": auth_pb2.ROLE_VIEWER, "submitter": auth_pb2.ROLE_SUBMITTER, "admin": auth_pb2.ROLE_ADMIN}


def new_request_id() -> str:
    return str(uuid.uuid4())


def inference_payload(
    prompt: str | None,
    messages: Sequence[MessageLike] | None,
    max_tokens: int,
    temperature: float,
    top_p: float,
    stop: Sequence[str],
) -> task_pb2.InferencePayload:
    if (prompt is None) == (messages is None):
        raise TypeError("give exactly one of prompt and messages")
    params = task_pb2.GenerationParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=list(stop))
    if prompt is not None:
        return task_pb2.InferencePayload(prompt=prompt, params=params)
    assert messages is not None
    turns = [m if isinstance(m, task_pb2.ChatMessage) else task_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages]
    return task_pb2.InferencePayload(messages=turns, params=params)


def batch_payload(
    command: Sequence[str] | None,
    expected_duration: timedelta | None,
    time_limit: timedelta | None,
    env: Mapping[str, str] | None,
) -> task_pb2.BatchPayload:
    payload = task_pb2.BatchPayload(command=list(command or ()), env=dict(env or {}))
    if expected_duration is not None:
        payload.expected_duration.CopyFrom(duration(expected_duration))
    if time_limit is not None:
        payload.time_limit.CopyFrom(duration(time_limit))
    return payload


def priority_class_value(value: PriorityClassLike | None) -> task_pb2.PriorityClass:
    if value is None:
        return task_pb2.PRIORITY_CLASS_UNSPECIFIED
    if isinstance(value, str):
        try:
            return _PRIORITY_CLASSES[value]
        except KeyError:
            raise ValueError(f"priority_class {value!r}: expected one of {', '.join(_PRIORITY_CLASSES)}") from None
    return value


def role(value: RoleName | auth_pb2.Role) -> auth_pb2.Role:
    if isinstance(value, str):
        try:
            return _ROLES[value]
        except KeyError:
            raise ValueError(f"role {value!r}: expected one of {', '.join(_ROLES)}") from None
    return value


def timestamp(deadline: DeadlineLike) -> Timestamp:
    when = datetime.now(timezone.utc) + deadline if isinstance(deadline, timedelta) else deadline
    if when.tzinfo is None:
        raise ValueError("deadline: give an aware datetime (with tzinfo) or a timedelta from now")
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def duration(span: timedelta) -> Duration:
    value = Duration()
    value.FromTimedelta(span)
    return value


def submit_request(
    *,
    model: str,
    prompt: str | None,
    messages: Sequence[MessageLike] | None,
    max_tokens: int,
    temperature: float,
    top_p: float,
    stop: Sequence[str],
    command: Sequence[str] | None,
    expected_duration: timedelta | None,
    time_limit: timedelta | None,
    env: Mapping[str, str] | None,
    gpu_count: int | None,
    priority_class: PriorityClassLike | None,
    priority: int,
    deadline: DeadlineLike | None,
    depends_on: Sequence[str],
    labels: Mapping[str, str] | None,
    preemptible: bool,
    max_retries: int | None,
    tenant: str | None,
    request_id: str | None,
) -> task_pb2.SubmitTaskRequest:
    """A SubmitTaskRequest: a batch job when command or expected_duration is given, else an inference."""
    request = task_pb2.SubmitTaskRequest(
        # One id for every attempt, so that a retried submission that did arrive returns the same task.
        request_id=request_id or new_request_id(),
        tenant=tenant or "",
        model=model,
        priority_class=priority_class_value(priority_class),
        priority=priority,
        depends_on=list(depends_on),
        preemptible=preemptible,
        labels=dict(labels or {}),
    )
    if command is not None or expected_duration is not None or time_limit is not None or env is not None:
        if prompt is not None or messages is not None:
            raise TypeError("a task is an inference (prompt or messages) or a batch job (command, expected_duration), not both")
        request.batch.CopyFrom(batch_payload(command, expected_duration, time_limit, env))
    else:
        request.inference.CopyFrom(inference_payload(prompt, messages, max_tokens, temperature, top_p, stop))
    if gpu_count is not None:
        request.resources.gpu_count = gpu_count
    if max_retries is not None:
        request.max_retries = max_retries
    if deadline is not None:
        request.deadline.CopyFrom(timestamp(deadline))
    return request


def infer_start(
    *,
    model: str,
    prompt: str | None,
    messages: Sequence[MessageLike] | None,
    max_tokens: int,
    temperature: float,
    top_p: float,
    stop: Sequence[str],
    priority_class: PriorityClassLike | None,
    priority: int,
    deadline: DeadlineLike | None,
    labels: Mapping[str, str] | None,
    tenant: str | None,
    request_id: str | None,
) -> task_pb2.InferRequest:
    """The first message of an Infer stream."""
    start = task_pb2.InferStart(
        request_id=request_id or new_request_id(),
        tenant=tenant or "",
        model=model,
        input=inference_payload(prompt, messages, max_tokens, temperature, top_p, stop),
        priority_class=priority_class_value(priority_class),
        priority=priority,
        labels=dict(labels or {}),
    )
    if deadline is not None:
        start.deadline.CopyFrom(timestamp(deadline))
    return task_pb2.InferRequest(start=start)

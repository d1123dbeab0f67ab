"""Unary calls and WatchTask with the sync client, against the mesh."""

from __future__ import annotations

from datetime import timedelta

from conftest import MODEL, TENANT

from autoglm import Client, TaskEvent, TaskState


def watch_to_end(client: Client, task_id: str) -> list[TaskEvent]:
    return list(client.watch(task_id, timeout=60))


def test_submit_then_watch_ends_succeeded_with_output(client: Client) -> None:
    submitted = client.submit(model=MODEL, prompt="Write one sentence about the sea.", max_tokens=16)
    assert submitted.created
    task_id = submitted.task.id

    events = watch_to_end(client, task_id)

    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert all(event.task_id == task_id for event in events)
    last = events[-1]
    assert last.final
    assert last.state == TaskState.TASK_STATE_SUCCEEDED, last.reason
    assert last.task.result.output != ""
    assert 0 < last.task.result.completion_tokens <= 16


def test_resubmitting_a_request_id_returns_the_same_task(client: Client) -> None:
    first = client.submit(model=MODEL, prompt="Once.", max_tokens=4, request_id="py-idempotent-1")
    again = client.submit(model=MODEL, prompt="Once.", max_tokens=4, request_id="py-idempotent-1")

    assert not again.created
    assert again.task.id == first.task.id


def test_get_and_list_show_a_finished_task(client: Client) -> None:
    task_id = client.submit(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8).task.id
    watch_to_end(client, task_id)

    task = client.get(task_id)
    listed = client.list(states=[TaskState.TASK_STATE_SUCCEEDED], page_size=1000)

    assert task.id == task_id
    assert task.tenant == TENANT
    assert task.state == TaskState.TASK_STATE_SUCCEEDED
    assert task.result.output != ""
    assert task_id in [t.id for t in listed.tasks]
    assert all(t.state == TaskState.TASK_STATE_SUCCEEDED for t in listed.tasks)


def test_explain_names_the_task_and_its_state(client: Client) -> None:
    task_id = client.submit(model=MODEL, prompt="Explain me.", max_tokens=4, priority_class="background").task.id

    explanation = client.explain(task_id)

    assert explanation.task_id == task_id
    assert explanation.state != TaskState.TASK_STATE_UNSPECIFIED
    assert explanation.factors, "no priority factors"


def test_cancel_stops_a_running_batch_job(client: Client) -> None:
    # Ten simulated minutes: far longer than the test, at any time scale the suite uses.
    task_id = client.submit(expected_duration=timedelta(minutes=10)).task.id

    cancelled = client.cancel(task_id, "not needed any more")
    events = watch_to_end(client, task_id)

    assert cancelled.id == task_id
    assert events[-1].state == TaskState.TASK_STATE_CANCELLED
    assert client.get(task_id).state == TaskState.TASK_STATE_CANCELLED
    assert "not needed any more" in client.get(task_id).reason

"""What the sync and the asyncio Infer streams share: the record of what the server sent."""

from __future__ import annotations

from .v1 import task_pb2

#: Reason recorded with the CANCELLED event when the caller gives none.
DEFAULT_CANCEL_REASON = "cancelled by client"
#: Seconds the server has to end the stream after a cancel before the call is cut (RST_STREAM).
DEFAULT_CANCEL_GRACE = 5.0


class InferProgress:
    """The task id, the text so far and, once the server is done, the finish reason and usage."""

    def __init__(self) -> None:
        self.task_id: str | None = None
        """The durable task's id, once the server accepted the request (GetTask works on it)."""
        self.queue_position: int = 0
        """1-based position among runnable tasks at acceptance."""
        self.result: task_pb2.InferDone | None = None
        """The server's last message: finish_reason ("stop", "length", "cancelled"), usage, node_id."""
        self._chunks: list[str] = []

    @property
    def text(self) -> str:
        """Every chunk received so far, joined."""
        return "".join(self._chunks)

    @property
    def usage(self) -> task_pb2.Usage | None:
        """Token counts and timings, once the stream is done."""
        return self.result.usage if self.result is not None else None

    def _take(self, response: task_pb2.InferResponse) -> str | None:
        """Records one server message; returns the text of a chunk, None for the others."""
        kind = response.WhichOneof("kind")
        if kind == "accepted":
            self.task_id = response.accepted.task_id
            self.queue_position = response.accepted.queue_position
        elif kind == "chunk":
            self._chunks.append(response.chunk.text)
            return response.chunk.text
        elif kind == "done":
            self.result = response.done
        return None


def cancel_request(reason: str) -> task_pb2.InferRequest:
    return task_pb2.InferRequest(cancel=task_pb2.InferCancel(reason=reason))

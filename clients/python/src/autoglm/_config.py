"""Connection settings: argument, else environment, else default; resolved once per client."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ._version import __version__

DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 30.0
#: Largest message either side may send: prompts and outputs can be long.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

ChannelOptions = Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class Connection:
    """Where and how a client connects, every default applied."""

    address: str
    token: str | None
    tenant: str | None
    credentials: grpc.ChannelCredentials | None
    """TLS credentials; None for plaintext."""
    options: tuple[tuple[str, Any], ...]
    timeout: float

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What every call carries: the bearer token and the tenant, when there are."""
        pairs: list[tuple[str, str]] = []
        if self.token:
            pairs.append(("authorization", f"Bearer {self.token}"))
        if self.tenant:
            pairs.append(("x-autoglm-tenant", self.tenant))
        return tuple(pairs)


def resolve_connection(
    address: str | None,
    token: str | None,
    ca: str | os.PathLike[str] | bytes | None,
    tenant: str | None,
    timeout: float | None,
    credentials: grpc.ChannelCredentials | None,
    channel_options: ChannelOptions,
) -> Connection:
    """Applies AUTOGLM_ADDRESS, AUTOGLM_TOKEN, AUTOGLM_CA and AUTOGLM_TENANT to what the caller left None.

    An empty string given explicitly means "none" and is not replaced by the
    environment (``token=""`` calls without a token even when AUTOGLM_TOKEN is set).
    """
    address = address if address is not None else os.environ.get("AUTOGLM_ADDRESS") or DEFAULT_ADDRESS
    token = token if token is not None else os.environ.get("AUTOGLM_TOKEN") or None
    tenant = tenant if tenant is not None else os.environ.get("AUTOGLM_TENANT") or None
    if ca is None:
        ca = os.environ.get("AUTOGLM_CA") or None
    if isinstance(ca, bytes):
        pem = ca or None
    else:
        pem = Path(ca).read_bytes() if ca else None
    if credentials is None and pem is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=pem)
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.primary_user_agent", f"autoglm-py/{__version__}"),
    ]
    if credentials is not None and _is_ip_literal(address):
        # A local mesh's certificates name "localhost" besides their addresses, and
        # SNI may not carry an IP: check the name "localhost" (still against the CA).
        options.append(("grpc.ssl_target_name_override", "localhost"))
    options.extend(channel_options)
    return Connection(
        address=address,
        token=token,
        tenant=tenant,
        credentials=credentials,
        options=tuple(options),
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
    )


def _is_ip_literal(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

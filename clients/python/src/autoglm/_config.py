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
    insecure: bool = False,
) -> Connection:
    """Applies AUTOGLM_ADDRESS, AUTOGLM_TOKEN, AUTOGLM_CA and AUTOGLM_TENANT to what the caller left None.

    An empty string given explicitly means "none" and is not replaced by the
    environment (``token=""`` calls without a token even when AUTOGLM_TOKEN is set).
    Raises ValueError for a token on a plaintext channel to a host other than
    this machine, unless ``insecure`` says the caller means it.
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
    if token and credentials is None and not insecure and not is_loopback(address):
        raise ValueError(
            f"refusing to send a token in plaintext to {address}: give ca= (or AUTOGLM_CA) for TLS, "
            "or insecure=True to send it unencrypted anyway"
        )
    options.extend(channel_options)
    return Connection(
        address=address,
        token=token,
        tenant=tenant,
        credentials=credentials,
        options=tuple(options),
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
    )


#: Target schemes grpc resolves that name a host (dns:///host:port, ipv4:host:port, ipv6:[host]:port).
_HOST_SCHEMES = ("dns:///", "ipv4:", "ipv6:")


def is_loopback(address: str) -> bool:
    """Whether a grpc target is this machine, where plaintext never leaves it.

    Unix sockets, "localhost" and loopback IPs (127.0.0.0/8, ::1) are; any
    other target, or one this cannot parse, is not (the safe answer).
    """
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = _host(_without_scheme(address))
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _without_scheme(address: str) -> str:
    for scheme in _HOST_SCHEMES:
        if address.startswith(scheme):
            return address[len(scheme) :]
    return address


def _host(target: str) -> str:
    """The host of host:port, [v6]:port, a bare host or a bare IPv6 address."""
    if target.startswith("["):
        return target[1 : target.find("]")]
    return target.rsplit(":", 1)[0] if target.count(":") == 1 else target

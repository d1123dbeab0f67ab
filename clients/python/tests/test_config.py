"""Connection settings checked before any call: a token is not sent in plaintext off this machine by accident."""

from __future__ import annotations

import pytest

from autoglm import AsyncClient, Client
from autoglm._config import is_loopback

REMOTE = "10.0.0.1:50051"


def test_a_token_over_plaintext_to_another_host_is_refused() -> None:
    with pytest.raises(ValueError, match="insecure=True"):
        Client(REMOTE, token="secret", ca=b"")


def test_a_token_from_the_environment_is_refused_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOGLM_ADDRESS", REMOTE)
    monkeypatch.setenv("AUTOGLM_TOKEN", "secret")
    monkeypatch.delenv("AUTOGLM_CA", raising=False)

    with pytest.raises(ValueError, match="AUTOGLM_CA"):
        Client()


@pytest.mark.asyncio
async def test_the_async_client_refuses_it_too() -> None:
    with pytest.raises(ValueError, match="plaintext"):
        AsyncClient(REMOTE, token="secret", ca=b"")


def test_insecure_true_allows_it() -> None:
    with Client(REMOTE, token="secret", ca=b"", insecure=True) as client:
        assert client.address == REMOTE


def test_no_token_or_a_loopback_host_needs_no_tls() -> None:
    with Client(REMOTE, token="", ca=b""), Client("127.0.0.1:50051", token="secret", ca=b""):
        pass


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:50051", "127.1.2.3:1", "[::1]:50051", "::1", "localhost:50051", "LOCALHOST", "dns:///localhost:1", "ipv4:127.0.0.1:1", "unix:/tmp/autoglm.sock"],
)
def test_loopback_targets(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1:50051", "[2001:db8::1]:443", "example.com:443", "127.0.0.1.example.com:1", "localhost.example.com:1", "dns://8.8.8.8/localhost:1", ""],
)
def test_other_targets(address: str) -> None:
    assert not is_loopback(address)

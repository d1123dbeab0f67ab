"""Starts one whole mesh (`autoglm up`, separate processes) for the session; the tests talk to it.

Environment: AUTOGLM_REPO_ROOT (default: three levels up) holds libs/client/bin/autoglm.js,
built by `npm run build`; AUTOGLM_NODE is the node binary (default: node on PATH).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = Path(os.environ.get("AUTOGLM_REPO_ROOT") or PACKAGE_ROOT.parent.parent)
# decision's embedded store takes seconds to open, more on a loaded machine.
READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
TENANT = "py"
MODEL = "glm-4-9b"


# Regenerates the stubs from the protos as they are now, before autoglm is first
# imported (here, and in every test module, which pytest imports after this file).
subprocess.run([sys.executable, str(PACKAGE_ROOT / "scripts" / "generate.py")], check=True)

import autoglm  # noqa: E402


@dataclass(frozen=True)
class Mesh:
    address: str
    admin_token: str
    ca_file: str
    data_dir: Path
    # The parser's OpenAI-compatible API, as OpenAI's clients take it: https://host:port/v1.
    openai_url: str


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    cli = REPO_ROOT / "libs" / "client" / "bin" / "autoglm.js"
    node = os.environ.get("AUTOGLM_NODE") or shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH (set AUTOGLM_NODE)")
    if not (REPO_ROOT / "libs" / "client" / "dist").is_dir():
        pytest.fail(f"{REPO_ROOT}/libs/client/dist is missing: run npm run build first")
    work = tmp_path_factory.mktemp("mesh")
    data_dir = work / "data"
    stdout_path, stderr_path = work / "up.stdout", work / "up.stderr"
    args = [node, str(cli), "--json", "up", "--ports", "ephemeral", "--data-dir", str(data_dir), "--time-scale", "50", "--agents", "2"]
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(args, cwd=work, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        ready = _wait_for_ready(process, stdout_path, stderr_path, data_dir)
        yield Mesh(
            address=ready["publicAddress"],
            admin_token=Path(ready["adminTokenFile"]).read_text().strip(),
            ca_file=ready["caFile"],
            data_dir=data_dir,
            openai_url=ready["openaiUrl"],
        )
    finally:
        # As Ctrl-C: `autoglm up` stops every service and exits; a second SIGINT would kill them at once.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_ready(process: subprocess.Popen[bytes], stdout_path: Path, stderr_path: Path, data_dir: Path) -> dict[str, str]:
    """The JSON line `autoglm --json up` prints once the public endpoint is listening."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = stdout_path.read_text().strip()
        if line:
            ready: dict[str, str] = json.loads(line.splitlines()[0])
            return ready
        if process.poll() is not None:
            break
        time.sleep(0.1)
    why = f"exited with {process.returncode}" if process.poll() is not None else f"not ready within {READY_TIMEOUT_S} s"
    pytest.fail(f"autoglm up {why}:\n{stderr_path.read_text()[-4000:]}\n{_log_tails(data_dir)}")


def _log_tails(data_dir: Path) -> str:
    logs = data_dir / "logs"
    if not logs.is_dir():
        return ""
    return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-10:]) for log in sorted(logs.iterdir()))


@pytest.fixture(scope="session")
def client(mesh: Mesh) -> Iterator[autoglm.Client]:
    with autoglm.Client(mesh.address, token=mesh.admin_token, ca=mesh.ca_file, tenant=TENANT) as admin:
        yield admin


@pytest_asyncio.fixture
async def async_client(mesh: Mesh) -> AsyncIterator[autoglm.AsyncClient]:
    async with autoglm.AsyncClient(mesh.address, token=mesh.admin_token, ca=mesh.ca_file, tenant=TENANT) as admin:
        yield admin

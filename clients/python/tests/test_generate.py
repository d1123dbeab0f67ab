"""scripts/generate.py --check tells stubs that match proto/ from stale ones.

The suite regenerates the stubs before it imports autoglm (conftest), so the
stubs on disk are fresh here by construction; what is worth testing is that
--check would notice if they were not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PACKAGE_ROOT

GENERATE = PACKAGE_ROOT / "scripts" / "generate.py"
PROTO_DIR = PACKAGE_ROOT.parent.parent / "proto"


def check(proto_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATE), "--check", "--proto-dir", str(proto_dir)], capture_output=True, text=True)


def test_check_passes_on_the_stubs_of_proto() -> None:
    result = check(PROTO_DIR)

    assert result.returncode == 0, result.stderr


def test_check_fails_on_stubs_older_than_their_proto(tmp_path: Path) -> None:
    changed = tmp_path / "proto"
    shutil.copytree(PROTO_DIR, changed)
    task_proto = changed / "autoglm" / "v1" / "task.proto"
    task_proto.write_text(task_proto.read_text() + "\nmessage AddedSinceTheStubs {}\n")

    result = check(changed)

    assert result.returncode == 1
    assert "task_pb2.py" in result.stderr


def test_check_fails_on_stubs_of_a_proto_since_removed(tmp_path: Path) -> None:
    fewer = tmp_path / "proto"
    shutil.copytree(PROTO_DIR, fewer)
    (fewer / "autoglm" / "v1" / "executor.proto").unlink()

    result = check(fewer)

    assert result.returncode == 1
    assert "executor_pb2.py" in result.stderr

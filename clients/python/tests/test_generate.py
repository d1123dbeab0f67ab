"""The stubs in src/autoglm/v1 are what scripts/generate.py makes from proto/ now."""

from __future__ import annotations

import subprocess
import sys

from conftest import PACKAGE_ROOT


def test_generated_stubs_are_fresh() -> None:
    check = subprocess.run(
        [sys.executable, str(PACKAGE_ROOT / "scripts" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr

"""The README's examples run as written against the mesh."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import PACKAGE_ROOT, Mesh

EXAMPLES = re.findall(r"```python\n(.*?)```", (PACKAGE_ROOT / "README.md").read_text(), re.DOTALL)


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example-{i + 1}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(example: str, mesh: Mesh) -> None:
    env = {**os.environ, "AUTOGLM_ADDRESS": mesh.address, "AUTOGLM_TOKEN": mesh.admin_token, "AUTOGLM_CA": mesh.ca_file}
    run = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    assert re.search(r"(stop|length): \d+ tokens|task [0-9a-f-]{36}: (stop|length)", run.stdout), run.stdout


def test_readme_has_both_examples() -> None:
    assert len(EXAMPLES) == 2

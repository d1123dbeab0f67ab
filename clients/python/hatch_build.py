"""Hatch build hook: generates the autoglm.v1 stubs before every build (wheel, editable, sdist).

From a source tree with ../../proto the stubs are (re)generated; from an sdist,
which carries them but not the protos, the ones it carries are used.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class GenerateStubs(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        if not (root.parent.parent / "proto" / "autoglm" / "v1").is_dir():
            if not (root / "src" / "autoglm" / "v1" / "task_pb2.py").is_file():
                raise RuntimeError("no proto/ next to clients/python and no generated stubs: build from the repository or an sdist")
            return
        subprocess.run([sys.executable, str(root / "scripts" / "generate.py")], check=True)

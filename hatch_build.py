"""The wheel's build hook: compile the Service forwarder and ship it in the wheel.

A wheel built here carries ``reconciler/forwarder/prebuilt/forwarder-<digest>``, a static
binary, so that ``pip install reconciler-*.whl`` on a machine without a C compiler still
serves Services. The wheel is then tagged for this platform (``py3-none-linux_x86_64``):
the binary runs on any Linux of this architecture, whatever its libc.

The compile step is the package's own (``reconciler/forwarder/program.py``, loaded by its
path: the package's dependencies are not installed in a build environment), so the digest
in the file name is the one the installed reconciler looks for.

``RECONCILER_WHEEL_FORWARDER``: ``auto`` (default) ships the forwarder when a C compiler is
found and builds a pure wheel with a warning when not (the installed reconciler then
compiles it on first use, the source build's way); ``require`` fails without a compiler;
``skip`` never ships it. Editable installs never compile here.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODE_ENV = "RECONCILER_WHEEL_FORWARDER"


def _program(root: str) -> ModuleType:
    path = Path(root) / "reconciler" / "forwarder" / "program.py"
    spec = importlib.util.spec_from_file_location("_reconciler_forwarder_program", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and friends look their module up
    spec.loader.exec_module(module)
    return module


class ForwarderBuildHook(BuildHookInterface):  # type: ignore[misc]
    """Compiles ``forwarder.c`` into the wheel (hatchling's ``custom`` build hook)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._scratch: str | None = None
        mode = os.environ.get(MODE_ENV, "auto")
        if self.target_name != "wheel" or version == "editable" or mode == "skip":
            return
        program = _program(self.root)
        compiler = program.find_compiler()
        if compiler is None:
            message = (
                "reconciler: no C compiler: the wheel does not ship the Service forwarder "
                "(it will be compiled on first use where a compiler exists)"
            )
            if mode == "require":
                raise RuntimeError(f"{message}; {MODE_ENV}=require")
            self.app.display_warning(message)
            return
        digest = program.digest_of(program.SOURCE.read_bytes())
        self._scratch = tempfile.mkdtemp(prefix="reconciler-forwarder-")
        binary = Path(self._scratch) / program.binary_name(digest)
        try:
            program.compile_to(compiler, binary)
        except program.CompileFailed as exc:
            raise RuntimeError(f"reconciler: cannot compile the Service forwarder: {exc}") from None
        binary.chmod(0o755)
        shipped = program.prebuilt_path(digest).relative_to(Path(self.root))
        build_data["force_include"][str(binary)] = shipped.as_posix()
        build_data["pure_python"] = False
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{platform}"
        self.app.display_info(f"reconciler: shipping the Service forwarder {digest} ({platform})")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_scratch", None):
            shutil.rmtree(str(self._scratch), ignore_errors=True)

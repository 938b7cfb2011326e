"""The optional compiled hot path: pyproject.toml holds everything else.

``pip install -e .`` (or a wheel build) compiles the modules listed in
``sim/_compiled.py`` to C with mypyc, from the same typed sources that run as plain
Python. The build is optional: without mypyc or a working C compiler the lab installs
and runs the pure path, and says so in one line. Floating point is compiled strictly
(``-ffp-contract=off``, no ``-ffast-math``, no ``-march=native``), so results do not
depend on the machine or on the path. After a build, ``sim/_compiled_manifest.json``
records the SHA-256 of each source as mypyc read it; ``sim`` loads the compiled modules
only while every source still matches it (see ``sim/_compiled.py``). ``SIM_PURE=1`` at
install time skips the build.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
_compiled = runpy.run_path(str(HERE / "sim" / "_compiled.py"))
MODULES: tuple[str, ...] = _compiled["MODULES"]
STRICT_FP = ["-ffp-contract=off", "-fno-fast-math"]
BUILT_FROM: dict[str, str] = {}  # module -> SHA-256 of the source mypyc compiled


def _notice(reason: str) -> None:
    print(f"omnisql-reliability-lab: the hot path stays pure Python ({reason})",
          file=sys.stderr)


def _extensions() -> list:
    if os.environ.get("SIM_PURE", "") not in ("", "0"):
        _notice("SIM_PURE is set")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _notice("mypyc is not installed")
        return []
    paths = [str(Path(*m.split(".")).with_suffix(".py")) for m in MODULES]
    BUILT_FROM.update(_compiled["source_hashes"](HERE / "sim"))  # what mypyc reads now
    try:
        extensions = mypycify(paths, opt_level="2", group_name=_compiled["GROUP"])
    except (Exception, SystemExit) as exc:  # mypyc reports type errors by exiting
        _notice(f"mypyc could not compile it: {exc}")
        return []
    for ext in extensions:
        ext.extra_compile_args = [*ext.extra_compile_args, *STRICT_FP]
    return extensions


class BuildExt(build_ext):
    """All or nothing: a failed compile leaves the pure path and no manifest."""

    def run(self) -> None:
        if not self.extensions:
            return
        package = HERE / "sim" if self.inplace else Path(self.build_lib) / "sim"
        (package / _compiled["MANIFEST"]).unlink(missing_ok=True)  # an older build's
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers, a failed link...
            _notice(f"the C build failed: {exc}")
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            return
        package.mkdir(parents=True, exist_ok=True)
        (package / _compiled["MANIFEST"]).write_text(json.dumps(
            {"interpreter": _compiled["interpreter_tag"](), "sources": BUILT_FROM}, indent=1)
            + "\n")

    def get_outputs(self) -> list[str]:
        outputs = list(super().get_outputs())
        if self.extensions and not self.inplace:
            outputs.append(str(Path(self.build_lib) / "sim" / _compiled["MANIFEST"]))
        return outputs


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})

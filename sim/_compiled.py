"""Which path runs: the hot path compiled by mypyc, or the same sources as plain Python.

The modules in :data:`MODULES` (the kernel's events, stations and recorder, and the
nominal request path: workload, client, gateway, engine, cache, connector, provider,
the zones,
and the closed-loop users, whose client is a subclass of the compiled one)
are one source: plain, typed Python that runs as it is, and that ``setup.py`` also
compiles to C with mypyc when a C compiler is at hand (``pip install -e .``). A compiled
module sits beside its source (``station.py`` and ``station.cpython-311-….so``) and
Python's import system would prefer it even when the source has been edited since the
build. So the build writes :data:`MANIFEST`, the SHA-256 of every compiled source, and
:func:`install` (run when this module is imported, which ``sim/__init__.py`` does
before it imports any of these modules) puts a finder in front of the import system
that loads *every* one of them from source, all or none, unless:

* ``SIM_PURE`` is unset (``SIM_PURE=1`` forces the pure path),
* the manifest exists and was built for this interpreter, and
* every source's hash still matches the manifest (no stale module shadows an edit).

:func:`status` says which path this process runs and why. Results do not depend on the
path: ``tests/test_sim_compiled.py`` runs every shipped scenario both ways and compares
their ``summary.json`` byte for byte and their window arrays exactly.

This module must import nothing but the standard library: ``setup.py`` reads
:data:`MODULES` from it at build time, before the lab's dependencies are installed.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Sequence

__all__ = ["GROUP", "MANIFEST", "MODULES", "PathStatus", "install", "interpreter_tag",
           "source_hashes", "source_path", "status"]

#: The modules compiled by ``setup.py``, in dependency order (the kernel first).
MODULES: tuple[str, ...] = (
    "sim.kernel.events",
    "sim.kernel.packed",
    "sim.kernel.station",
    "sim.kernel.recorder",
    "sim.model.request",
    "sim.model.zone",
    "sim.model.provider",
    "sim.model.connector",
    "sim.model.cache",
    "sim.model.engine",
    "sim.model.gateway",
    "sim.model.client",
    "sim.model.workload",
    "sim.model.users",  # its NotifyingClient subclasses Client: compiled classes have only
)                       # compiled subclasses

#: mypyc's name for the compiled modules' group: their shared library is
#: ``sim/_hotpath__mypyc.<suffix>``, which every compiled module imports.
GROUP = "sim._hotpath"

#: Written by the build beside ``sim/__init__.py``: the interpreter it was built for and
#: the SHA-256 of each compiled module's source.
MANIFEST = "_compiled_manifest.json"

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PathStatus:
    """Whether this process runs the compiled hot path, and why (or why not)."""

    compiled: bool
    reason: str

    def notice(self) -> str:
        """One line for a user: which path, and why."""
        if self.compiled:
            return "sim: compiled hot path (mypyc)"
        return f"sim: pure-Python path ({self.reason})"


def source_path(module: str, package_dir: Path = _PACKAGE_DIR) -> Path:
    """The source file of one of :data:`MODULES`: ``sim.kernel.station`` is
    ``…/sim/kernel/station.py``."""
    parts = module.split(".")
    if parts[0] != "sim":
        raise ValueError(f"{module} is not a module of sim")
    return package_dir.joinpath(*parts[1:]).with_suffix(".py")


def source_hashes(package_dir: Path = _PACKAGE_DIR) -> dict[str, str]:
    """SHA-256 of each compiled module's source, as the manifest records them."""
    return {m: hashlib.sha256(source_path(m, package_dir).read_bytes()).hexdigest()
            for m in MODULES}


def interpreter_tag() -> str:
    """The interpreter a build is for: implementation, version and extension suffix."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return f"{sys.implementation.cache_tag}{suffix}"


def _decide(package_dir: Path, environ: dict[str, str] | os._Environ[str]) -> PathStatus:
    if environ.get("SIM_PURE", "") not in ("", "0"):
        return PathStatus(False, "SIM_PURE is set")
    manifest = package_dir / MANIFEST
    if not manifest.is_file():
        return PathStatus(False, "not compiled: no C build was made at install")
    try:
        built = json.loads(manifest.read_text())
        tag, hashes = str(built["interpreter"]), dict(built["sources"])
    except (OSError, ValueError, KeyError, TypeError):
        return PathStatus(False, f"not compiled: {manifest} is unreadable")
    if tag != interpreter_tag():
        return PathStatus(False, f"not compiled for this interpreter (built for {tag})")
    for module, digest in source_hashes(package_dir).items():
        if hashes.get(module) != digest:
            where = source_path(module, package_dir).relative_to(package_dir.parent)
            return PathStatus(False, f"compiled modules are stale: {where} changed since "
                                     "the build (pip install -e . rebuilds them)")
    for module in (*MODULES, f"{GROUP}__mypyc"):
        stem = source_path(module, package_dir).with_suffix("")
        if not any(Path(f"{stem}{s}").is_file() for s in importlib.machinery.EXTENSION_SUFFIXES):
            return PathStatus(False, f"not compiled: no extension module for {module}")
    return PathStatus(True, "built from these sources")


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the compiled modules' sources, never their extension modules."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        source = source_path(fullname)
        return importlib.util.spec_from_file_location(
            fullname, source, loader=importlib.machinery.SourceFileLoader(fullname, str(source)))


_STATUS: PathStatus | None = None


def install() -> PathStatus:
    """Decide this process's path once; on the pure path, put the source finder first."""
    global _STATUS
    if _STATUS is None:
        _STATUS = _decide(_PACKAGE_DIR, os.environ)
        if not _STATUS.compiled:
            sys.meta_path.insert(0, _SourceFinder())
    return _STATUS


def status() -> PathStatus:
    """Which path this process runs."""
    return install()


install()

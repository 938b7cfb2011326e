"""The compiled hot path: chosen only while it matches its sources, and the same results.

``setup.py`` compiles the modules of ``sim._compiled.MODULES`` with mypyc; ``sim`` loads
them compiled only if the build's manifest matches every source (else all from source),
and ``SIM_PURE=1`` forces the pure path. Where the suite expects a build (CI sets
``OMNISQL_REQUIRE_COMPILED``, as ``scripts/test.sh`` does on a machine with a C
compiler), a missing build fails these tests instead of skipping them.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sim_helpers import ROOT

from sim import _compiled, path_status

PACKAGE = ROOT / "sim"
EXTENSION = importlib.machinery.EXTENSION_SUFFIXES[0]  # .cpython-311-x86_64-linux-gnu.so
SHARED_LIB = _compiled.GROUP.rsplit(".", 1)[1] + "__mypyc"  # mypyc's shared library


def require_compiled() -> None:
    status = path_status()
    if status.compiled:
        return
    if os.environ.get("OMNISQL_REQUIRE_COMPILED", "") not in ("", "0"):
        pytest.fail(f"the compiled path is required here but not in use: {status.reason}")
    pytest.skip(f"no compiled path: {status.reason}")


def _python(code: str, *, env: dict[str, str] | None = None,
            path: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SIM_PURE"}
    if path is not None:
        environ["PYTHONPATH"] = f"{path}{os.pathsep}{ROOT}"
    environ.update(env or {})
    return subprocess.run([sys.executable, "-c", code], cwd=path or ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


LOADED = ("import json, sys, sim; from sim._compiled import MODULES; "
          "[__import__(m) for m in MODULES]; "
          "print(json.dumps({'status': [sim.path_status().compiled, sim.path_status().reason],"
          " 'files': [sys.modules[m].__file__ for m in MODULES]}))")


def _loaded(**kwargs) -> dict:
    proc = _python(LOADED, **kwargs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --- the decision, on a copy of the package's sources -----------------------------------

@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the compiled modules' sources with a manifest matching them and an
    (empty) extension file beside each: what a build leaves."""
    copy = tmp_path / "sim"
    for module in _compiled.MODULES:
        source = _compiled.source_path(module)
        target = _compiled.source_path(module, copy)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        target.with_suffix(EXTENSION).touch()
    (copy / f"{SHARED_LIB}{EXTENSION}").touch()  # the group's shared library
    (copy / _compiled.MANIFEST).write_text(json.dumps(
        {"interpreter": _compiled.interpreter_tag(), "sources": _compiled.source_hashes(copy)}))
    return copy


def test_a_build_matching_its_sources_is_chosen(package: Path) -> None:
    assert _compiled._decide(package, {}) == _compiled.PathStatus(True, "built from these sources")


def test_sim_pure_forces_the_pure_path(package: Path) -> None:
    for value in ("1", "yes"):
        assert _compiled._decide(package, {"SIM_PURE": value}).reason == "SIM_PURE is set"
    assert _compiled._decide(package, {"SIM_PURE": "0"}).compiled


def test_an_edited_source_makes_the_whole_build_stale(package: Path) -> None:
    station = _compiled.source_path("sim.kernel.station", package)
    station.write_text(station.read_text() + "\n# edited after the build\n")
    status = _compiled._decide(package, {})
    assert not status.compiled
    assert "stale: sim/kernel/station.py changed since the build" in status.reason


def test_no_manifest_another_interpreter_or_a_missing_module_is_the_pure_path(
        package: Path) -> None:
    manifest = package / _compiled.MANIFEST
    built = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**built, "interpreter": "cpython-299.so"}))
    assert "built for cpython-299.so" in _compiled._decide(package, {}).reason
    manifest.write_text("{not json")
    assert "unreadable" in _compiled._decide(package, {}).reason
    manifest.write_text(json.dumps(built))
    extension = _compiled.source_path("sim.model.client", package).with_suffix(
        EXTENSION)
    extension.unlink()
    assert "no extension module for sim.model.client" in _compiled._decide(package, {}).reason
    extension.touch()
    (package / f"{SHARED_LIB}{EXTENSION}").unlink()
    assert f"no extension module for sim.{SHARED_LIB}" in _compiled._decide(
        package, {}).reason
    manifest.unlink()
    assert _compiled._decide(package, {}).reason == "not compiled: no C build was made at install"


def test_the_notice_is_one_line_naming_the_path() -> None:
    assert _compiled.PathStatus(True, "x").notice() == "sim: compiled hot path (mypyc)"
    assert (_compiled.PathStatus(False, "SIM_PURE is set").notice()
            == "sim: pure-Python path (SIM_PURE is set)")


# --- the import system, in fresh interpreters --------------------------------------------

def test_sim_pure_loads_every_module_from_its_source() -> None:
    loaded = _loaded(env={"SIM_PURE": "1"})
    assert loaded["status"] == [False, "SIM_PURE is set"]
    for module, file in zip(_compiled.MODULES, loaded["files"]):
        assert Path(file) == _compiled.source_path(module), module


def test_a_build_loads_every_module_compiled() -> None:
    require_compiled()
    loaded = _loaded()
    assert loaded["status"] == [True, "built from these sources"]
    for module, file in zip(_compiled.MODULES, loaded["files"]):
        # (mypyc names some modules' __file__ under a doubled sim/sim/: only the name is
        # checked; the stale and pure checks compare full paths to the sources)
        assert Path(file).name == module.rsplit(".", 1)[1] + EXTENSION, (module, file)


def test_a_stale_build_never_shadows_an_edited_source(tmp_path: Path) -> None:
    """A copy of the built package with one source edited: every module loads from source
    (all or none), and the edit is what runs."""
    require_compiled()
    shutil.copytree(PACKAGE, tmp_path / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    assert _loaded(path=tmp_path)["status"][0] is True  # the copy, unedited, runs compiled
    events = _compiled.source_path("sim.kernel.events", tmp_path / "sim")
    events.write_text(events.read_text() + "\nEDITED_AFTER_THE_BUILD = True\n")
    loaded = _loaded(path=tmp_path)
    assert loaded["status"][0] is False
    assert "sim/kernel/events.py changed since the build" in loaded["status"][1]
    for module, file in zip(_compiled.MODULES, loaded["files"]):
        assert Path(file) == _compiled.source_path(module, tmp_path / "sim"), module
    proc = _python("import sim.kernel.events as e; print(e.EDITED_AFTER_THE_BUILD)",
                   path=tmp_path)
    assert proc.stdout.strip() == "True", proc.stderr


# --- equivalence -------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_every_shipped_scenario_gives_the_same_results_compiled_and_pure(tmp_path: Path) -> None:
    """Every scenario under scenarios/ at seed 1, one replication, through both paths: the
    same exit code, a byte-identical summary.json and identical window arrays, fault marks,
    RPO losses and facts (``scripts/fingerprint.py``'s parts: SHA-256 of each).

    The two paths run side by side, niced so that a stand-in's tests on the other xdist
    worker keep their CPU; the pure path, about three times the compiled one's work, on
    two processes (the suite waits on stand-ins for most of its time, so the CPU is there,
    and this test is one of its two longest serial parts)."""
    require_compiled()
    runs = {}
    for name, env, jobs in (("pure", {"SIM_PURE": "1"}, "2"), ("compiled", {}, "1")):
        out = tmp_path / f"{name}.json"
        environ = {k: v for k, v in os.environ.items() if k != "SIM_PURE"} | env
        runs[name] = (out, subprocess.Popen(
            [sys.executable, "scripts/fingerprint.py", "write", str(out), "--jobs", jobs,
             "--replications", "1"], cwd=ROOT, env=environ, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(10)))
    prints = {}
    try:
        for name, (out, proc) in runs.items():
            _, stderr = proc.communicate(timeout=2300)
            assert proc.returncode == 0, stderr
            prints[name] = json.loads(out.read_text())
    finally:
        for _, proc in runs.values():
            if proc.poll() is None:
                proc.kill()
    pure, compiled = prints["pure"], prints["compiled"]
    assert sorted(pure) == sorted(compiled)
    assert len(pure) >= 30  # every shipped scenario, textbook ones included
    moved = {path: sorted(part for part in pure[path]
                          if pure[path][part] != compiled[path].get(part)) for path in pure}
    assert {path: parts for path, parts in moved.items() if parts} == {}
    assert all(any(p.startswith("arrays.") for p in parts) for parts in pure.values())

"""The shared core: the schema split by noun, re-exported whole by ``labcore.scenario``."""

import importlib

import pytest

import labcore.scenario

NOUNS = ("run", "topology", "workload", "faults", "mitigations", "releases", "checks", "spec")


@pytest.mark.parametrize("noun", NOUNS)
def test_each_noun_module_is_re_exported_by_the_package(noun: str) -> None:
    module = importlib.import_module(f"labcore.scenario.{noun}")
    public = [n for n in module.__all__ if not n.startswith("check_")]
    missing = [n for n in public if getattr(labcore.scenario, n, None) is not getattr(module, n)]
    assert not missing, f"labcore.scenario does not re-export {missing} from {noun}"
    assert set(public) <= set(labcore.scenario.__all__)

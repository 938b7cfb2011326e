"""Suite-wide: how the tests are shared out between pytest-xdist workers.

``bash scripts/test.sh`` runs the suite on two workers (``-n 2 --dist loadgroup``): most of
its time is spent waiting on stand-ins (a chaos run's timeline, a Locust load), not
computing. A stand-in costs seconds to start and is shared by the tests that use it, so the
tests go out in groups, each run whole by one worker:

- every test using one of the session-wide stand-ins (or the npm schema cache) is in that
  fixture's group, so each worker starts at most one of each;
- every other test is in its module's group, so a module-scoped stand-in starts once.

The longest groups start first (:data:`FIRST`), so that no worker is still at the start
of one when the others have run out of work: the chaos stand-in's end-to-end runs (about
25 minutes of one worker, mostly waiting on their timelines) and the compiled-path
equivalence test (every shipped scenario, both paths). pytest-xdist's loadgroup sends out
the groups with the most tests first unless told ``--no-loadscope-reorder``, which
``scripts/test.sh`` passes; then the groups go out in the workers' collection order,
which this hook sets.

Without xdist (a plain ``python -m pytest``) nothing changes.
"""

from __future__ import annotations

import pytest

#: Session-scoped fixtures that start something expensive or write a shared directory.
SHARED_FIXTURES = ("chaos_sandbox", "sandbox", "standin", "argo_models")
#: The groups sent out first, longest first; the others follow in collection order.
FIRST = ("chaos_sandbox", "tests/test_sim_compiled.py")


def xdist_group_of(item: pytest.Item) -> str:
    """The group a test runs in: its shared fixture's name, else its module's path."""
    fixtures = getattr(item, "fixturenames", ())
    for name in SHARED_FIXTURES:
        if name in fixtures:
            return name
    return item.nodeid.split("::", 1)[0]


def in_dispatch_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with the groups of :data:`FIRST` in front, in that order; every other
    test, and the tests within a group, keep their order."""
    rank = {group: i for i, group in enumerate(FIRST)}
    return sorted(items, key=lambda item: rank.get(xdist_group_of(item), len(FIRST)))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the one dispatched
        items[:] = in_dispatch_order(items)

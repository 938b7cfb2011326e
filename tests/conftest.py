"""Suite-wide: how the tests are shared out between pytest-xdist workers.

``bash scripts/test.sh`` runs the suite on two workers (``-n 2 --dist loadgroup``): most of
its time is spent waiting on stand-ins (a chaos run's timeline, a Locust load), not
computing. A stand-in costs seconds to start and is shared by the tests that use it, so the
tests go out in groups, each run whole by one worker:

- every test using one of the session-wide stand-ins (or the npm schema cache) is in that
  fixture's group, so each worker starts at most one of each;
- every other test is in its module's group, so a module-scoped stand-in starts once.

Without xdist (a plain ``python -m pytest``) nothing changes.
"""

from __future__ import annotations

import pytest

#: Session-scoped fixtures that start something expensive or write a shared directory.
SHARED_FIXTURES = ("chaos_sandbox", "sandbox", "standin", "argo_models")


def xdist_group_of(item: pytest.Item) -> str:
    """The group a test runs in: its shared fixture's name, else its module's path."""
    fixtures = getattr(item, "fixturenames", ())
    for name in SHARED_FIXTURES:
        if name in fixtures:
            return name
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))

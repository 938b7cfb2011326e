"""Locust load tests driven by the lab's scenario files.

``locustfile.py`` is the only module that imports Locust; everything else here is pure
Python the tests (and the simulator's process) can import without gevent's monkey
patching:

:mod:`~loadtests.targets`
    where the load may go (allowlist, sandbox state file, API keys).
:mod:`~loadtests.shapes`
    a scenario's workload as rates over time, user counts and a shape table.
:mod:`~loadtests.queries`
    the query mix: ``connector.object`` targets, Zipf hot keys and cold keys, as SQL.
:mod:`~loadtests.recorder`
    per-window facts of the client's requests, binned like the simulator's recorder.
:mod:`~loadtests.gates`
    the SLO gate: the scenario's checks evaluated with :func:`labcore.checks.passes`.
:mod:`~loadtests.faults`
    the scenario's fault timeline replayed through the sandbox fault API (opt-in).
:mod:`~loadtests.convert`
    Locust CSV history → the simulator's window table, and staging-vs-simulated plots.

See ``docs/loadtests.md``.
"""

__all__: list[str] = []  # a package of modules; each module lists its own public names

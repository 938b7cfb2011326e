"""The lab's shared core: one vocabulary for the simulator, the chaos extension and Locust.

``sim/``, ``chaos/chaosomnisql/`` and ``loadtests/`` import this package as equals; it
imports none of them. It holds what the three runners must agree on:

- :mod:`labcore.units`, :mod:`labcore.distributions`: values with units, distributions;
- :mod:`labcore.scenario` (the schema) and :mod:`labcore.scenario_file` (reading YAML);
- :mod:`labcore.facts`: the per-window facts format every runner records;
- :mod:`labcore.metrics`: every metric's one implementation, the RTO rule included;
- :mod:`labcore.checks`: checks and their one evaluation rule.
"""

__all__: list[str] = []

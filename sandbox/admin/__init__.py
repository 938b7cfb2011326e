"""The control plane: admin API (runbook actions), fault API (the lab's), and their CLI.

`python -m sandbox.admin ...` is the CLI; the service itself is `sandbox.admin.app`.
"""

__all__: list[str] = []

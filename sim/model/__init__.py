"""The model of OmniSQL's data plane, one module per component.

``system.System`` builds and wires: workload → client → gateway → engine → cache →
connectors → providers, in zones, with faults on the timeline.
"""

from .system import FaultMark, System, targets_of

__all__ = ["FaultMark", "System", "targets_of"]

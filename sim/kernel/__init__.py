"""The simulation kernel: the event queue and clock (``events.Kernel``), the environment
(SimPy's, on that queue and clock), random streams, light events, service stations and
the recorder.

Nothing here knows about gateways, caches or SaaS providers: the kernel is the small,
domain-free core that the model's components are built from.
"""

from .environment import Environment
from .events import schedule
from .recorder import Recorder, Window
from .station import Station
from .streams import Streams, derive_seed

__all__ = ["Environment", "Recorder", "Station", "Streams", "Window", "derive_seed",
           "schedule"]

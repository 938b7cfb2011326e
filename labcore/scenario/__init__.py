"""The scenario schema: one strict, immutable description of a run.

A scenario file is the single source of truth for the simulator, the Chaos Toolkit
experiments and the Locust loads. ``workload``, ``slo`` and ``checks`` hold no
simulator concepts, so that all three runners read them the same way; ``topology`` is
the system's shape and ``faults`` its timeline. Values carry units in YAML and are
converted here, once, to seconds, requests per second and fractions.

Loading (YAML with line numbers, profiles and ``--set`` overrides) lives in
:mod:`labcore.scenario_file`; this package only defines what a valid scenario is, one
module per noun: :mod:`~.run` (run and SLO), :mod:`~.topology`, :mod:`~.workload`,
:mod:`~.faults`, :mod:`~.mitigations`, :mod:`~.releases` (releases and failover),
:mod:`~.checks`, and :mod:`~.spec` (the whole scenario and its cross-references).
"""

from .base import (
    BACKOFF_STRATEGIES,
    RETRIABLE_OUTCOMES,
    Duration,
    Fraction,
    Quantity,
    Rate,
)
from .checks import SCOPES, CheckSpec, RequireSpec, Scope
from .faults import (
    AzLoss,
    CacheFlush,
    Fault,
    GrayFailure,
    LatencyInjection,
    ProviderOutage,
    RegionLoss,
    TokenRevocation,
    TrafficSurge,
)
from .mitigations import (
    CacheScale,
    Coalescing,
    Mitigation,
    RetryPolicy,
    SoftCache,
    TokenRefresh,
    UserCapMitigation,
    XFetch,
)
from .releases import (
    DEPENDENCIES,
    BlueGreen,
    Canary,
    CanaryAnalysis,
    Dependency,
    Failover,
    MetadataReplication,
    NewVersion,
    RecoveryTarget,
    Release,
    ResiliencePolicy,
)
from .run import SLO, IncidentSpan, RunSpec
from .spec import Scenario
from .topology import (
    Autoscaling,
    Cache,
    ConnectorRetries,
    Connectors,
    ControlPlane,
    Engine,
    Gateway,
    HealthCheck,
    Metadata,
    OutlierDetection,
    Provider,
    RateLimit,
    Retries,
    Topology,
    UserCap,
)
from .workload import ClosedLoop, Diurnal, ProfilePoint, Tenant, Workload

__all__ = [
    "Scenario",
    "IncidentSpan",
    "RunSpec",
    "SLO",
    "Topology",
    "Gateway",
    "HealthCheck",
    "Retries",
    "UserCap",
    "Engine",
    "Cache",
    "Connectors",
    "ControlPlane",
    "ConnectorRetries",
    "Provider",
    "RateLimit",
    "Metadata",
    "Workload",
    "Tenant",
    "ProfilePoint",
    "Diurnal",
    "Fault",
    "AzLoss",
    "ProviderOutage",
    "LatencyInjection",
    "TrafficSurge",
    "CacheFlush",
    "TokenRevocation",
    "RegionLoss",
    "GrayFailure",
    "OutlierDetection",
    "Autoscaling",
    "ClosedLoop",
    "Release",
    "Canary",
    "CanaryAnalysis",
    "NewVersion",
    "BlueGreen",
    "Failover",
    "MetadataReplication",
    "ResiliencePolicy",
    "RecoveryTarget",
    "DEPENDENCIES",
    "Dependency",
    "Mitigation",
    "UserCapMitigation",
    "SoftCache",
    "Coalescing",
    "XFetch",
    "CacheScale",
    "TokenRefresh",
    "RetryPolicy",
    "CheckSpec",
    "RequireSpec",
    "SCOPES",
    "Scope",
    "Duration",
    "Rate",
    "Fraction",
    "Quantity",
    "BACKOFF_STRATEGIES",
    "RETRIABLE_OUTCOMES",
]

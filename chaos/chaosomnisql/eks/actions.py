"""Infrastructure faults on EKS staging, delegated to chaostoolkit-kubernetes and -aws.

Zone selection is always by the well-known label ``topology.kubernetes.io/zone`` (nodes)
or the EC2 placement AZ, so a fault can only touch the zone it names. The extensions are
imported when an action runs: the package installs and discovers without them.
"""

from __future__ import annotations

import importlib
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from ..settings import setting

__all__ = [
    "fail_over_cache",
    "fail_over_metadata",
    "lose_region",
    "lose_zone",
    "restore_zone",
]

ZONE_LABEL = "topology.kubernetes.io/zone"
ZONE_METHODS = ("k8s", "ec2", "fis")


def zone_selector(zone: str) -> str:
    """The node label selector of one zone: ``topology.kubernetes.io/zone=<zone>``."""
    if not zone or "," in zone or "=" in zone:
        raise ActivityFailed(f"bad zone {zone!r}")
    return f"{ZONE_LABEL}={zone}"


def lose_zone(zone: str, configuration: Configuration = None,
              secrets: Secrets = None) -> Any:
    """Lose ``zone``: cordon and drain its nodes (``k8s``), stop its instances (``ec2``) or
    start an FIS AZ power interruption (``fis``), per ``omnisql_zone_method``."""
    method = _method(configuration)
    if method == "k8s":
        nodes = _mod("chaosk8s.node.actions")
        cordoned = nodes.cordon_node(label_selector=zone_selector(zone), secrets=secrets)
        drained = nodes.drain_nodes(label_selector=zone_selector(zone), secrets=secrets,
                                    timeout=int(setting(configuration, "drain_timeout", 120)))
        return {"cordoned": cordoned, "drained": drained}
    if method == "ec2":
        return _mod("chaosaws.ec2.actions").stop_instances(
            az=zone, configuration=configuration, secrets=secrets)
    return _mod("chaosaws.fis.actions").start_availability_zone_power_interruption_scenario(
        az=zone, tags=setting(configuration, "fis_tags", "omnisql-lab=chaos"),
        configuration=configuration, secrets=secrets)


def restore_zone(zone: str, configuration: Configuration = None,
                 secrets: Secrets = None) -> Any:
    """Undo :func:`lose_zone` with the same method: uncordon, start instances, stop FIS."""
    method = _method(configuration)
    if method == "k8s":
        return _mod("chaosk8s.node.actions").uncordon_node(
            label_selector=zone_selector(zone), secrets=secrets)
    if method == "ec2":
        return _mod("chaosaws.ec2.actions").start_instances(
            az=zone, configuration=configuration, secrets=secrets)
    return _mod("chaosaws.fis.actions").stop_experiments_by_tags(
        tags=setting(configuration, "fis_tags", "omnisql-lab=chaos"),
        configuration=configuration, secrets=secrets)


def fail_over_cache(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """ElastiCache ``test_failover`` on ``omnisql_elasticache_group``/``_shard``."""
    return _mod("chaosaws.elasticache.actions").test_failover(
        replication_group_id=_required(configuration, "elasticache_group"),
        node_group_id=str(setting(configuration, "elasticache_shard", "0001")),
        configuration=configuration, secrets=secrets)


def lose_region(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Not injected on EKS: losing a whole region of staging is a disaster-recovery game
    day run by people, not an experiment the lab starts."""
    raise ActivityFailed("eks: the lab does not take a whole region down (a DR game day)")


def fail_over_metadata(configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """Multi-AZ RDS failover: ``reboot_db_instance(force_failover=True)``."""
    return _mod("chaosaws.rds.actions").reboot_db_instance(
        db_instance_identifier=_required(configuration, "rds_instance"), force_failover=True,
        configuration=configuration, secrets=secrets)


def _method(configuration: Configuration) -> str:
    method = str(setting(configuration, "zone_method", "k8s"))
    if method not in ZONE_METHODS:
        raise ActivityFailed(f"omnisql_zone_method {method!r} is not one of {list(ZONE_METHODS)}")
    return method


def _required(configuration: Configuration, key: str) -> str:
    value = setting(configuration, key)
    if not value:
        raise ActivityFailed(f"the eks target needs omnisql_{key} in the configuration")
    return str(value)


def _mod(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ActivityFailed(f"{name} is not installed: pip install -e 'chaos/[eks]'") from None

"""Target ``eks``: real staging on EKS, through chaostoolkit-kubernetes and chaostoolkit-aws.

Configuration (besides the common ``omnisql_*`` keys in :mod:`chaosomnisql.settings`):
``omnisql_zone_method`` (``k8s`` cordon+drain, default; ``ec2`` stop instances; ``fis`` AZ
power interruption), ``omnisql_drain_timeout`` (seconds, default 120),
``omnisql_elasticache_group`` / ``omnisql_elasticache_shard``, ``omnisql_rds_instance``,
``omnisql_fis_tags`` (tags marking the lab's FIS experiments, to stop them on restore).
Credentials reach chaosk8s/chaosaws through the experiment's ``secrets`` as usual.
"""

__all__: list[str] = []

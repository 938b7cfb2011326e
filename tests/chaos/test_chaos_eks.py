"""The ``eks`` target cannot run here: check it makes the right calls with the right zone
selectors (chaosk8s and chaosaws mocked; the EC2 path also against moto)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from chaosomnisql import actions
from chaosomnisql.eks.actions import zone_selector

REPO = Path(__file__).resolve().parents[2]
EKS = {"omnisql_target": "eks", "omnisql_rds_instance": "omnisql-meta",
       "omnisql_elasticache_group": "omnisql-cache", "aws_region": "us-east-1"}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def fake(self, name: str, result: Any = None) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return result if result is not None else [name]
        return call


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    import chaosaws.ec2.actions as ec2
    import chaosaws.elasticache.actions as elasticache
    import chaosaws.fis.actions as fis
    import chaosaws.rds.actions as rds
    import chaosk8s.node.actions as node

    r = Recorder()
    for mod, names in ((node, ("cordon_node", "drain_nodes", "uncordon_node")),
                       (ec2, ("stop_instances", "start_instances")),
                       (fis, ("start_availability_zone_power_interruption_scenario",
                              "stop_experiments_by_tags")),
                       (elasticache, ("test_failover",)), (rds, ("reboot_db_instance",))):
        for name in names:
            monkeypatch.setattr(mod, name, r.fake(name))
    return r


def test_zone_loss_cordons_and_drains_only_that_zones_nodes(rec: Recorder) -> None:
    actions.lose_zone("us-east-1a", configuration=EKS, secrets=None)
    assert [name for name, _ in rec.calls] == ["cordon_node", "drain_nodes"]
    for _, kwargs in rec.calls:
        assert kwargs["label_selector"] == "topology.kubernetes.io/zone=us-east-1a"
    actions.restore_zone("us-east-1a", configuration=EKS, secrets=None)
    assert rec.calls[-1] == ("uncordon_node", {
        "label_selector": "topology.kubernetes.io/zone=us-east-1a", "secrets": None})


def test_zone_loss_by_ec2_and_fis(rec: Recorder) -> None:
    actions.lose_zone("us-east-1b", configuration={**EKS, "omnisql_zone_method": "ec2"})
    assert rec.calls[-1][0] == "stop_instances" and rec.calls[-1][1]["az"] == "us-east-1b"
    actions.restore_zone("us-east-1b", configuration={**EKS, "omnisql_zone_method": "ec2"})
    assert rec.calls[-1][0] == "start_instances" and rec.calls[-1][1]["az"] == "us-east-1b"
    actions.lose_zone("us-east-1c", configuration={**EKS, "omnisql_zone_method": "fis"})
    name, kwargs = rec.calls[-1]
    assert name == "start_availability_zone_power_interruption_scenario"
    assert kwargs["az"] == "us-east-1c"
    with pytest.raises(ActivityFailed, match="zone_method"):
        actions.lose_zone("us-east-1c", configuration={**EKS, "omnisql_zone_method": "nuke"})


def test_cache_and_metadata_failover_use_chaosaws(rec: Recorder) -> None:
    actions.fail_over_cache(configuration=EKS)
    assert rec.calls[-1] == ("test_failover", {
        "replication_group_id": "omnisql-cache", "node_group_id": "0001",
        "configuration": EKS, "secrets": None})
    actions.fail_over_metadata(configuration=EKS)
    name, kwargs = rec.calls[-1]
    assert name == "reboot_db_instance"
    assert kwargs["db_instance_identifier"] == "omnisql-meta"
    assert kwargs["force_failover"] is True
    with pytest.raises(ActivityFailed, match="omnisql_rds_instance"):
        actions.fail_over_metadata(configuration={"omnisql_target": "eks"})


def test_a_zone_selector_cannot_widen_to_other_zones() -> None:
    assert zone_selector("eu-west-1a") == "topology.kubernetes.io/zone=eu-west-1a"
    for bad in ("", "a,b", "zone=x"):
        with pytest.raises(ActivityFailed):
            zone_selector(bad)


def test_rds_failover_reaches_the_multi_az_instance_in_moto(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # (moto 5.2 ignores the `availability-zone` filter chaosaws' stop_instances(az=) uses,
    # so the EC2 path is covered by the mocked-call test above, not here.)
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        rds = boto3.client("rds", region_name="us-east-1")
        rds.create_db_instance(DBInstanceIdentifier="omnisql-meta", DBInstanceClass="db.t3.micro",
                               Engine="postgres", MultiAZ=True, AllocatedStorage=20,
                               MasterUsername="lab", MasterUserPassword="not-a-real-secret")
        answer = actions.fail_over_metadata(configuration=EKS)
        with pytest.raises(Exception, match="DBInstanceNotFound"):
            actions.fail_over_metadata(configuration={**EKS, "omnisql_rds_instance": "other"})
    assert answer["DBInstance"]["DBInstanceIdentifier"] == "omnisql-meta"
    assert answer["DBInstance"]["MultiAZ"] is True


@pytest.mark.parametrize("experiment", sorted((REPO / "chaos/experiments").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_chaos_validate_with_the_eks_target(experiment: Path) -> None:
    env = {**os.environ, "OMNISQL_TARGET": "eks", "OMNISQL_API_KEYS": "{}"}
    proc = subprocess.run(
        [sys.executable, "-m", "chaostoolkit", "--no-version-check", "--no-log-file",
         "validate", str(experiment)], capture_output=True, text=True, env=env, cwd=REPO,
        timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "look valid" in proc.stdout + proc.stderr

"""The MLflow and Databricks platform constructs, each synthesized alone in a bare stack.

Each construct gets only its one props object (plain values, string ids and ARNs) and is read
back through its handles. The whole-stack wiring is tested in tests/stacks/.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from cdktf import App, TerraformOutput, TerraformStack
from cdktf import Testing as CdktfTesting  # aliased: pytest would collect a class named Test*
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from cdktf_cdktf_provider_databricks.provider import DatabricksProvider
from cdktf_cdktf_provider_random.provider import RandomProvider

from constructs_lib.aws_provider import aws_provider
from constructs_lib.cache import Cache, CacheProps
from constructs_lib.certificate import DnsCertificate, DnsCertificateProps, alias_record
from constructs_lib.compute import MlflowServers, MlflowServersProps
from constructs_lib.database import Database, DatabaseProps
from constructs_lib.databricks_access import (
    AccessEntry,
    NotebooksFolderAccess,
    NotebooksFolderAccessProps,
    SchemaGrant,
    SchemaGrantProps,
    access_control,
)
from constructs_lib.databricks_artifacts import (
    TrackedExperiment,
    TrackedExperimentProps,
    UnityCatalogModel,
    UnityCatalogModelProps,
)
from constructs_lib.databricks_jobs import (
    JobClusterSpec,
    NotebookJob,
    NotebookJobProps,
    NotebookTaskSpec,
    ScheduleSpec,
    chained,
)
from constructs_lib.load_balancer import LoadBalancer, LoadBalancerProps
from constructs_lib.network import INTERFACE_ENDPOINTS, Network, NetworkProps
from constructs_lib.observability import AlarmSpec, Alerts, AlertsProps, log_group
from constructs_lib.references import address
from constructs_lib.security import InstanceRole, InstanceRoleProps, SecurityGroups, SecurityGroupsProps
from constructs_lib.storage import (
    ArtifactBucket,
    ArtifactBucketProps,
    LogBucket,
    LogBucketProps,
    bucket_suffix,
)

STACK = "platform"  # not "unit": skip_checks keeps per-path state across apps (see the leak test)
ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k"
CERT = f"arn:aws:acm:eu-west-1:{ACCOUNT}:certificate/12345678-1234-1234-1234-123456789012"
ZONES_2 = ("eu-west-1a", "eu-west-1b")
ZONES_3 = ("eu-west-1a", "eu-west-1b", "eu-west-1c")


def aws_stack(name: str = STACK) -> TerraformStack:
    stack = TerraformStack(App(), name)
    aws_provider(stack, "eu-west-1", {"Project": "unit"})
    return stack


def databricks_stack() -> TerraformStack:
    stack = TerraformStack(App(), STACK)
    DatabricksProvider(stack, "databricks", host="https://example.cloud.databricks.com")
    return stack


def synth(stack: TerraformStack, **exposed: str) -> dict[str, Any]:
    """The stack's JSON; each ``exposed`` attribute (a token) becomes an output, read back resolved."""
    for name, value in exposed.items():
        TerraformOutput(stack, name, value=value)
    data: dict[str, Any] = json.loads(CdktfTesting.synth(stack))
    return data


def exposed(out: dict[str, Any], name: str) -> Any:
    return out["output"][name]["value"]


def addresses(out: dict[str, Any], block: str = "resource") -> set[str]:
    return {f"{rtype}.{name}" for rtype, items in out.get(block, {}).items() for name in items}


# --- network ---------------------------------------------------------------------------------------


def network_props(zones: tuple[str, ...], single_nat: bool, flow_log_group_arn: str) -> NetworkProps:
    n = len(zones)
    return NetworkProps(
        name="unit",
        vpc_cidr="10.0.0.0/16",
        availability_zones=zones,
        public_subnet_cidrs=tuple(f"10.0.{i}.0/24" for i in range(n)),
        private_subnet_cidrs=tuple(f"10.0.{10 + i}.0/24" for i in range(n)),
        database_subnet_cidrs=tuple(f"10.0.{20 + i}.0/24" for i in range(n)),
        single_nat_gateway=single_nat,
        flow_log_group_arn=flow_log_group_arn,
        partition="aws",
        region="eu-west-1",
        account_id=ACCOUNT,
    )


NETWORK_ADDRESSES = {
    "aws_vpc.main",
    "aws_default_security_group.default",
    "aws_internet_gateway.main",
    "aws_subnet.public",
    "aws_subnet.private",
    "aws_subnet.database",
    "aws_eip.nat",
    "aws_nat_gateway.main",
    "aws_route_table.public",
    "aws_route_table.private",
    "aws_route_table.database",
    "aws_route_table_association.public",
    "aws_route_table_association.private",
    "aws_route_table_association.database",
    "aws_iam_role.vpc_flow_logs",
    "aws_iam_role_policy.vpc_flow_logs",
    "aws_flow_log.main",
}


def build_network(zones: tuple[str, ...], single_nat: bool) -> tuple[TerraformStack, Network]:
    stack = aws_stack()
    flow_logs = log_group(stack, "flow", name="/unit/flow", kms_key_arn=KEY, retention_days=30)
    network = Network(stack, "network", network_props(zones, single_nat, flow_logs.arn))
    return stack, network


@pytest.mark.parametrize(
    ("zones", "single_nat", "nat_count"),
    [(ZONES_2, True, 1), (ZONES_3, True, 1), (ZONES_3, False, 3)],
)
def test_network_alone(zones: tuple[str, ...], single_nat: bool, nat_count: int) -> None:
    stack, network = build_network(zones, single_nat)
    out = synth(stack)
    assert addresses(out) == NETWORK_ADDRESSES | {"aws_cloudwatch_log_group.flow"}
    res = out["resource"]
    n = len(zones)
    assert network.zone_count == n and network.nat_gateway_count == nat_count
    for tier in ("public", "private", "database"):
        subnet = res["aws_subnet"][tier]
        assert subnet["count"] == n
        assert subnet["map_public_ip_on_launch"] is False
        assert subnet["availability_zone"] == f"${{element({json.dumps(list(zones))}, count.index)}}"
        assert res["aws_route_table_association"][tier]["count"] == n
    assert res["aws_eip"]["nat"]["count"] == nat_count
    assert res["aws_nat_gateway"]["main"]["count"] == nat_count
    assert res["aws_route_table"]["private"]["count"] == n
    # Each zone's private table routes out through its own NAT gateway, or wraps around to the single one.
    route = res["aws_route_table"]["private"]["route"][0]
    assert route["nat_gateway_id"] == "${element(aws_nat_gateway.main[*].id, count.index)}"
    # The database tier has no route out; the public tier goes out through the internet gateway.
    assert "route" not in res["aws_route_table"]["database"]
    assert res["aws_route_table"]["public"]["route"][0]["gateway_id"] == "${aws_internet_gateway.main.id}"
    # The handle for what must reach the internet from the private subnets as soon as it exists.
    assert sorted(address(r) for r in network.private_egress) == [
        "aws_nat_gateway.main",
        "aws_route_table.private",
        "aws_route_table_association.private",
    ]
    # Flow logs go to the log group handed in, through a role allowed to write only there.
    assert res["aws_flow_log"]["main"]["log_destination"] == "${aws_cloudwatch_log_group.flow.arn}"
    policy = json.loads(res["aws_iam_role_policy"]["vpc_flow_logs"]["policy"])
    assert policy["Statement"][0]["Resource"] == "${aws_cloudwatch_log_group.flow.arn}:*"
    # Confused deputy: only this account's flow logs may assume the role (fix 10).
    trust = json.loads(res["aws_iam_role"]["vpc_flow_logs"]["assume_role_policy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:eu-west-1:{ACCOUNT}:vpc-flow-log/*"},
    }


def test_network_endpoints() -> None:
    stack, network = build_network(ZONES_2, single_nat=True)
    endpoints = network.add_endpoints("eu-west-1", "sg-0123456789abcdef0")
    out = synth(stack)
    expected = {"aws_vpc_endpoint.s3", *(f"aws_vpc_endpoint.{s}" for s in INTERFACE_ENDPOINTS)}
    assert addresses(out) == NETWORK_ADDRESSES | {"aws_cloudwatch_log_group.flow"} | expected
    assert set(endpoints) == {"s3", *INTERFACE_ENDPOINTS}
    eps = out["resource"]["aws_vpc_endpoint"]
    assert eps["s3"]["vpc_endpoint_type"] == "Gateway"
    assert eps["s3"]["service_name"] == "com.amazonaws.eu-west-1.s3"
    for service in INTERFACE_ENDPOINTS:
        ep = eps[service]
        assert ep["vpc_endpoint_type"] == "Interface"
        assert ep["private_dns_enabled"] is True
        assert ep["security_group_ids"] == ["sg-0123456789abcdef0"]
        assert ep["subnet_ids"] == "${aws_subnet.private[*].id}"


# --- security --------------------------------------------------------------------------------------


DB_USERS_RULES = (
    "aws_vpc_security_group_egress_rule.db_users_to_database",
    "aws_vpc_security_group_egress_rule.db_users_https_out",
    "aws_vpc_security_group_ingress_rule.database_from_db_users",
    "aws_vpc_security_group_ingress_rule.endpoints_from_db_users",
)


def all_rules(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    res = out["resource"]
    rules: dict[str, dict[str, Any]] = {}
    for rtype in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"):
        rules |= res.get(rtype, {})
    return rules


@pytest.mark.parametrize("cache", [True, False])
def test_security_groups_alone(cache: bool) -> None:
    stack = aws_stack()
    cidrs = ("10.0.0.0/8", "192.168.0.0/16")
    groups = SecurityGroups(
        stack,
        "sg",
        SecurityGroupsProps(name="unit", vpc_id="vpc-1", ingress_cidrs=cidrs, cache=cache),
    )
    out = synth(stack, app_id=groups.app_id, db_users_id=groups.db_users_id)
    # HTTPS from each allowed network, and HTTP only for the redirect.
    alb_ingress = {f"aws_vpc_security_group_ingress_rule.alb_http_{i}" for i in range(len(cidrs))}
    alb_ingress |= {f"aws_vpc_security_group_ingress_rule.alb_https_{i}" for i in range(len(cidrs))}
    expected = {
        "aws_security_group.alb",
        "aws_security_group.mlflow_app",
        "aws_security_group.database",
        "aws_security_group.vpc_endpoints",
        "aws_security_group.db_users",
        "aws_vpc_security_group_egress_rule.alb_to_app",
        "aws_vpc_security_group_egress_rule.app_https_out",
        "aws_vpc_security_group_egress_rule.app_to_database",
        "aws_vpc_security_group_ingress_rule.app_from_alb",
        "aws_vpc_security_group_ingress_rule.database_from_app",
        "aws_vpc_security_group_ingress_rule.endpoints_from_app",
        *DB_USERS_RULES,
        *alb_ingress,
    }
    if cache:
        expected |= {
            "aws_security_group.elasticache",
            "aws_vpc_security_group_egress_rule.app_to_cache",
            "aws_vpc_security_group_ingress_rule.cache_from_app",
        }
    assert addresses(out) == expected
    assert (groups.cache_id is not None) == cache
    assert exposed(out, "app_id") == "${aws_security_group.mlflow_app.id}"
    assert exposed(out, "db_users_id") == "${aws_security_group.db_users.id}"
    # The handle the database-user function's call waits for: exactly its four rules.
    assert sorted(address(r) for r in groups.db_users_rules) == sorted(DB_USERS_RULES)
    # The function reaches the database and the endpoints; nothing reaches the function.
    rules = all_rules(out)
    assert (
        rules["database_from_db_users"]["from_port"],
        rules["database_from_db_users"]["security_group_id"],
    ) == (
        3306,
        "${aws_security_group.database.id}",
    )
    assert (
        rules["database_from_db_users"]["referenced_security_group_id"] == "${aws_security_group.db_users.id}"
    )
    assert rules["endpoints_from_db_users"]["security_group_id"] == "${aws_security_group.vpc_endpoints.id}"
    assert (
        rules["db_users_to_database"]["referenced_security_group_id"] == "${aws_security_group.database.id}"
    )
    assert not [
        r
        for r in out["resource"]["aws_vpc_security_group_ingress_rule"].values()
        if r["security_group_id"] == "${aws_security_group.db_users.id}"
    ]
    # No rule is open to the internet inbound; the only 0.0.0.0/0 rules are HTTPS egress (the
    # instances', the database-user function's).
    for name, rule in out["resource"]["aws_vpc_security_group_ingress_rule"].items():
        assert rule.get("cidr_ipv4") != "0.0.0.0/0", name
        assert rule.get("cidr_ipv4") in (None, *cidrs), name
    open_rules = {name for name, rule in all_rules(out).items() if rule.get("cidr_ipv4") == "0.0.0.0/0"}
    assert open_rules == {"app_https_out", "db_users_https_out"}
    # Every rule says why it exists, and names exactly one port over TCP.
    for name, rule in all_rules(out).items():
        assert rule["description"].strip(), name
        assert rule["ip_protocol"] == "tcp" and rule["from_port"] == rule["to_port"], name
    for group in out["resource"]["aws_security_group"].values():
        assert group["vpc_id"] == "vpc-1" and group["description"].strip()
        assert "ingress" not in group and "egress" not in group  # rules are separate resources


@pytest.mark.parametrize("with_secret", [True, False])
def test_instance_role_alone(with_secret: bool) -> None:
    stack = aws_stack()
    bucket = "arn:aws:s3:::unit-artifacts"
    secret = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:redis"
    logs = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/unit/server"
    role = InstanceRole(
        stack,
        "role",
        InstanceRoleProps(
            name="unit",
            partition="aws",
            region="eu-west-1",
            account_id=ACCOUNT,
            bucket_arn=bucket,
            parameter_path="/unit/mlflow",
            log_group_arns=(logs,),
            kms_key_arn=KEY,
            secret_arns=(secret,) if with_secret else (),
            db_resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            db_user="mlflow",
            metrics_namespace="unit/instances",
            autoscaling_group_name="unit-group",
        ),
    )
    out = synth(stack)
    policies = (
        "mlflow_s3_policy",
        "mlflow_cloudwatch_policy",
        "mlflow_ssm_policy",
        "mlflow_rds_policy",
        "mlflow_kms_policy",
    )
    assert addresses(out) == {
        "aws_iam_role.mlflow_instance_role",
        "aws_iam_instance_profile.mlflow_instance_profile",
        "aws_iam_role_policy_attachment.mlflow_ssm_session_manager",
        *(f"aws_iam_policy.{p}" for p in policies),
        *(f"aws_iam_role_policy_attachment.{p}" for p in policies),
    }
    # The handle the group waits for: the attachments (a policy that is not attached grants nothing).
    assert sorted(a.friendly_unique_id for a in role.attachments) == sorted(policies)
    assert all(a.terraform_resource_type == "aws_iam_role_policy_attachment" for a in role.attachments)
    res = out["resource"]
    trust = json.loads(res["aws_iam_role"]["mlflow_instance_role"]["assume_role_policy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    # Scoped to the ARNs handed in: the only "*" are the two actions without resource-level
    # permissions, PutMetricData (narrowed by its namespace) and DescribeTags (by the region).
    resources: dict[str, Any] = {}
    narrowed = {}
    actions: dict[str, Any] = {}
    for policy in policies:
        for statement in json.loads(res["aws_iam_policy"][policy]["policy"])["Statement"]:
            resources[statement["Sid"]] = statement["Resource"]
            actions[statement["Sid"]] = statement["Action"]
            if statement["Resource"] == "*":
                narrowed[statement["Action"]] = statement["Condition"]
    assert narrowed == {
        "cloudwatch:PutMetricData": {"StringEquals": {"cloudwatch:namespace": "unit/instances"}},
        # The CloudWatch agent resolves ${aws:AutoScalingGroupName} with it.
        "ec2:DescribeTags": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}},
    }
    assert resources == {
        "ListArtifactBucket": bucket,
        "ReadWriteArtifacts": f"{bucket}/*",
        "WriteLogs": [f"{logs}:*"],
        "PutAgentMetrics": "*",
        "AgentReadsInstanceTags": "*",
        "ReadParameters": [
            f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/unit/mlflow",
            f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/unit/mlflow/*",
        ],
        **({"ReadSecrets": [secret]} if with_secret else {}),
        # IAM database authentication as exactly this user of exactly this instance.
        "ConnectAsMlflowUser": f"arn:aws:rds-db:eu-west-1:{ACCOUNT}:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/mlflow",
        "UseStackKey": KEY,
        # Its own group only (any group id: the name is the stack's).
        "ReportOwnHealth": f"arn:aws:autoscaling:eu-west-1:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/unit-group",
    }
    assert actions["ConnectAsMlflowUser"] == "rds-db:connect"
    assert actions["ReportOwnHealth"] == "autoscaling:SetInstanceHealth"
    # Without a secret to read, no Secrets Manager permission at all.
    granted = [a for action in actions.values() for a in ([action] if isinstance(action, str) else action)]
    assert any(a.startswith("secretsmanager:") for a in granted) is with_secret
    assert res["aws_iam_role_policy_attachment"]["mlflow_ssm_session_manager"]["policy_arn"] == (
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    )


# --- database --------------------------------------------------------------------------------------


DATABASE = DatabaseProps(
    identifier="unit-mlflow",
    engine_version="8.4",
    parameter_group_family="mysql8.4",
    engine_lifecycle_support="open-source-rds-extended-support-disabled",
    allow_major_version_upgrade=False,
    instance_class="db.t3.micro",
    allocated_storage_gb=20,
    max_allocated_storage_gb=100,
    multi_az=False,
    deletion_protection=False,
    backup_retention_days=7,
    performance_insights=False,
    monitoring_interval=0,
    log_exports=("error", "slowquery"),
    subnet_ids=["subnet-a", "subnet-b"],
    security_group_id="sg-db",
    kms_key_arn=KEY,
    partition="aws",
    log_retention_days=30,
    apply_immediately=True,
)


def build_database(props: DatabaseProps) -> dict[str, Any]:
    stack = aws_stack()
    database = Database(stack, "database", props)
    out = synth(
        stack,
        secret_arn=database.secret_arn,
        endpoint=database.endpoint,
        db_id=database.alarm_dimensions["DBInstanceIdentifier"],
    )
    assert exposed(out, "secret_arn") == "${aws_db_instance.mlflow.master_user_secret[0].secret_arn}"
    assert exposed(out, "endpoint") == "${aws_db_instance.mlflow.endpoint}"
    assert exposed(out, "db_id") == "${aws_db_instance.mlflow.identifier}"
    return out


def test_database_alone_with_defaults() -> None:
    out = build_database(DATABASE)
    assert addresses(out) == {
        "aws_db_instance.mlflow",
        "aws_db_subnet_group.database",
        "aws_db_parameter_group.mlflow",
        "aws_cloudwatch_log_group.rds_error",
        "aws_cloudwatch_log_group.rds_slowquery",
        "random_id.final_snapshot_suffix",
    }
    res = out["resource"]
    db = res["aws_db_instance"]["mlflow"]
    assert db["storage_encrypted"] is True and db["kms_key_id"] == KEY
    assert db["manage_master_user_password"] is True and db["master_user_secret_kms_key_id"] == KEY
    assert "password" not in db
    assert db["publicly_accessible"] is False
    assert db["vpc_security_group_ids"] == ["sg-db"]
    assert res["aws_db_subnet_group"]["database"]["subnet_ids"] == ["subnet-a", "subnet-b"]
    assert db["apply_immediately"] is True
    # RDS's log groups exist, encrypted, before the instance would create them itself.
    assert db["depends_on"] == [
        "aws_cloudwatch_log_group.rds_error",
        "aws_cloudwatch_log_group.rds_slowquery",
    ]
    for log in ("error", "slowquery"):
        group = res["aws_cloudwatch_log_group"][f"rds_{log}"]
        assert group["name"] == f"/aws/rds/instance/unit-mlflow/{log}"
        assert (group["kms_key_id"], group["retention_in_days"]) == (KEY, 30)
    params = {p["name"]: p["value"] for p in res["aws_db_parameter_group"]["mlflow"]["parameter"]}
    assert params["require_secure_transport"] == "1"
    # Backups keep a binary log: without it only SUPER (nobody on RDS) could create MLflow's trigger.
    assert params["log_bin_trust_function_creators"] == "1"
    assert params["slow_query_log"] == "1" and "general_log" not in params
    # RDS exports logs from files: with the default TABLE output the slow query log is empty.
    assert params["log_output"] == "FILE"
    # Unique per lifetime of the stack, stable across plans (a random_id kept in state).
    assert db["final_snapshot_identifier"] == "unit-mlflow-final-${random_id.final_snapshot_suffix.hex}"
    assert db["skip_final_snapshot"] is False
    # MySQL 8.4 with its own parameter group, named after its family, created before a group it
    # replaces is destroyed; Extended Support is a decision, never the API's default.
    assert (db["engine"], db["engine_version"]) == ("mysql", "8.4")
    group = res["aws_db_parameter_group"]["mlflow"]
    assert (group["family"], group["name"]) == ("mysql8.4", "unit-mlflow-mysql84")
    assert group["lifecycle"] == {"create_before_destroy": True}
    assert db["parameter_group_name"] == "${aws_db_parameter_group.mlflow.name}"
    assert db["engine_lifecycle_support"] == "open-source-rds-extended-support-disabled"
    assert db["allow_major_version_upgrade"] is False
    # Not restored from a snapshot: nothing that would force a replacement.
    assert "snapshot_identifier" not in db
    assert "keepers" not in res["random_id"]["final_snapshot_suffix"]


def test_an_existing_80_database_keeps_its_group_and_the_upgrade_swaps_it() -> None:
    """8.0 (an upgrade source) keeps the name today's stacks gave its group; the 8.4 group's name
    differs from it, so the upgrade creates the new group beside the old one."""
    old = build_database(
        replace(
            DATABASE,
            engine_version="8.0",
            parameter_group_family="mysql8.0",
            engine_lifecycle_support="open-source-rds-extended-support",
        )
    )["resource"]
    new = build_database(replace(DATABASE, allow_major_version_upgrade=True))["resource"]
    old_group, new_group = old["aws_db_parameter_group"]["mlflow"], new["aws_db_parameter_group"]["mlflow"]
    assert (old_group["family"], old_group["name"]) == ("mysql8.0", "unit-mlflow")
    assert new_group["name"] != old_group["name"]
    # Same address, same description (ForceNew on the group): only the family and name change.
    assert {k for k in old_group if old_group[k] != new_group.get(k)} == {"family", "name"}
    assert old["aws_db_instance"]["mlflow"]["engine_lifecycle_support"] == "open-source-rds-extended-support"
    assert new["aws_db_instance"]["mlflow"]["allow_major_version_upgrade"] is True


def test_database_restored_from_a_snapshot() -> None:
    """The rollback of an MLflow upgrade: the instance re-created from the snapshot, and its own
    final snapshot named apart from the one the replaced instance leaves."""
    name = "unit-mlflow-pre-mlflow-3-17-2"
    res = build_database(replace(DATABASE, restore_from_snapshot=name))["resource"]
    assert res["aws_db_instance"]["mlflow"]["snapshot_identifier"] == name
    assert res["random_id"]["final_snapshot_suffix"]["keepers"] == {"restore_from_snapshot": name}


def test_database_alone_with_monitoring_and_insights() -> None:
    props = replace(
        DATABASE,
        instance_class="db.t3.medium",
        monitoring_interval=60,
        performance_insights=True,
        multi_az=True,
        deletion_protection=True,
        log_exports=("general",),
        apply_immediately=False,
    )
    out = build_database(props)
    assert addresses(out) == {
        "aws_db_instance.mlflow",
        "aws_db_subnet_group.database",
        "aws_db_parameter_group.mlflow",
        "aws_cloudwatch_log_group.rds_general",
        "aws_iam_role.rds_monitoring",
        "aws_iam_role_policy_attachment.rds_monitoring",
        "random_id.final_snapshot_suffix",
    }
    res = out["resource"]
    db = res["aws_db_instance"]["mlflow"]
    assert db["monitoring_role_arn"] == "${aws_iam_role.rds_monitoring.arn}"
    # RDS checks the role's permissions: the attachment, not just the role, comes first (fix 9).
    assert db["depends_on"] == [
        "aws_cloudwatch_log_group.rds_general",
        "aws_iam_role_policy_attachment.rds_monitoring",
    ]
    assert db["performance_insights_kms_key_id"] == KEY
    assert (db["multi_az"], db["deletion_protection"], db["apply_immediately"]) == (True, True, False)
    params = {p["name"]: p["value"] for p in res["aws_db_parameter_group"]["mlflow"]["parameter"]}
    assert params["general_log"] == "1" and "slow_query_log" not in params
    assert params["log_output"] == "FILE"


# --- cache -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [1, 2])
def test_cache_alone(nodes: int) -> None:
    stack = aws_stack()
    RandomProvider(stack, "random")
    cache = Cache(
        stack,
        "cache",
        CacheProps(
            name="unit-mlflow",
            engine_version="7.1",
            node_type="cache.t4g.micro",
            num_nodes=nodes,
            snapshot_retention_days=1,
            subnet_ids=["subnet-a", "subnet-b"],
            security_group_id="sg-cache",
            kms_key_arn=KEY,
            log_group_name="/unit/redis-slow-log",
            log_retention_days=30,
        ),
    )
    out = synth(stack, endpoint=cache.endpoint, secret=cache.secret_arn, group=cache.group_id)
    # No token anywhere Terraform keeps it: no generator, no secret version.
    assert addresses(out) == {
        "aws_secretsmanager_secret.redis_auth_token",
        "aws_elasticache_subnet_group.mlflow",
        "aws_elasticache_parameter_group.mlflow",
        "aws_elasticache_replication_group.mlflow",
        "aws_cloudwatch_log_group.redis_slow_log",
    }
    res = out["resource"]
    group = res["aws_elasticache_replication_group"]["mlflow"]
    assert group["transit_encryption_enabled"] is True and group["transit_encryption_mode"] == "required"
    assert group["at_rest_encryption_enabled"] == "true" and group["kms_key_id"] == KEY
    # The provisioning Lambda sets the token (ROTATE, SET); Terraform neither sets nor clears it.
    assert "auth_token" not in group and "auth_token_update_strategy" not in group
    assert group["lifecycle"] == {"ignore_changes": ["auth_token", "auth_token_update_strategy"]}
    assert group["automatic_failover_enabled"] is (nodes >= 2)
    assert group["multi_az_enabled"] is (nodes >= 2)
    assert group["num_cache_clusters"] == nodes == cache.num_nodes
    assert res["aws_elasticache_parameter_group"]["mlflow"]["family"] == "redis7"
    # The token lives in a secret encrypted with the stack's key; the slow log in an encrypted group.
    assert res["aws_secretsmanager_secret"]["redis_auth_token"]["kms_key_id"] == KEY
    log = res["aws_cloudwatch_log_group"]["redis_slow_log"]
    assert (log["name"], log["kms_key_id"], log["retention_in_days"]) == ("/unit/redis-slow-log", KEY, 30)
    assert exposed(out, "endpoint") == "${aws_elasticache_replication_group.mlflow.primary_endpoint_address}"
    assert exposed(out, "secret") == "${aws_secretsmanager_secret.redis_auth_token.arn}"
    assert exposed(out, "group") == "${aws_elasticache_replication_group.mlflow.id}"
    # Member <n> of the group, for an alarm counted over the members.
    assert cache.member_dimensions == {
        "CacheClusterId": '${format("%s-%03d", aws_elasticache_replication_group.mlflow.id, count.index + 1)}'
    }


# --- compute ---------------------------------------------------------------------------------------


def test_mlflow_servers_alone() -> None:
    stack = aws_stack()
    # An upstream resource the group must wait for (the stack passes its SSM parameters).
    parameter = SsmParameter(stack, "param", name="/unit/mlflow/x", type="SecureString", value="v")
    parameter.override_logical_id("param")
    servers = MlflowServers(
        stack,
        "servers",
        MlflowServersProps(
            name="unit-mlflow",
            ami_id="ami-0abcdef1234567890",
            instance_type="t3.medium",
            root_volume_size_gb=30,
            min_size=2,
            max_size=4,
            desired_capacity=2,
            cpu_target_percent=60,
            user_data_base64="IyEvYmluL2Jhc2gK",
            instance_profile_arn=f"arn:aws:iam::{ACCOUNT}:instance-profile/unit",
            security_group_id="sg-app",
            subnet_ids=["subnet-a", "subnet-b"],
            target_group_arn=f"arn:aws:elasticloadbalancing:eu-west-1:{ACCOUNT}:targetgroup/unit/1",
            kms_key_arn=KEY,
            sns_topic_arn=f"arn:aws:sns:eu-west-1:{ACCOUNT}:alerts",
            tags={"Project": "unit"},
            depends_on=(parameter,),
        ),
    )
    out = synth(stack, group_name=servers.group_name)
    assert exposed(out, "group_name") == "${aws_autoscaling_group.mlflow.name}"
    assert addresses(out) == {
        "aws_ssm_parameter.param",
        "aws_launch_template.mlflow",
        "aws_autoscaling_group.mlflow",
        "aws_autoscaling_policy.mlflow_cpu_target",
        "aws_autoscaling_notification.mlflow",
    }
    # A pinned AMI: no "latest" lookup that would change the template with every release.
    assert addresses(out, "data") == set()
    res = out["resource"]
    template = res["aws_launch_template"]["mlflow"]
    metadata = template["metadata_options"]
    assert (metadata["http_tokens"], metadata["http_put_response_hop_limit"]) == ("required", 1)
    ebs = template["block_device_mappings"][0]["ebs"]
    assert (ebs["volume_type"], ebs["encrypted"], ebs["kms_key_id"]) == ("gp3", "true", KEY)
    assert template["network_interfaces"][0]["associate_public_ip_address"] == "false"
    assert template["network_interfaces"][0]["security_groups"] == ["sg-app"]
    assert template["image_id"] == "ami-0abcdef1234567890"
    assert template["user_data"] == "IyEvYmluL2Jhc2gK"
    assert "key_name" not in template
    group = res["aws_autoscaling_group"]["mlflow"]
    assert (group["min_size"], group["desired_capacity"], group["max_size"]) == (2, 2, 4)
    # Apply waits for every desired instance to pass the load balancer's check (fix 7).
    assert group["wait_for_elb_capacity"] == group["desired_capacity"]
    assert group["wait_for_capacity_timeout"] == "20m"
    assert group["depends_on"] == ["aws_ssm_parameter.param"]
    assert group["launch_template"]["version"] == "${aws_launch_template.mlflow.latest_version}"
    assert group["instance_refresh"]["preferences"]["min_healthy_percentage"] == 100
    assert {t["key"]: t["value"] for t in group["tag"]} == {"Project": "unit", "Name": "unit-mlflow"}
    assert all(t["propagate_at_launch"] is True for t in group["tag"])


# --- load balancer ---------------------------------------------------------------------------------


def build_load_balancer(
    certificate_arn: str, deletion_protection: bool, stack_name: str = STACK
) -> tuple[TerraformStack, LoadBalancer]:
    stack = aws_stack(stack_name)
    policy = S3BucketPolicy(stack, "logs_policy", bucket="unit-logs", policy="{}")
    policy.override_logical_id("unit_logs")
    alb = LoadBalancer(
        stack,
        "load_balancer",
        LoadBalancerProps(
            name="unit-mlflow",
            certificate_arn=certificate_arn,
            ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06",
            deletion_protection=deletion_protection,
            idle_timeout_seconds=300,
            subnet_ids=["subnet-a", "subnet-b"],
            security_group_id="sg-alb",
            vpc_id="vpc-1",
            target_port=80,
            log_bucket_name="unit-logs",
            depends_on=(policy,),
        ),
    )
    return stack, alb


def test_load_balancer_alone_with_certificate() -> None:
    stack, alb = build_load_balancer(CERT, deletion_protection=True)
    dims = alb.target_dimensions
    out = synth(stack, zone=alb.zone_id, lb=dims["LoadBalancer"], tg=dims["TargetGroup"])
    assert set(dims) == {"LoadBalancer", "TargetGroup"}
    assert exposed(out, "lb") == "${aws_lb.mlflow.arn_suffix}"
    assert exposed(out, "tg") == "${aws_lb_target_group.mlflow.arn_suffix}"
    assert addresses(out) == {
        "aws_lb.mlflow",
        "aws_lb_target_group.mlflow",
        "aws_lb_listener.http",
        "aws_lb_listener.https",
        "aws_s3_bucket_policy.unit_logs",
    }
    res = out["resource"]
    lb = res["aws_lb"]["mlflow"]
    assert lb["drop_invalid_header_fields"] is True
    assert lb["enable_deletion_protection"] is True
    assert lb["access_logs"] == {"bucket": "unit-logs", "prefix": "alb", "enabled": True}
    # ELB checks it may write the logs when it is created: the bucket policy comes first (fix 6).
    assert lb["depends_on"] == ["aws_s3_bucket_policy.unit_logs"]
    listeners = res["aws_lb_listener"]
    assert listeners["http"]["default_action"] == [
        {"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}
    ]
    https = listeners["https"]
    assert (https["port"], https["protocol"], https["certificate_arn"]) == (443, "HTTPS", CERT)
    assert https["ssl_policy"].startswith("ELBSecurityPolicy-TLS13-")
    assert https["default_action"] == [
        {"type": "forward", "target_group_arn": "${aws_lb_target_group.mlflow.arn}"}
    ]
    target = res["aws_lb_target_group"]["mlflow"]
    assert (target["port"], target["vpc_id"], target["health_check"]["path"]) == (80, "vpc-1", "/health")
    assert exposed(out, "zone") == "${aws_lb.mlflow.zone_id}"


def test_the_certificate_the_stack_creates_in_a_public_zone() -> None:
    """DNS validation with its record in the zone, the listener's certificate only once issued, the
    host's alias record; a private zone fails the plan (ACM validates through public DNS)."""
    stack = aws_stack()
    certificate = DnsCertificate(
        stack,
        "certificate",
        DnsCertificateProps(hosted_zone_id="Z04518362KQ8ZPXQ3H7TW", host_name="mlflow.acme.io"),
    )
    alias_record(stack, certificate.zone_id, "mlflow.acme.io", "alb.example", "Z35SXDOTRQ7X7K")
    out = synth(stack, arn=certificate.certificate_arn)
    assert addresses(out) == {
        "aws_acm_certificate.mlflow",
        "aws_acm_certificate_validation.mlflow",
        "aws_route53_record.mlflow_validation",
        "aws_route53_record.mlflow",
    }
    res = out["resource"]
    cert = res["aws_acm_certificate"]["mlflow"]
    assert (cert["domain_name"], cert["validation_method"]) == ("mlflow.acme.io", "DNS")
    assert cert["lifecycle"] == {"create_before_destroy": True}
    record = res["aws_route53_record"]["mlflow_validation"]
    option = "tolist(aws_acm_certificate.mlflow.domain_validation_options).0"
    assert record["name"] == f"${{{option}.resource_record_name}}"
    assert record["records"] == [f"${{{option}.resource_record_value}}"]
    assert (
        record["zone_id"] == "${data.aws_route53_zone.mlflow.zone_id}" and record["allow_overwrite"] is True
    )
    validation = res["aws_acm_certificate_validation"]["mlflow"]
    assert validation["validation_record_fqdns"] == ["${aws_route53_record.mlflow_validation.fqdn}"]
    assert exposed(out, "arn") == "${aws_acm_certificate_validation.mlflow.certificate_arn}"
    alias = res["aws_route53_record"]["mlflow"]
    assert (alias["name"], alias["type"]) == ("mlflow.acme.io", "A")
    assert alias["alias"] == {
        "name": "alb.example",
        "zone_id": "Z35SXDOTRQ7X7K",
        "evaluate_target_health": True,
    }
    [postcondition] = out["data"]["aws_route53_zone"]["mlflow"]["lifecycle"]["postcondition"]
    assert postcondition["condition"] == "${!self.private_zone}"
    assert "private zone" in postcondition["error_message"]


def checkov_skips(stack: TerraformStack, rtype: str, name: str) -> set[str]:
    body = stack.to_terraform()["resource"][rtype][name]
    return {skip["id"] for skip in body.get("//", {}).get("checkov", {}).get("skip", [])}


def test_checkov_skips_do_not_leak_between_apps() -> None:
    build_load_balancer(CERT, deletion_protection=False, stack_name="leak")
    stack, _ = build_load_balancer(CERT, deletion_protection=True, stack_name="leak")
    assert checkov_skips(stack, "aws_lb", "mlflow") == {"CKV2_AWS_28"}


# --- storage ---------------------------------------------------------------------------------------


def private_bucket_blocks(out: dict[str, Any], address: str) -> None:
    res = out["resource"]
    block = res["aws_s3_bucket_public_access_block"][address]
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert all(block[f] is True for f in flags)
    assert block["bucket"] == f"${{aws_s3_bucket.{address}.id}}"
    assert (
        res["aws_s3_bucket_ownership_controls"][address]["rule"]["object_ownership"] == "BucketOwnerEnforced"
    )
    assert res["aws_s3_bucket_versioning"][address]["versioning_configuration"]["status"] == "Enabled"
    policy = json.loads(res["aws_s3_bucket_policy"][address]["policy"])
    assert policy["Statement"][0]["Sid"] == "DenyInsecureTransport"
    assert res["aws_s3_bucket"][address]["force_destroy"] is False


def bucket_resources(address: str) -> set[str]:
    kinds = (
        "",
        "_public_access_block",
        "_ownership_controls",
        "_versioning",
        "_server_side_encryption_configuration",
        "_lifecycle_configuration",
        "_policy",
    )
    return {f"aws_s3_bucket{kind}.{address}" for kind in kinds}


def test_log_bucket_alone() -> None:
    stack = aws_stack()
    RandomProvider(stack, "random")
    suffix = bucket_suffix(stack)
    bucket = LogBucket(
        stack,
        "log_bucket",
        LogBucketProps(
            name=f"unit-logs-{suffix.hex}", account_id=ACCOUNT, expiration_days=30, abort_incomplete_days=3
        ),
    )
    out = synth(stack, name=bucket.name)
    assert exposed(out, "name") == "${aws_s3_bucket.alb_logs.bucket}"
    assert bucket.delivery_policy.friendly_unique_id == "alb_logs"
    assert addresses(out) == bucket_resources("alb_logs") | {"random_id.bucket_suffix"}
    # The ELB account data source keeps cdktf's generated name (no fixed address).
    [elb] = out["data"]["aws_elb_service_account"]
    assert elb.startswith("log_bucket_elb_account_")
    private_bucket_blocks(out, "alb_logs")
    res = out["resource"]
    assert res["aws_s3_bucket"]["alb_logs"]["bucket"] == "unit-logs-${random_id.bucket_suffix.hex}"
    sse = res["aws_s3_bucket_server_side_encryption_configuration"]["alb_logs"]["rule"][0]
    assert sse["apply_server_side_encryption_by_default"]["sse_algorithm"] == "AES256"
    rule = res["aws_s3_bucket_lifecycle_configuration"]["alb_logs"]["rule"][0]
    assert rule["expiration"][0]["days"] == 30
    assert rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] == 3
    statements = json.loads(res["aws_s3_bucket_policy"]["alb_logs"]["policy"])["Statement"]
    assert statements[1]["Principal"] == {"AWS": f"${{data.aws_elb_service_account.{elb}.arn}}"}
    assert statements[1]["Resource"] == f"${{aws_s3_bucket.alb_logs.arn}}/alb/AWSLogs/{ACCOUNT}/*"


@pytest.mark.parametrize("protect", [True, False])
def test_artifact_bucket_alone(protect: bool) -> None:
    stack = aws_stack()
    artifacts = ArtifactBucket(
        stack,
        "artifacts",
        ArtifactBucketProps(
            name="unit-artifacts",
            kms_key_arn=KEY,
            log_bucket_id="unit-logs",
            noncurrent_days=90,
            abort_incomplete_days=7,
            protect=protect,
        ),
    )
    out = synth(stack, artifacts_uri=artifacts.artifacts_uri, arn=artifacts.arn)
    assert addresses(out) == bucket_resources("mlflow_artifacts") | {"aws_s3_bucket_logging.mlflow_artifacts"}
    assert exposed(out, "arn") == "${aws_s3_bucket.mlflow_artifacts.arn}"
    private_bucket_blocks(out, "mlflow_artifacts")
    res = out["resource"]
    sse = res["aws_s3_bucket_server_side_encryption_configuration"]["mlflow_artifacts"]["rule"][0]
    assert sse["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "aws:kms",
        "kms_master_key_id": KEY,
    }
    assert sse["bucket_key_enabled"] is True
    logging = res["aws_s3_bucket_logging"]["mlflow_artifacts"]
    assert logging["target_bucket"] == "unit-logs"
    bucket = res["aws_s3_bucket"]["mlflow_artifacts"]
    assert bucket.get("lifecycle") == ({"prevent_destroy": True} if protect else None)
    assert exposed(out, "artifacts_uri") == "s3://${aws_s3_bucket.mlflow_artifacts.bucket}/artifacts"


# --- observability ---------------------------------------------------------------------------------


@pytest.mark.parametrize("retention", [30, 365])
def test_log_group_alone(retention: int) -> None:
    stack = aws_stack()
    group = log_group(stack, "server", name="/unit/mlflow/server", kms_key_arn=KEY, retention_days=retention)
    out = synth(stack, group_name=group.name)
    assert addresses(out) == {"aws_cloudwatch_log_group.server"}
    assert out["resource"]["aws_cloudwatch_log_group"]["server"] == {
        "name": "/unit/mlflow/server",
        "kms_key_id": KEY,
        "retention_in_days": retention,
    }
    skips = checkov_skips(stack, "aws_cloudwatch_log_group", "server")
    assert skips == ({"CKV_AWS_338"} if retention < 365 else set())
    assert exposed(out, "group_name") == "${aws_cloudwatch_log_group.server.name}"


@pytest.mark.parametrize("emails", [(), ("a@example.com", "b@example.com")])
def test_alerts_alone(emails: tuple[str, ...]) -> None:
    stack = aws_stack()
    alerts = Alerts(stack, "alerts", AlertsProps(name="unit-alerts", kms_key_arn=KEY, emails=emails))
    alerts.add_alarms(
        [
            AlarmSpec(
                "db_cpu",
                "database CPU high",
                "unit-db-cpu",
                evaluation_periods=3,
                threshold=80,
                comparison_operator="GreaterThanThreshold",
                namespace="AWS/RDS",
                metric_name="CPUUtilization",
                statistic="Average",
                period=300,
            )
        ]
    )
    out = synth(stack)
    expected = {"aws_sns_topic.alerts", "aws_cloudwatch_metric_alarm.db_cpu"}
    if emails:
        expected.add("aws_sns_topic_subscription.alerts_email")
    assert addresses(out) == expected
    res = out["resource"]
    assert res["aws_sns_topic"]["alerts"]["kms_master_key_id"] == KEY
    alarm = res["aws_cloudwatch_metric_alarm"]["db_cpu"]
    topic = "${aws_sns_topic.alerts.arn}"
    assert alarm["alarm_actions"] == [topic] and alarm["ok_actions"] == [topic]
    assert alarm["alarm_description"] == "database CPU high"
    assert "count" not in alarm and "metric_query" not in alarm and "treat_missing_data" not in alarm
    if emails:
        sub = res["aws_sns_topic_subscription"]["alerts_email"]
        assert (sub["count"], sub["protocol"], sub["topic_arn"]) == (2, "email", topic)


# --- databricks ------------------------------------------------------------------------------------

SP = "00000000-0000-0000-0000-000000000001"


def test_unity_catalog_model_alone() -> None:
    stack = databricks_stack()
    model = UnityCatalogModel(
        stack,
        "model",
        UnityCatalogModelProps(
            catalog="test",
            schema="proj",
            name="proj-model",
            execute_principals=("account users", "ml-engineers"),
            comment="c",
        ),
    )
    out = synth(stack, full_name=model.full_name)
    assert addresses(out) == {"databricks_registered_model.model", "databricks_grants.registered_model_model"}
    res = out["resource"]
    assert res["databricks_registered_model"]["model"] == {
        "catalog_name": "test",
        "schema_name": "proj",
        "name": "proj-model",
        "comment": "c",
    }
    grants = res["databricks_grants"]["registered_model_model"]
    assert grants["function"] == "${databricks_registered_model.model.id}"
    assert grants["grant"] == [
        {"principal": "account users", "privileges": ["EXECUTE"]},
        {"principal": "ml-engineers", "privileges": ["EXECUTE"]},
    ]
    assert exposed(out, "full_name") == "${databricks_registered_model.model.id}"


def test_tracked_experiment_alone() -> None:
    stack = databricks_stack()
    experiment = TrackedExperiment(
        stack,
        "experiment",
        TrackedExperimentProps(
            path="/Users/me/test-proj-experiment",
            access=(
                AccessEntry("group_name", "users", "CAN_READ"),
                AccessEntry("service_principal_name", SP, "CAN_MANAGE"),
            ),
        ),
    )
    out = synth(stack, experiment_id=experiment.experiment_id)
    assert addresses(out) == {
        "databricks_mlflow_experiment.experiment",
        "databricks_permissions.mlflow_experiment_experiment",
    }
    res = out["resource"]
    assert res["databricks_mlflow_experiment"]["experiment"]["name"] == "/Users/me/test-proj-experiment"
    permissions = res["databricks_permissions"]["mlflow_experiment_experiment"]
    assert permissions["experiment_id"] == "${databricks_mlflow_experiment.experiment.id}"
    assert permissions["access_control"] == [
        {"group_name": "users", "permission_level": "CAN_READ"},
        {"service_principal_name": SP, "permission_level": "CAN_MANAGE"},
    ]
    assert exposed(out, "experiment_id") == "${databricks_mlflow_experiment.experiment.id}"


TASKS = chained((
    NotebookTaskSpec("Train", "/files/Train", {"env": "test"}),
    NotebookTaskSpec("Validate", "/files/Validate"),
    NotebookTaskSpec("Deploy", "/files/Deploy"),
))  # fmt: skip


def test_notebook_job_on_an_existing_cluster_with_permissions() -> None:
    stack = databricks_stack()
    job = NotebookJob(
        stack,
        "training",
        NotebookJobProps(
            address="training",
            name="test-proj-training",
            tasks=TASKS,
            schedule=ScheduleSpec("0 0 9 * * ?", "Europe/Paris", paused=False),
            existing_cluster_id="0101-000000-abcdefgh",
            on_failure_emails=("a@example.com",),
            run_as_service_principal="00000000-0000-0000-0000-000000000001",
            tags={"team": "ml"},
            max_retries=2,
            timeout_seconds=3600,
            access=(
                AccessEntry("service_principal_name", SP, "IS_OWNER"),
                AccessEntry("group_name", "users", "CAN_VIEW"),
            ),
        ),
    )
    out = synth(stack, job_id=job.job_id, url=job.url)
    assert exposed(out, "job_id") == "${databricks_job.training.id}"
    assert exposed(out, "url") == "${databricks_job.training.url}"
    assert addresses(out) == {"databricks_job.training", "databricks_permissions.job_training"}
    res = out["resource"]
    body = res["databricks_job"]["training"]
    tasks = body["task"]
    # Sorted by key; Train -> Validate -> Deploy through depends_on only.
    assert [t["task_key"] for t in tasks] == ["Deploy", "Train", "Validate"] == list(job.task_keys)
    assert [t.get("depends_on") for t in tasks] == [[{"task_key": "Validate"}], None, [{"task_key": "Train"}]]
    assert [t.get("run_if") for t in tasks] == ["ALL_SUCCESS", None, "ALL_SUCCESS"]
    assert all(
        t["existing_cluster_id"] == "0101-000000-abcdefgh" and "job_cluster_key" not in t for t in tasks
    )
    assert all(t["max_retries"] == 2 for t in tasks)
    assert tasks[1]["notebook_task"] == {"notebook_path": "/files/Train", "base_parameters": {"env": "test"}}
    assert "job_cluster" not in body and job.cluster_key is None
    assert body["schedule"] == {
        "quartz_cron_expression": "0 0 9 * * ?",
        "timezone_id": "Europe/Paris",
        "pause_status": "UNPAUSED",
    }
    assert body["email_notifications"] == {"on_failure": ["a@example.com"]}
    assert body["run_as"] == {"service_principal_name": "00000000-0000-0000-0000-000000000001"}
    assert (body["tags"], body["timeout_seconds"]) == ({"team": "ml"}, 3600)
    permissions = res["databricks_permissions"]["job_training"]
    assert permissions["job_id"] == "${databricks_job.training.id}"
    assert permissions["access_control"] == [
        {"service_principal_name": SP, "permission_level": "IS_OWNER"},
        {"group_name": "users", "permission_level": "CAN_VIEW"},
    ]


@pytest.mark.parametrize("access", [
    (AccessEntry("group_name", "users", "CAN_VIEW"),),
    (AccessEntry("service_principal_name", SP, "IS_OWNER"), AccessEntry("user_name", "u@x.io", "IS_OWNER")),
])  # fmt: skip
def test_a_job_acl_needs_exactly_one_owner(access: tuple[AccessEntry, ...]) -> None:
    """Without an IS_OWNER entry, provider 1.99.0 makes the applier the owner (and, run_as unset,
    who the job runs as); a job has one owner."""
    with pytest.raises(ValueError, match="exactly one IS_OWNER entry"):
        NotebookJobProps(address="j", name="j", tasks=TASKS[:1], schedule=ScheduleSpec("0 0 9 * * ?", "UTC", paused=True),
                         existing_cluster_id="0101-000000-abcdefgh", access=access)  # fmt: skip


def test_an_acl_names_each_principal_once() -> None:
    """Two levels for one principal read back as the highest only: a permanent diff."""
    with pytest.raises(ValueError, match="one principal twice"):
        access_control(
            (AccessEntry("group_name", "users", "CAN_VIEW"), AccessEntry("group_name", "Users", "CAN_MANAGE"))
        )
    with pytest.raises(ValueError, match="is not one of"):
        AccessEntry("role", "x", "CAN_VIEW")


def test_notebooks_folder_access_and_schema_grant_alone() -> None:
    stack = databricks_stack()
    NotebooksFolderAccess(stack, "notebooks", NotebooksFolderAccessProps(
        "/Users/sp/.bundle/p/test/files", (AccessEntry("service_principal_name", SP, "CAN_RUN"),)))  # fmt: skip
    SchemaGrant(stack, "grant", SchemaGrantProps("test.p", SP, ("USE_SCHEMA", "SELECT"), "schema_run_as"))
    res = synth(stack)["resource"]
    folder = res["databricks_permissions"]["notebooks"]
    assert folder["directory_path"] == "/Users/sp/.bundle/p/test/files"
    assert folder["access_control"] == [{"service_principal_name": SP, "permission_level": "CAN_RUN"}]
    grant = res["databricks_grant"]["schema_run_as"]
    assert (grant["schema"], grant["principal"], grant["privileges"]) == (
        "test.p",
        SP,
        ["SELECT", "USE_SCHEMA"],
    )
    with pytest.raises(ValueError, match="without /Workspace"):
        NotebooksFolderAccess(
            databricks_stack(), "n", NotebooksFolderAccessProps("/Workspace/Users/sp/files", ())
        )
    with pytest.raises(ValueError, match=r"is not <catalog>\.<schema>"):
        SchemaGrant(databricks_stack(), "g", SchemaGrantProps("test", SP, ("USE_SCHEMA",), "x"))


@pytest.mark.parametrize("workers", [0, 2])
def test_notebook_job_cluster(workers: int) -> None:
    stack = databricks_stack()
    NotebookJob(
        stack,
        "batch",
        NotebookJobProps(
            address="batch",
            name="batch",
            tasks=TASKS[:1],
            schedule=ScheduleSpec("0 0 11 * * ?", "UTC", paused=True),
            cluster=JobClusterSpec(
                "15.3.x-cpu-ml-scala2.12", "i3.xlarge", workers, "SINGLE_USER", {"team": "ml"}
            ),
        ),
    )
    out = synth(stack)
    assert addresses(out) == {"databricks_job.batch"}
    body = out["resource"]["databricks_job"]["batch"]
    [cluster] = body["job_cluster"]
    assert cluster["job_cluster_key"] == "batch_cluster"
    assert body["task"][0]["job_cluster_key"] == "batch_cluster"
    new = cluster["new_cluster"]
    assert new["num_workers"] == workers
    if workers == 0:
        assert new["spark_conf"]["spark.databricks.cluster.profile"] == "singleNode"
        assert new["custom_tags"] == {"team": "ml", "ResourceClass": "SingleNode"}
    else:
        assert "spark_conf" not in new
        assert new["custom_tags"] == {"team": "ml"}

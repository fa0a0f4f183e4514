"""The synthesized ``mlflow-<env>`` stacks: addresses, the issue's secure defaults, snapshots."""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from constructs_lib import user_data as boot_script
from platform_config.loader import TFVARS_DIR, Environment
from platform_config.secrets import find_secrets
from tests.conftest import Check, Synthesized, load_repo_environments, shipped_env_names
from tests.constructs.test_db_users import jsonencode_members
from tests.constructs.test_user_data import PARAMS, launch
from tests.fixtures.envs import ConfigFiles

KEY = "${aws_kms_key.mlflow.arn}"

# The seed deployment's addresses, which this stack keeps so its state can be adopted.
SEED_ADDRESSES = (
    "aws_security_group.alb",
    "aws_security_group.mlflow_app",
    "aws_security_group.database",
    "aws_iam_role.mlflow_instance_role",
    "aws_iam_policy.mlflow_s3_policy",
    "aws_iam_policy.mlflow_cloudwatch_policy",
    "aws_iam_policy.mlflow_ssm_policy",
    "aws_iam_policy.mlflow_kms_policy",
    "aws_iam_instance_profile.mlflow_instance_profile",
    "aws_kms_key.mlflow",
    "aws_kms_alias.mlflow",
    "aws_vpc.main",
    "aws_internet_gateway.main",
    "aws_nat_gateway.main",
    "aws_subnet.public",
    "aws_subnet.private",
    "aws_subnet.database",
    "aws_db_instance.mlflow",
    "aws_db_subnet_group.database",
    "aws_db_parameter_group.mlflow",
    "aws_launch_template.mlflow",
    "aws_autoscaling_group.mlflow",
    "aws_lb.mlflow",
    "aws_lb_target_group.mlflow",
    "aws_s3_bucket.mlflow_artifacts",
    "aws_s3_bucket.alb_logs",
    "aws_sns_topic.alerts",
    "random_id.bucket_suffix",
)
CACHE_ADDRESSES = (
    "aws_security_group.elasticache",
    "aws_elasticache_replication_group.mlflow",
    "aws_elasticache_subnet_group.mlflow",
    "aws_elasticache_parameter_group.mlflow",
)
# The rest, under names of our own.
OWN_ADDRESSES = (
    "aws_ssm_parameter.db_user",
    "aws_route_table.public",
    "aws_route_table.private",
    "aws_route_table.database",
    "aws_route_table_association.public",
    "aws_route_table_association.private",
    "aws_route_table_association.database",
    "aws_eip.nat",
    "aws_vpc_endpoint.s3",
    "aws_vpc_endpoint.ssm",
    "aws_vpc_endpoint.ssmmessages",
    "aws_vpc_endpoint.ec2messages",
    "aws_vpc_endpoint.ec2",
    "aws_vpc_endpoint.logs",
    "aws_vpc_endpoint.secretsmanager",
    "aws_default_security_group.default",
    "aws_flow_log.main",
    "aws_lb_listener.http",
    "aws_cloudwatch_log_group.mlflow_server",
    "aws_cloudwatch_log_group.mlflow_nginx",
    "aws_cloudwatch_log_group.mlflow_system",
    "aws_cloudwatch_log_group.vpc_flow_logs",
    "aws_ssm_parameter.db_host",
    "aws_ssm_parameter.db_port",
    "aws_ssm_parameter.db_name",
    # The seed's db_secret_arn is gone on purpose (adopting deletes it): the instances log in with
    # IAM tokens and never read the master secret; db_user (above) replaces it.
    "aws_ssm_parameter.artifacts_destination",
    "aws_ssm_parameter.alb_dns_name",
    "aws_autoscaling_policy.mlflow_cpu_target",
    "aws_autoscaling_notification.mlflow",
    "aws_iam_policy.mlflow_rds_policy",
    "aws_iam_role_policy_attachment.mlflow_rds_policy",
    "aws_security_group.db_users",
    "aws_lambda_function.db_users",
    "aws_lambda_invocation.db_users",
    "aws_iam_role.db_users",
    "aws_iam_role_policy.db_users",
    "aws_cloudwatch_log_group.db_users",
)
# The instance role's policies, in attachment order.
INSTANCE_POLICIES = (
    "mlflow_s3_policy",
    "mlflow_cloudwatch_policy",
    "mlflow_ssm_policy",
    "mlflow_rds_policy",
    "mlflow_kms_policy",
)
MASTER_SECRET = "${aws_db_instance.mlflow.master_user_secret[0].secret_arn}"


def stack(synth: Synthesized, env: str) -> dict[str, Any]:
    return synth.stack(f"mlflow-{env}")


def res(synth: Synthesized, env: str, rtype: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = synth.resources(f"mlflow-{env}", rtype)[name]
    return out


def addresses(doc: dict[str, Any]) -> set[str]:
    return {f"{t}.{n}" for t, rs in doc.get("resource", {}).items() for n in rs}


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def policy_statements(synth: Synthesized, env: str, name: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = json.loads(res(synth, env, "aws_iam_policy", name)["policy"])[
        "Statement"
    ]
    return statements


# --- addresses -----------------------------------------------------------------------------


def check_every_seed_address_is_kept(synth: Synthesized, e: Environment) -> None:
    env = e.name
    have = addresses(stack(synth, env))
    expected = set(SEED_ADDRESSES) | set(OWN_ADDRESSES)
    if e.settings.mlflow.cache.enabled:
        expected |= set(CACHE_ADDRESSES)
    assert expected - have == set()
    assert "aws_key_pair.mlflow_key" not in have  # replaced by SSM Session Manager
    assert "tls_private_key" not in stack(synth, env)["resource"]


def check_cache_addresses_exist_only_where_the_cache_is_enabled(synth: Synthesized, e: Environment) -> None:
    have = addresses(stack(synth, e.name))
    if e.settings.mlflow.cache.enabled:
        assert set(CACHE_ADDRESSES) <= have
    else:
        assert not set(CACHE_ADDRESSES) & have


def check_per_zone_resources_use_count(synth: Synthesized, e: Environment) -> None:
    env = e.name
    net = e.settings.network
    zones = len(net.availability_zones)
    for tier in ("public", "private", "database"):
        subnet = res(synth, env, "aws_subnet", tier)
        assert subnet["count"] == zones
        cidrs = list(getattr(net, f"{tier}_subnet_cidrs"))
        assert subnet["cidr_block"].startswith("${element([") and subnet["cidr_block"].endswith(
            "], count.index)}"
        )
        assert re.findall(r'"([0-9./]+)"', subnet["cidr_block"]) == cidrs
        assert res(synth, env, "aws_route_table_association", tier)["count"] == zones
    assert res(synth, env, "aws_route_table", "private")["count"] == zones
    nats = 1 if net.single_nat_gateway else zones
    assert res(synth, env, "aws_nat_gateway", "main")["count"] == nats
    assert res(synth, env, "aws_eip", "nat")["count"] == nats
    # Each zone's table routes through its own gateway, wrapping around to the one shared gateway.
    route = res(synth, env, "aws_route_table", "private")["route"][0]
    assert route["nat_gateway_id"] == "${element(aws_nat_gateway.main[*].id, count.index)}"


def check_no_nested_interpolations(synth: Synthesized, e: Environment) -> None:
    """``"${f(${x})}"`` is invalid Terraform; cdktf produces it when raw references meet Fn."""
    env = e.name
    for text in strings(stack(synth, env)):
        depth, i = 0, 0
        while i < len(text):
            if text.startswith("${", i):
                assert depth == 0, text
                depth, i = 1, i + 2
                continue
            if depth and text[i] == "{":
                depth += 1
            elif depth and text[i] == "}":
                depth -= 1
            i += 1


# --- network -------------------------------------------------------------------------------


def check_network_defaults(synth: Synthesized, e: Environment) -> None:
    env = e.name
    assert res(synth, env, "aws_vpc", "main")["cidr_block"] == e.settings.network.vpc_cidr
    for tier in ("public", "private", "database"):
        assert res(synth, env, "aws_subnet", tier)["map_public_ip_on_launch"] is False
    default_sg = res(synth, env, "aws_default_security_group", "default")
    assert "ingress" not in default_sg and "egress" not in default_sg
    flow = res(synth, env, "aws_flow_log", "main")
    assert flow["log_destination"] == "${aws_cloudwatch_log_group.vpc_flow_logs.arn}"
    assert flow["traffic_type"] == "ALL"
    assert res(synth, env, "aws_cloudwatch_log_group", "vpc_flow_logs")["kms_key_id"] == KEY
    assert "route" not in res(synth, env, "aws_route_table", "database")
    s3 = res(synth, env, "aws_vpc_endpoint", "s3")
    assert s3["vpc_endpoint_type"] == "Gateway"
    for service in ("ssm", "ssmmessages", "ec2messages", "ec2", "logs", "secretsmanager"):
        ep = res(synth, env, "aws_vpc_endpoint", service)
        assert ep["vpc_endpoint_type"] == "Interface" and ep["private_dns_enabled"] is True
        assert ep["security_group_ids"] == ["${aws_security_group.vpc_endpoints.id}"]


# --- security groups -----------------------------------------------------------------------


def rules(synth: Synthesized, env: str, direction: str) -> dict[str, dict[str, Any]]:
    return synth.resources(f"mlflow-{env}", f"aws_vpc_security_group_{direction}_rule")


def rules_of(synth: Synthesized, env: str, direction: str, group: str) -> list[dict[str, Any]]:
    ref = f"${{aws_security_group.{group}.id}}"
    return [r for r in rules(synth, env, direction).values() if r["security_group_id"] == ref]


def check_security_group_rules(synth: Synthesized, e: Environment) -> None:
    env = e.name
    lb = e.settings.mlflow.load_balancer
    alb_in = rules_of(synth, env, "ingress", "alb")
    # HTTPS, and 80 only for the redirect, in every environment.
    assert {(r["from_port"], r["cidr_ipv4"]) for r in alb_in} == {
        (port, cidr) for cidr in lb.ingress_cidrs for port in (443, 80)
    }
    assert [
        (r["from_port"], r["referenced_security_group_id"]) for r in rules_of(synth, env, "egress", "alb")
    ] == [(80, "${aws_security_group.mlflow_app.id}")]
    app_in = rules_of(synth, env, "ingress", "mlflow_app")
    assert [(r["from_port"], r["to_port"], r["referenced_security_group_id"]) for r in app_in] == [
        (80, 80, "${aws_security_group.alb.id}")
    ]
    db_in = rules_of(synth, env, "ingress", "database")
    assert sorted((r["from_port"], r["referenced_security_group_id"]) for r in db_in) == [
        (3306, "${aws_security_group.db_users.id}"),
        (3306, "${aws_security_group.mlflow_app.id}"),
    ]
    assert rules_of(synth, env, "egress", "database") == []
    # The database-user function: out to the database and HTTPS (endpoint, CA bundle); nothing in.
    assert rules_of(synth, env, "ingress", "db_users") == []
    assert {
        (r["from_port"], r.get("cidr_ipv4") or r["referenced_security_group_id"])
        for r in rules_of(synth, env, "egress", "db_users")
    } == {(3306, "${aws_security_group.database.id}"), (443, "0.0.0.0/0")}
    endpoints_in = rules_of(synth, env, "ingress", "vpc_endpoints")
    assert sorted((r["from_port"], r["referenced_security_group_id"]) for r in endpoints_in) == [
        (443, "${aws_security_group.db_users.id}"),
        (443, "${aws_security_group.mlflow_app.id}"),
    ]
    app_out = {
        (r["from_port"], r.get("cidr_ipv4") or r["referenced_security_group_id"])
        for r in rules_of(synth, env, "egress", "mlflow_app")
    }
    expected_out = {(443, "0.0.0.0/0"), (3306, "${aws_security_group.database.id}")}
    if e.settings.mlflow.cache.enabled:
        expected_out.add((6379, "${aws_security_group.elasticache.id}"))
        cache_in = rules_of(synth, env, "ingress", "elasticache")
        assert [(r["from_port"], r["referenced_security_group_id"]) for r in cache_in] == [
            (6379, "${aws_security_group.mlflow_app.id}")
        ]
        assert rules_of(synth, env, "egress", "elasticache") == []
    assert app_out == expected_out
    for direction in ("ingress", "egress"):
        for name, rule in rules(synth, env, direction).items():
            assert rule["description"].strip(), name
            assert rule["ip_protocol"] == "tcp" and rule["from_port"] == rule["to_port"], name
    for name, group in synth.resources(f"mlflow-{env}", "aws_security_group").items():
        assert group["description"].strip() and "ingress" not in group and "egress" not in group, name


# --- encryption ----------------------------------------------------------------------------


def check_one_customer_key_encrypts_everything(synth: Synthesized, e: Environment) -> None:
    env = e.name
    key = res(synth, env, "aws_kms_key", "mlflow")
    assert key["enable_key_rotation"] is True and key["deletion_window_in_days"] == 30
    assert len(synth.resources(f"mlflow-{env}", "aws_kms_key")) == 1
    db = res(synth, env, "aws_db_instance", "mlflow")
    assert db["kms_key_id"] == KEY and db["master_user_secret_kms_key_id"] == KEY
    if db["performance_insights_enabled"]:
        assert db["performance_insights_kms_key_id"] == KEY
    sse = res(synth, env, "aws_s3_bucket_server_side_encryption_configuration", "mlflow_artifacts")["rule"][0]
    assert sse["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "aws:kms",
        "kms_master_key_id": KEY,
    }
    assert sse["bucket_key_enabled"] is True
    ebs = res(synth, env, "aws_launch_template", "mlflow")["block_device_mappings"][0]["ebs"]
    assert ebs["kms_key_id"] == KEY and ebs["encrypted"] == "true" and ebs["volume_type"] == "gp3"
    # The settings are no secrets (hosts, names, ARNs): plain parameters, readable by a plan
    # without the key. The secrets are in Secrets Manager, under the key.
    # Under settings/: Parameter Store refuses to change the type of a parameter in a hierarchy, so
    # the SecureString ones of earlier versions (one level up) are replaced, not changed.
    for name, param in synth.resources(f"mlflow-{env}", "aws_ssm_parameter").items():
        assert param["type"] == "String" and "key_id" not in param, name
        assert param["name"] == f"/mlopspltf-{env}/mlflow/settings/{name}"
    for name, secret in synth.resources(f"mlflow-{env}", "aws_secretsmanager_secret").items():
        assert secret["kms_key_id"] == KEY, name
    assert res(synth, env, "aws_sns_topic", "alerts")["kms_master_key_id"] == KEY
    for name, group in synth.resources(f"mlflow-{env}", "aws_cloudwatch_log_group").items():
        assert group["kms_key_id"] == KEY, name
        assert group["retention_in_days"] == e.settings.mlflow.log_retention_days, name
    if e.settings.mlflow.cache.enabled:
        assert res(synth, env, "aws_elasticache_replication_group", "mlflow")["kms_key_id"] == KEY
        assert res(synth, env, "aws_secretsmanager_secret", "redis_auth_token")["kms_key_id"] == KEY
    services = {
        s.get("Principal", {}).get("Service")
        for s in json.loads(key["policy"])["Statement"]
        if "Principal" in s
    }
    assert {f"logs.{e.settings.aws_region}.amazonaws.com", "cloudwatch.amazonaws.com"} <= services
    # The key's own account statement uses the stack's one caller identity.
    root = json.loads(key["policy"])["Statement"][0]["Principal"]["AWS"]
    assert (
        root
        == "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
    )
    data = stack(synth, env)["data"]
    assert (list(data["aws_caller_identity"]), list(data["aws_partition"])) == (["current"], ["current"])


# --- database ------------------------------------------------------------------------------


def check_rds_mysql(synth: Synthesized, e: Environment) -> None:
    env = e.name
    cfg = e.settings.mlflow.database
    db = res(synth, env, "aws_db_instance", "mlflow")
    assert db["engine"] == "mysql" and db["engine_version"] == cfg.engine_version
    # Extended Support is a decision in the file, never the API's default (which enrolls and bills).
    assert db["engine_lifecycle_support"] == cfg.lifecycle_support
    assert db["allow_major_version_upgrade"] is cfg.allow_major_version_upgrade
    assert db["storage_encrypted"] is True and db["publicly_accessible"] is False
    assert db["manage_master_user_password"] is True
    assert "password" not in db and "password_wo" not in db
    assert db["skip_final_snapshot"] is False
    assert db["copy_tags_to_snapshot"] is True and db["iam_database_authentication_enabled"] is True
    assert db["instance_class"] == cfg.instance_class
    assert (db["allocated_storage"], db["max_allocated_storage"]) == (
        cfg.allocated_storage_gb,
        cfg.max_allocated_storage_gb,
    )
    assert db["multi_az"] is cfg.multi_az
    assert db["deletion_protection"] is cfg.deletion_protection
    assert db["backup_retention_period"] == cfg.backup_retention_days
    assert db["performance_insights_enabled"] is cfg.performance_insights
    assert db["monitoring_interval"] == cfg.monitoring_interval
    assert db["enabled_cloudwatch_logs_exports"] == list(cfg.log_exports)
    if cfg.monitoring_interval:
        assert db["monitoring_role_arn"] == "${aws_iam_role.rds_monitoring.arn}"
    for log in cfg.log_exports:
        group = res(synth, env, "aws_cloudwatch_log_group", f"rds_{log}")
        assert group["name"] == f"/aws/rds/instance/mlopspltf-{env}-mlflow/{log}"
    assert db["db_subnet_group_name"] == "${aws_db_subnet_group.database.name}"
    assert res(synth, env, "aws_db_subnet_group", "database")["subnet_ids"] == "${aws_subnet.database[*].id}"
    group = res(synth, env, "aws_db_parameter_group", "mlflow")
    # One group per major version, named after it, created before the group it replaces goes.
    assert group["family"] == f"mysql{cfg.major_version}"
    assert group["name"] == f"mlopspltf-{env}-mlflow" + ("" if cfg.is_upgrade_source else "-mysql84")
    assert group["lifecycle"] == {"create_before_destroy": True}
    assert db["parameter_group_name"] == "${aws_db_parameter_group.mlflow.name}"
    params = {p["name"]: p["value"] for p in group["parameter"]}
    assert params["require_secure_transport"] == "1"  # ON
    assert params["character_set_server"] == "utf8mb4" and params["collation_server"].startswith("utf8mb4")


def check_production_database_is_hardened(synth: Synthesized, e: Environment) -> None:
    db = res(synth, e.name, "aws_db_instance", "mlflow")
    explicit = e.settings.mlflow.database.apply_immediately
    assert db["apply_immediately"] is (explicit if explicit is not None else not e.settings.is_production)
    if e.settings.is_production:
        assert db["multi_az"] and db["deletion_protection"] and db["performance_insights_enabled"]


# --- the database user ---------------------------------------------------------------------


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def instance_statements(synth: Synthesized, env: str) -> list[dict[str, Any]]:
    return [s for name in INSTANCE_POLICIES for s in policy_statements(synth, env, name)]


def check_instances_never_read_the_master_secret(synth: Synthesized, e: Environment) -> None:
    env = e.name
    for statement in instance_statements(synth, env):
        assert MASTER_SECRET not in json.dumps(statement), statement
    # The secrets the instances may read: the sign-in's two and, with the cache, the Redis token.
    readable = [
        statement["Resource"]
        for statement in instance_statements(synth, env)
        if any(a.startswith("secretsmanager:") for a in actions_of(statement))
    ]
    cache = e.settings.mlflow.cache.enabled
    signin = [
        f"${{aws_secretsmanager_secret.{n}.arn}}"
        for n in ("mlflow_admin_password", "mlflow_flask_secret_key")
    ]
    assert readable == [[*signin, *(["${aws_secretsmanager_secret.redis_auth_token.arn}"] if cache else [])]]
    # Their settings name the user they log in as, not the secret.
    params = synth.resources(f"mlflow-{env}", "aws_ssm_parameter")
    assert params["db_user"]["value"] == "mlflow"
    assert [name for name, p in params.items() if MASTER_SECRET in p["value"]] == []
    # In the whole stack, one IAM document names the master secret: the database-user function's.
    documents = {
        f"{rtype}.{name}": body["policy"]
        for rtype in ("aws_iam_policy", "aws_iam_role_policy")
        for name, body in synth.resources(f"mlflow-{env}", rtype).items()
    }
    assert [a for a, doc in documents.items() if MASTER_SECRET in doc] == ["aws_iam_role_policy.db_users"]


def check_instances_log_in_as_the_mlflow_user(synth: Synthesized, e: Environment) -> None:
    env = e.name
    connect = [
        s for s in instance_statements(synth, env) if any(a.startswith("rds-db:") for a in actions_of(s))
    ]
    assert connect == [
        {
            "Sid": "ConnectAsMlflowUser",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            # This instance's DbiResourceId and the one user, nothing wider.
            "Resource": f"arn:${{data.aws_partition.current.partition}}:rds-db:{e.settings.aws_region}:"
            "${data.aws_caller_identity.current.account_id}:dbuser:${aws_db_instance.mlflow.resource_id}/mlflow",
        }
    ]
    attachment = res(synth, env, "aws_iam_role_policy_attachment", "mlflow_rds_policy")
    assert attachment["role"] == "${aws_iam_role.mlflow_instance_role.name}"
    assert res(synth, env, "aws_db_instance", "mlflow")["iam_database_authentication_enabled"] is True


def check_database_user_function(synth: Synthesized, e: Environment) -> None:
    env = e.name
    function = res(synth, env, "aws_lambda_function", "db_users")
    assert function["function_name"] == f"mlopspltf-{env}-mlflow-db-users"
    assert function["vpc_config"] == {
        "subnet_ids": "${aws_subnet.private[*].id}",
        "security_group_ids": ["${aws_security_group.db_users.id}"],
    }
    assert function["reserved_concurrent_executions"] == 1
    logs = res(synth, env, "aws_cloudwatch_log_group", "db_users")
    assert logs["name"] == f"/aws/lambda/{function['function_name']}" and logs["kms_key_id"] == KEY
    # Its role reads the master secret, and fills the stack's generated secrets (only those); the
    # key only through Secrets Manager.
    statements = json.loads(res(synth, env, "aws_iam_role_policy", "db_users")["policy"])["Statement"]
    generated = [
        f"${{aws_secretsmanager_secret.{n}.arn}}"
        for n in (
            "mlflow_admin_password",
            "mlflow_flask_secret_key",
            *(["redis_auth_token"] if e.settings.mlflow.cache.enabled else []),
        )
    ]
    secrets = {s["Sid"]: s for s in statements if any(a.startswith("secretsmanager:") for a in actions_of(s))}
    assert (secrets["ReadMasterSecret"]["Action"], secrets["ReadMasterSecret"]["Resource"]) == (
        "secretsmanager:GetSecretValue",
        MASTER_SECRET,
    )
    assert secrets["GenerateSecretValues"]["Resource"] == generated
    assert secrets["RandomValues"]["Action"] == "secretsmanager:GetRandomPassword"
    assert set(secrets) == {"ReadMasterSecret", "GenerateSecretValues", "RandomValues"}
    via = {"StringEquals": {"kms:ViaService": f"secretsmanager.{e.settings.aws_region}.amazonaws.com"}}
    kms = [s for s in statements if any(a.startswith("kms:") for a in actions_of(s))]
    assert [(s["Action"], s["Resource"], s["Condition"]) for s in kms] == [
        ("kms:Decrypt", KEY, via),
        ("kms:GenerateDataKey", KEY, via),
    ]
    invocation = res(synth, env, "aws_lambda_invocation", "db_users")
    assert invocation["function_name"] == "${aws_lambda_function.db_users.function_name}"
    # The event: where the database is, which secrets to read and fill; a secret's value never.
    members = jsonencode_members(invocation["input"])
    assert members == {
        "secret_arn": MASTER_SECRET.removeprefix("${").removesuffix("}"),
        "host": "aws_db_instance.mlflow.address",
        "port": "aws_db_instance.mlflow.port",
        "databases": '["mlflow", "mlflow_auth"]',
        "user": '"mlflow"',
        "region": f'"{e.settings.aws_region}"',
        "secrets": "[" + ", ".join(g.removeprefix("${").removesuffix("}") for g in generated[:2]) + "]",
        **(
            {
                "redis": '{"replication_group_id" = aws_elasticache_replication_group.mlflow.id, '
                '"secret_arn" = aws_secretsmanager_secret.redis_auth_token.arn}'
            }
            if e.settings.mlflow.cache.enabled
            else {}
        ),
    }
    # A re-created database (new resource id) or new handler code runs it again.
    assert invocation["triggers"] == {
        "db_resource_id": "${aws_db_instance.mlflow.resource_id}",
        "code_hash": function["source_code_hash"],
    }
    assert invocation["lifecycle_scope"] == "CREATE_ONLY"
    # It runs once its network path exists, and before any instance logs in.
    assert set(invocation["depends_on"]) == {
        "aws_vpc_security_group_egress_rule.db_users_to_database",
        "aws_vpc_security_group_ingress_rule.database_from_db_users",
        "aws_vpc_security_group_egress_rule.db_users_https_out",
        "aws_vpc_security_group_ingress_rule.endpoints_from_db_users",
        "aws_nat_gateway.main",
        "aws_route_table.private",
        "aws_route_table_association.private",
        "aws_vpc_endpoint.secretsmanager",
    }
    assert (
        "aws_lambda_invocation.db_users" in res(synth, env, "aws_autoscaling_group", "mlflow")["depends_on"]
    )
    # The archive Terraform uploads: the handler and the driver it imports.
    with zipfile.ZipFile(synth.stack_dir(f"mlflow-{env}") / function["filename"]) as archive:
        names = set(archive.namelist())
    assert {"handler.py", "generated_secrets.py", "pymysql/__init__.py"} <= names


# --- cache ---------------------------------------------------------------------------------


def check_redis(synth: Synthesized, e: Environment) -> None:
    env = e.name
    cfg = e.settings.mlflow.cache
    if not cfg.enabled:
        return
    group = res(synth, env, "aws_elasticache_replication_group", "mlflow")
    assert group["engine"] == "redis" and group["engine_version"].startswith("7")
    assert group["at_rest_encryption_enabled"] == "true" and group["transit_encryption_enabled"] is True
    assert group["transit_encryption_mode"] == "required"
    # Its AUTH token is the provisioning Lambda's: nothing of it in Terraform (or its state).
    assert "auth_token" not in group
    assert group["lifecycle"]["ignore_changes"] == ["auth_token", "auth_token_update_strategy"]
    assert group["num_cache_clusters"] == cfg.num_nodes
    failover = cfg.num_nodes >= 2
    assert group["automatic_failover_enabled"] is failover and group["multi_az_enabled"] is failover
    assert group["node_type"] == cfg.node_type
    assert group["security_group_ids"] == ["${aws_security_group.elasticache.id}"]
    assert "aws_secretsmanager_secret_version" not in stack(synth, env)["resource"]
    # Its endpoint and token reach MLflow: parameters the launcher reads, the secret it may read.
    assert res(synth, env, "aws_ssm_parameter", "redis_host")["value"] == (
        "${aws_elasticache_replication_group.mlflow.primary_endpoint_address}"
    )
    assert res(synth, env, "aws_ssm_parameter", "redis_auth_secret_arn")["value"] == (
        "${aws_secretsmanager_secret.redis_auth_token.arn}"
    )
    readable = [
        r
        for s in policy_statements(synth, env, "mlflow_ssm_policy")
        if s["Sid"] == "ReadSecrets"
        for r in s["Resource"]
    ]
    assert "${aws_secretsmanager_secret.redis_auth_token.arn}" in readable


# --- compute -------------------------------------------------------------------------------


def check_launch_template_and_group(synth: Synthesized, e: Environment) -> None:
    env = e.name
    cfg = e.settings.mlflow.server
    lt = res(synth, env, "aws_launch_template", "mlflow")
    assert lt["metadata_options"]["http_tokens"] == "required"
    assert lt["metadata_options"]["http_put_response_hop_limit"] == 1
    assert "key_name" not in lt
    assert lt["network_interfaces"][0]["associate_public_ip_address"] == "false"
    assert lt["network_interfaces"][0]["security_groups"] == ["${aws_security_group.mlflow_app.id}"]
    assert lt["iam_instance_profile"] == {"arn": "${aws_iam_instance_profile.mlflow_instance_profile.arn}"}
    assert lt["instance_type"] == cfg.instance_type
    assert user_data(synth, env).startswith("#!/bin/bash\n")
    asg = res(synth, env, "aws_autoscaling_group", "mlflow")
    assert asg["health_check_type"] == "ELB"
    assert (asg["min_size"], asg["max_size"], asg["desired_capacity"]) == (
        cfg.min_size,
        cfg.max_size,
        cfg.desired_capacity,
    )
    assert asg["vpc_zone_identifier"] == "${aws_subnet.private[*].id}"
    assert asg["target_group_arns"] == ["${aws_lb_target_group.mlflow.arn}"]
    assert asg["launch_template"]["version"] == "${aws_launch_template.mlflow.latest_version}"
    refresh = asg["instance_refresh"]
    assert refresh["strategy"] == "Rolling"
    prefs = refresh["preferences"]
    # The previous release cannot start on migrated schemas: rolling back instances cannot help.
    assert prefs["auto_rollback"] is False
    # One instance launched above the desired capacity at a time, none below it.
    assert prefs["min_healthy_percentage"] == 100
    extra = cfg.desired_capacity * (prefs["max_healthy_percentage"] - 100) / 100
    assert 1 <= extra < 2, prefs
    assert {t["key"] for t in asg["tag"] if t["propagate_at_launch"]} >= {"Name", "Environment", "Project"}
    policy = res(synth, env, "aws_autoscaling_policy", "mlflow_cpu_target")
    assert policy["policy_type"] == "TargetTrackingScaling"
    assert policy["target_tracking_configuration"]["target_value"] == cfg.cpu_target_percent
    notification = res(synth, env, "aws_autoscaling_notification", "mlflow")
    assert notification["topic_arn"] == "${aws_sns_topic.alerts.arn}"
    assert "autoscaling:EC2_INSTANCE_LAUNCH_ERROR" in notification["notifications"]


def check_instance_policies_are_scoped(synth: Synthesized, e: Environment) -> None:
    env = e.name
    for name in INSTANCE_POLICIES:
        assert (
            res(synth, env, "aws_iam_role_policy_attachment", name)["policy_arn"]
            == f"${{aws_iam_policy.{name}.arn}}"
        )
        for statement in policy_statements(synth, env, name):
            if statement["Resource"] == "*":
                # The only actions without resource-level permissions, each narrowed.
                assert (
                    statement["Condition"]["StringEquals"]
                    == {
                        "cloudwatch:PutMetricData": {
                            "cloudwatch:namespace": f"mlopspltf-{env}-mlflow/instances"
                        },
                        "ec2:DescribeTags": {"aws:RequestedRegion": e.settings.aws_region},
                    }[statement["Action"]]
                ), (name, statement)
    s3 = [r for s in policy_statements(synth, env, "mlflow_s3_policy") for r in [s["Resource"]]]
    assert s3 == ["${aws_s3_bucket.mlflow_artifacts.arn}", "${aws_s3_bucket.mlflow_artifacts.arn}/*"]
    kms = policy_statements(synth, env, "mlflow_kms_policy")
    assert [s["Resource"] for s in kms] == [KEY]
    logs = policy_statements(synth, env, "mlflow_cloudwatch_policy")[0]["Resource"]
    assert logs == [
        f"${{aws_cloudwatch_log_group.{g}.arn}}:*" for g in ("mlflow_server", "mlflow_nginx", "mlflow_system")
    ]
    params = policy_statements(synth, env, "mlflow_ssm_policy")[0]["Resource"]
    assert all(
        p.endswith(
            (f":parameter/mlopspltf-{env}/mlflow/settings", f":parameter/mlopspltf-{env}/mlflow/settings/*")
        )
        for p in params
    )
    session = res(synth, env, "aws_iam_role_policy_attachment", "mlflow_ssm_session_manager")
    assert session["policy_arn"].endswith(":iam::aws:policy/AmazonSSMManagedInstanceCore")


# --- load balancer -------------------------------------------------------------------------


def check_load_balancer(synth: Synthesized, e: Environment) -> None:
    env = e.name
    cfg = e.settings.mlflow.load_balancer
    lb = res(synth, env, "aws_lb", "mlflow")
    assert lb["drop_invalid_header_fields"] is True
    assert lb["enable_deletion_protection"] is cfg.deletion_protection
    assert lb["access_logs"] == {
        "bucket": "${aws_s3_bucket.alb_logs.bucket}",
        "prefix": "alb",
        "enabled": True,
    }
    assert lb["subnets"] == "${aws_subnet.public[*].id}"
    tg = res(synth, env, "aws_lb_target_group", "mlflow")
    assert tg["health_check"]["path"] == "/health" and tg["health_check"]["matcher"] == "200"
    # HTTPS in every environment; port 80 only redirects.
    listeners = synth.resources(f"mlflow-{env}", "aws_lb_listener")
    assert set(listeners) == {"http", "https"}
    https = listeners["https"]
    assert https["protocol"] == "HTTPS" and https["ssl_policy"].startswith("ELBSecurityPolicy-TLS13-")
    assert https["certificate_arn"] == (
        cfg.certificate_arn or "${aws_acm_certificate_validation.mlflow.certificate_arn}"
    )
    redirect = listeners["http"]["default_action"]
    assert redirect == [
        {"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}
    ]


def check_custom_host_and_certificate(synth: Synthesized, e: Environment) -> None:
    """With a hosted zone, the stack's own DNS-validated certificate and the host's alias record;
    with a certificate ARN, neither. The URL is the host users type, over HTTPS."""
    cfg = e.settings.mlflow.load_balancer
    resources = stack(synth, e.name)["resource"]
    url = stack(synth, e.name)["output"]["mlflow_url"]["value"]
    if cfg.hosted_zone_id is not None:
        assert res(synth, e.name, "aws_acm_certificate", "mlflow")["domain_name"] == cfg.host_name
        assert stack(synth, e.name)["data"]["aws_route53_zone"]["mlflow"]["zone_id"] == cfg.hosted_zone_id
        alias = res(synth, e.name, "aws_route53_record", "mlflow")
        assert (alias["name"], alias["type"]) == (cfg.host_name, "A")
        assert alias["alias"]["name"] == "${aws_lb.mlflow.dns_name}"
        assert url == f"https://{cfg.host_name}"
    else:
        assert "aws_acm_certificate" not in resources and "aws_route53_record" not in resources
        assert url == f"https://{e.settings.mlflow.server.allowed_hosts[0]}"
    if e.settings.is_production:
        assert res(synth, e.name, "aws_lb", "mlflow")["enable_deletion_protection"] is True


# --- storage -------------------------------------------------------------------------------


def check_buckets(synth: Synthesized, e: Environment) -> None:
    env = e.name
    storage = e.settings.mlflow.storage
    for bucket in ("mlflow_artifacts", "alb_logs"):
        assert res(synth, env, "aws_s3_bucket", bucket)["bucket"].endswith("-${random_id.bucket_suffix.hex}")
        assert res(synth, env, "aws_s3_bucket", bucket)["force_destroy"] is False
        pab = res(synth, env, "aws_s3_bucket_public_access_block", bucket)
        assert all(
            pab[k] is True
            for k in (
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            )
        )
        assert (
            res(synth, env, "aws_s3_bucket_ownership_controls", bucket)["rule"]["object_ownership"]
            == "BucketOwnerEnforced"
        )
        assert (
            res(synth, env, "aws_s3_bucket_versioning", bucket)["versioning_configuration"]["status"]
            == "Enabled"
        )
        statements = json.loads(res(synth, env, "aws_s3_bucket_policy", bucket)["policy"])["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )
    rule = res(synth, env, "aws_s3_bucket_lifecycle_configuration", "mlflow_artifacts")["rule"][0]
    assert rule["noncurrent_version_expiration"] == [
        {"noncurrent_days": storage.noncurrent_version_expiration_days}
    ]
    assert rule["abort_incomplete_multipart_upload"] == [
        {"days_after_initiation": storage.abort_incomplete_multipart_upload_days}
    ]
    logging = res(synth, env, "aws_s3_bucket_logging", "mlflow_artifacts")
    assert logging["target_bucket"] == "${aws_s3_bucket.alb_logs.id}"
    logs_sse = res(synth, env, "aws_s3_bucket_server_side_encryption_configuration", "alb_logs")["rule"][0]
    assert logs_sse["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "AES256"
    }  # ALB requires SSE-S3
    delivery = json.loads(res(synth, env, "aws_s3_bucket_policy", "alb_logs")["policy"])["Statement"]
    assert {"logdelivery.elasticloadbalancing.amazonaws.com", "logging.s3.amazonaws.com"} <= {
        s["Principal"].get("Service") for s in delivery if isinstance(s["Principal"], dict)
    }
    assert res(synth, env, "random_id", "bucket_suffix")["byte_length"] == 4


# --- alerts and outputs --------------------------------------------------------------------


def check_alerts(synth: Synthesized, e: Environment) -> None:
    env = e.name
    cfg = e.settings.mlflow
    sub = res(synth, env, "aws_sns_topic_subscription", "alerts_email")
    assert sub["protocol"] == "email" and sub["count"] == len(cfg.alerts.emails)
    for email in cfg.alerts.emails:
        assert email in sub["endpoint"]
    alarms = synth.resources(f"mlflow-{env}", "aws_cloudwatch_metric_alarm")
    expected = {"alb_unhealthy_hosts", "alb_no_healthy_hosts", "alb_5xx_rate", "rds_cpu", "rds_free_storage"}
    if cfg.cache.enabled:
        expected.add("redis_memory")
        assert alarms["redis_memory"]["metric_name"] == "DatabaseMemoryUsagePercentage"
        assert alarms["redis_memory"]["count"] == cfg.cache.num_nodes
    assert set(alarms) == expected
    for name, alarm in alarms.items():
        assert alarm["alarm_actions"] == ["${aws_sns_topic.alerts.arn}"], name
    assert alarms["alb_unhealthy_hosts"]["metric_name"] == "UnHealthyHostCount"
    assert alarms["rds_cpu"]["metric_name"] == "CPUUtilization"
    assert alarms["rds_free_storage"]["metric_name"] == "FreeStorageSpace"
    assert alarms["rds_free_storage"]["threshold"] == cfg.alerts.db_free_storage_gb * 1024**3
    assert "5XX" in json.dumps(alarms["alb_5xx_rate"]["metric_query"])


def check_outputs(synth: Synthesized, e: Environment) -> None:
    env = e.name
    outputs = stack(synth, env)["output"]
    expected = {
        "mlflow_url",
        "artifact_bucket_name",
        "db_instance_endpoint",
        "log_group_names",
        "sns_topic_arn",
    }
    if e.settings.mlflow.cache.enabled:
        expected.add("redis_primary_endpoint_address")
    assert expected <= set(outputs)
    for name, output in outputs.items():
        assert output.get("description"), name
    assert outputs["db_instance_endpoint"]["value"] == "${aws_db_instance.mlflow.endpoint}"


# --- secrets and snapshots -----------------------------------------------------------------


def check_no_secret_in_synthesized_json(synth: Synthesized, e: Environment) -> None:
    env = e.name
    doc = stack(synth, env)
    reference = re.compile(r"^\$\{[a-z_]+\.[a-z0-9_]+(\[\d+\])?\.[a-z_]+\}$")
    found = [(key, why) for key, why in find_secrets(doc) if not reference.match(_at(doc, key))]
    assert found == []


# --- what a first apply and a boot need ---------------------------------------------------


def user_data(synth: Synthesized, env: str) -> str:
    """The boot script the launch template carries (gzipped, base64)."""
    return boot_script.decode(res(synth, env, "aws_launch_template", "mlflow")["user_data"])


def check_boot_script_hosts_origins_and_queue(synth: Synthesized, e: Environment) -> None:
    """Fixes 1, 3, 4, 5: the launcher of the synthesized user data, run with fake AWS and MLflow."""
    script = user_data(synth, e.name)
    cache = e.settings.mlflow.cache.enabled
    params = {k: v for k, v in PARAMS.items() if cache or not k.startswith("redis")}
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        done = launch(script, mp, Path(tmp), params)
    lb = e.settings.mlflow.load_balancer
    own = [lb.host_name] if lb.host_name else []
    public = [*own, *e.settings.mlflow.server.allowed_hosts, params["alb_dns_name"]]
    assert done.option("--allowed-hosts").split(",") == [*public, "localhost", "127.0.0.1"]
    assert done.option("--cors-allowed-origins").split(",") == [f"https://{host}" for host in public]
    assert done.option("--workers") == str(e.settings.mlflow.server.workers)
    # Sign-in, with this environment's administrator and default permission.
    assert done.option("--app-name") == "basic-auth"
    ini = done.files["/opt/mlflow/basic_auth.ini"]
    assert f"default_permission = {e.settings.mlflow.auth.default_permission}\n" in ini
    assert f"admin_username = {e.settings.mlflow.auth.admin_username}\n" in ini
    # The schemas are created or verified (never migrated) before MLflow starts.
    assert [(b[2], b[3]) for b in done.boots] == [
        (f"python -m ops mlflow upgrade --env {e.name}", e.settings.mlflow.auth.admin_username)
    ]
    assert done.env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert ("MLFLOW_SERVER_JOB_HUEY_REDIS_URL" in done.env) is cache
    assert done.env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == (None if cache else "false")
    assert "--constraint /opt/mlflow/constraints.txt" in script
    assert len(res(synth, e.name, "aws_launch_template", "mlflow")["user_data"]) <= 16 * 1024


def check_first_apply_ordering(synth: Synthesized, e: Environment) -> None:
    """Fixes 6, 7, 9: what AWS checks at create time exists first; a broken boot fails the apply."""
    env = e.name
    assert res(synth, env, "aws_lb", "mlflow")["depends_on"] == ["aws_s3_bucket_policy.alb_logs"]
    asg = res(synth, env, "aws_autoscaling_group", "mlflow")
    assert (
        asg["wait_for_elb_capacity"] == asg["desired_capacity"] == e.settings.mlflow.server.desired_capacity
    )
    attachments = [f"aws_iam_role_policy_attachment.{p}" for p in INSTANCE_POLICIES]
    assert [d for d in asg["depends_on"] if d.startswith("aws_iam")] == attachments
    db = res(synth, env, "aws_db_instance", "mlflow")
    if e.settings.mlflow.database.monitoring_interval:
        assert "aws_iam_role_policy_attachment.rds_monitoring" in db["depends_on"]
    params = {p["name"]: p["value"] for p in res(synth, env, "aws_db_parameter_group", "mlflow")["parameter"]}
    if "slowquery" in e.settings.mlflow.database.log_exports:
        assert (params["slow_query_log"], params["log_output"]) == ("1", "FILE")
    agent = [
        s
        for s in policy_statements(synth, env, "mlflow_cloudwatch_policy")
        if s["Action"] == "ec2:DescribeTags"
    ]
    assert len(agent) == 1


def check_service_grants_and_lifecycles(synth: Synthesized, e: Environment) -> None:
    """Fixes 8, 10, 11: the service-linked role is read (or created), service principals are
    narrowed to this account, keys are kept, snapshots are unique, the AMI is pinned."""
    env = e.name
    key = res(synth, env, "aws_kms_key", "mlflow")
    assert key["lifecycle"] == {"prevent_destroy": True}
    statements = {s["Sid"]: s for s in json.loads(key["policy"])["Statement"]}
    role = "${data.aws_iam_role.autoscaling_service_role.arn}"
    if e.settings.mlflow.create_autoscaling_service_linked_role:
        role = "${aws_iam_service_linked_role.autoscaling.arn}"
    else:
        data = stack(synth, env)["data"]["aws_iam_role"]["autoscaling_service_role"]
        assert data["name"] == "AWSServiceRoleForAutoScaling"
    assert statements["AutoScalingUsesKeyForVolumesAndNotifications"]["Principal"] == {"AWS": role}
    account = "${data.aws_caller_identity.current.account_id}"
    assert statements["CloudWatchAlarmsPublishToEncryptedTopic"]["Condition"]["StringEquals"] == {
        "aws:SourceAccount": account
    }
    trust = json.loads(res(synth, env, "aws_iam_role", "vpc_flow_logs")["assume_role_policy"])["Statement"][0]
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
    assert trust["Condition"]["ArnLike"]["aws:SourceArn"].endswith(f":{account}:vpc-flow-log/*")
    db = res(synth, env, "aws_db_instance", "mlflow")
    assert (
        db["final_snapshot_identifier"]
        == f"mlopspltf-{env}-mlflow-final-${{random_id.final_snapshot_suffix.hex}}"
    )
    assert res(synth, env, "aws_launch_template", "mlflow")["image_id"] == e.settings.mlflow.server.ami_id
    assert "aws_ssm_parameter" not in stack(synth, env)["data"]


def _at(doc: Any, path: str) -> str:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        doc = doc[int(part[1:-1])] if part.startswith("[") else doc[part]
    return str(doc)


def test_database_user_code_is_the_same_in_every_synthesis(
    synth: Synthesized, synth_with: Callable[[list[Environment], tuple[str, ...]], Synthesized]
) -> None:
    """Another synthesis (new build directory, new archive) names the same code, in every
    environment: the plan and apply jobs synthesize separately, and an unchanged handler never
    runs again."""
    envs = shipped_env_names()
    again = synth_with([synth.env(envs[0])], ("mlflow",))
    code = {
        (name, s.outdir): res(s, name, "aws_lambda_function", "db_users")
        for s, names in ((synth, envs), (again, envs[:1]))
        for name in names
    }
    assert len({(f["filename"], f["source_code_hash"]) for f in code.values()}) == 1
    archives = {
        (outdir / "stacks" / f"mlflow-{env}" / f["filename"]).read_bytes()
        for (env, outdir), f in code.items()
    }
    assert len(archives) == 1


def test_an_80_database_and_its_upgrade_as_the_files_say(
    synth_with: Callable[[list[Environment], tuple[str, ...]], Synthesized],
) -> None:
    """A production environment on an existing 8.0 database, then with what the upgrade command
    writes: the instance changes in place (engine, group, the upgrade allowed and applied at
    once, its Extended Support enrollment kept), the group is a new one (family in the name)."""
    [name] = [e.name for e in load_repo_environments() if e.settings.is_production][:1]
    path = f"{TFVARS_DIR}/{name}.tfvars"
    source = ConfigFiles().set(path, "mlflow.database.engine_version", "8.0")
    before = synth_with([e for e in source.load() if e.name == name], ("mlflow",))
    upgraded = ConfigFiles()
    for key, value in (
        ("engine_version", "8.4"),
        ("allow_major_version_upgrade", True),
        ("apply_immediately", True),
        ("engine_lifecycle_support", "open-source-rds-extended-support"),
    ):
        upgraded.set(path, f"mlflow.database.{key}", value)
    after = synth_with([e for e in upgraded.load() if e.name == name], ("mlflow",))
    old_db, new_db = (res(s, name, "aws_db_instance", "mlflow") for s in (before, after))
    old_group, new_group = (res(s, name, "aws_db_parameter_group", "mlflow") for s in (before, after))
    assert (old_db["engine_version"], new_db["engine_version"]) == ("8.0", "8.4")
    assert (old_group["family"], new_group["family"]) == ("mysql8.0", "mysql8.4")
    assert (old_group["name"], new_group["name"]) == (
        f"mlopspltf-{name}-mlflow",
        f"mlopspltf-{name}-mlflow-mysql84",
    )
    assert (old_db["apply_immediately"], new_db["apply_immediately"]) == (False, True)
    assert (old_db["allow_major_version_upgrade"], new_db["allow_major_version_upgrade"]) == (False, True)
    assert (
        old_db["engine_lifecycle_support"]
        == new_db["engine_lifecycle_support"]
        == ("open-source-rds-extended-support")
    )
    # Nothing else of the instance changes: an in-place update, no replacement.
    changed = {k for k in {*old_db, *new_db} if old_db.get(k) != new_db.get(k)}
    assert changed == {"engine_version", "apply_immediately", "allow_major_version_upgrade"}


@pytest.mark.parametrize("env", shipped_env_names())
def test_snapshot(synth: Synthesized, env: str, snapshot: SnapshotAssertion) -> None:
    assert stack(synth, env) == snapshot(extension_class=JSONSnapshotExtension)


# Every check above, on every shipped environment (tests/stacks/test_new_environment.py runs them on
# a temporary new one).
CHECKS: tuple[Check, ...] = (
    check_every_seed_address_is_kept,
    check_cache_addresses_exist_only_where_the_cache_is_enabled,
    check_per_zone_resources_use_count,
    check_no_nested_interpolations,
    check_network_defaults,
    check_security_group_rules,
    check_one_customer_key_encrypts_everything,
    check_rds_mysql,
    check_production_database_is_hardened,
    check_instances_never_read_the_master_secret,
    check_instances_log_in_as_the_mlflow_user,
    check_database_user_function,
    check_redis,
    check_launch_template_and_group,
    check_instance_policies_are_scoped,
    check_load_balancer,
    check_custom_host_and_certificate,
    check_buckets,
    check_alerts,
    check_outputs,
    check_no_secret_in_synthesized_json,
    check_boot_script_hosts_origins_and_queue,
    check_first_apply_ordering,
    check_service_grants_and_lifecycles,
)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("env", shipped_env_names())
def test_mlflow_stack(synth: Synthesized, env: str, check: Check) -> None:
    check(synth, synth.env(env))

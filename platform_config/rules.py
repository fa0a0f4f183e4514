"""Every rule that needs more than one key, another block or the environment itself, in one place.

The models check each value on its own (type, range, format); the rules here run on the validated
models and return ``Problem``s naming the file and the key to change. Each rule's docstring is its
entry in docs/configuration.md, so it says the rule as a user would need to know it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from platform_config import naming, sizing
from platform_config.backend import BackendSettings
from platform_config.databricks import (
    BATCH_TABLE_PARAMETERS,
    DEFAULT_NODE_TYPES,
    HOST_SUFFIXES,
    NODE_TYPE_PATTERNS,
    RUN_CONTEXT_PARAMETERS,
    STORAGE_SCHEMES,
)
from platform_config.environment import RESERVED_TAGS, EnvironmentSettings
from platform_config.errors import Problem


@dataclass(frozen=True)
class Validated:
    """One environment whose two files are each valid on their own."""

    name: str
    settings: EnvironmentSettings
    backend: BackendSettings
    tfvars_file: str
    backend_file: str

    def tfvars(self, key: str, message: str) -> Problem:
        return Problem(self.tfvars_file, key, message)


BackendRule = Callable[[str, BackendSettings, str], Iterator[Problem]]
EnvironmentRule = Callable[[Validated], Iterator[Problem]]
AcrossRule = Callable[[Sequence[Validated]], Iterator[Problem]]

# In the order they run; reference.py lists them in the same order.
BACKEND_RULES: list[BackendRule] = []
ENVIRONMENT_RULES: list[EnvironmentRule] = []
ACROSS_RULES: list[AcrossRule] = []


def _backend_rule(rule: BackendRule) -> BackendRule:
    BACKEND_RULES.append(rule)
    return rule


def _environment_rule(rule: EnvironmentRule) -> EnvironmentRule:
    ENVIRONMENT_RULES.append(rule)
    return rule


def _across_rule(rule: AcrossRule) -> AcrossRule:
    ACROSS_RULES.append(rule)
    return rule


def check_backend(name: str, backend: BackendSettings, file: str) -> list[Problem]:
    """Problems of environment ``name``'s backend config, judged on its own."""
    return [p for rule in BACKEND_RULES for p in rule(name, backend, file)]


def check_environment(env: Validated) -> list[Problem]:
    """Problems across the keys, blocks and files of one environment."""
    return [p for rule in ENVIRONMENT_RULES for p in rule(env)]


def check_across(envs: Sequence[Validated]) -> list[Problem]:
    """Problems between environments (each one valid on its own), in file-name order."""
    return [p for rule in ACROSS_RULES for p in rule(envs)]


# --- backend config ------------------------------------------------------------------------------


@_backend_rule
def state_bucket_name(name: str, backend: BackendSettings, file: str) -> Iterator[Problem]:
    """`bucket` is the environment's own state bucket, `mlopspltf-<env>-s3-tf-backend`."""
    expected = naming.state_bucket(name)
    if backend.bucket != expected:
        yield Problem(file, "bucket", f"is {backend.bucket!r}; environment {name!r} uses {expected!r}")


@_backend_rule
def lock_table_name(name: str, backend: BackendSettings, file: str) -> Iterator[Problem]:
    """`dynamodb_table`, when set, is the environment's own lock table, `mlopspltf-<env>-ddb-tf-backend`."""
    expected = naming.lock_table(name)
    if backend.dynamodb_table is not None and backend.dynamodb_table != expected:
        yield Problem(
            file, "dynamodb_table", f"is {backend.dynamodb_table!r}; environment {name!r} uses {expected!r}"
        )


@_backend_rule
def state_locking(name: str, backend: BackendSettings, file: str) -> Iterator[Problem]:
    """State is locked: `dynamodb_table`, `use_lockfile = true`, or both."""
    if backend.dynamodb_table is None and not backend.use_lockfile:
        yield Problem(
            file,
            "dynamodb_table",
            "no state locking configured: set dynamodb_table, use_lockfile = true, or both",
        )


@_backend_rule
def state_encryption(name: str, backend: BackendSettings, file: str) -> Iterator[Problem]:
    """`encrypt = true`: state files hold sensitive data."""
    if not backend.encrypt:
        yield Problem(file, "encrypt", "must be true: state files hold sensitive data")


# --- both files ----------------------------------------------------------------------------------


@_environment_rule
def backend_region(env: Validated) -> Iterator[Problem]:
    """The backend config's `region` is the tfvars' `aws_region`: the state bucket is created there."""
    if env.backend.region != env.settings.aws_region:
        yield Problem(
            env.backend_file,
            "region",
            f"is {env.backend.region!r} but {env.tfvars_file} sets aws_region = "
            f"{env.settings.aws_region!r}; the state bucket is created in the environment's region",
        )


@_environment_rule
def state_kms_key(env: Validated) -> Iterator[Problem]:
    """With `state_bucket.sse_algorithm = "aws:kms"` the backend config sets `kms_key_id` to the
    environment's alias `alias/mlopspltf-<env>-tf-backend` or a key ARN: the bucket only accepts
    SSE-KMS writes."""
    if env.settings.state_bucket.sse_algorithm != "aws:kms":
        return
    alias = naming.state_kms_alias(env.name)
    key_id = env.backend.kms_key_id
    if key_id is None:
        yield Problem(
            env.backend_file,
            "kms_key_id",
            f"missing: the state bucket only accepts SSE-KMS writes; set kms_key_id = {alias!r}",
        )
    elif not (key_id == alias or key_id.startswith("arn:")):
        yield Problem(env.backend_file, "kms_key_id", f"must be {alias!r} or a key ARN")


@_environment_rule
def state_replication_region(env: Validated) -> Iterator[Problem]:
    """With `state_bucket.replication.enabled`, `state_bucket.replication.region` is set and is not
    `aws_region`: the replica is only a copy outside the region if it is elsewhere."""
    replication = env.settings.state_bucket.replication
    key = "state_bucket.replication.region"
    if replication.enabled and replication.region is None:
        yield env.tfvars(key, "missing: replication needs the replica's region (e.g. us-west-2)")
    elif replication.region is not None and replication.region == env.settings.aws_region:
        yield env.tfvars(key, f"is aws_region ({env.settings.aws_region}); the replica needs another region")


@_environment_rule
def reserved_tags(env: Validated) -> Iterator[Problem]:
    """`tags` does not set `Project`, `Environment`, `Stack` or `ManagedBy`: the app sets them."""
    for tag in env.settings.tags:
        if tag in RESERVED_TAGS:
            yield env.tfvars(f"tags.{tag}", "is set by the app; remove it")


# --- network -------------------------------------------------------------------------------------


@_environment_rule
def zones_of_the_region(env: Validated) -> Iterator[Problem]:
    """`network.availability_zones` are distinct zones of `aws_region`."""
    region = env.settings.aws_region
    zones = env.settings.network.availability_zones
    for i, az in enumerate(zones):
        if not re.fullmatch(re.escape(region) + r"[a-z]", az):
            yield env.tfvars(
                f"network.availability_zones[{i}]", f"{az!r} is not an availability zone of {region}"
            )
    if len(set(zones)) != len(zones):
        yield env.tfvars("network.availability_zones", "lists a zone twice")


@_environment_rule
def subnets(env: Validated) -> Iterator[Problem]:
    """Each subnet list has one CIDR per availability zone, inside `network.vpc_cidr`, and no subnet
    overlaps another."""
    net = env.settings.network
    vpc = ipaddress.ip_network(net.vpc_cidr)
    seen: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for tier in ("public", "private", "database"):
        key = f"network.{tier}_subnet_cidrs"
        cidrs: tuple[str, ...] = getattr(net, f"{tier}_subnet_cidrs")
        if len(cidrs) != len(net.availability_zones):
            yield env.tfvars(
                key,
                f"has {len(cidrs)} entries; needs one per availability zone ({len(net.availability_zones)})",
            )
        for i, cidr in enumerate(cidrs):
            sub = ipaddress.ip_network(cidr)
            if not sub.subnet_of(vpc):  # type: ignore[arg-type]
                yield env.tfvars(f"{key}[{i}]", f"{cidr} is outside vpc_cidr {net.vpc_cidr}")
            for other_key, other in seen:
                if sub.overlaps(other):
                    yield env.tfvars(f"{key}[{i}]", f"{cidr} overlaps {other_key} ({other})")
            seen.append((f"{key}[{i}]", sub))


# --- mlflow --------------------------------------------------------------------------------------


@_environment_rule
def cache_nodes_per_zone(env: Validated) -> Iterator[Problem]:
    """With `mlflow.cache.enabled`, `mlflow.cache.num_nodes` is at most two per availability zone."""
    cache = env.settings.mlflow.cache
    if cache.enabled and cache.num_nodes > len(env.settings.network.availability_zones) * 2:
        yield env.tfvars("mlflow.cache.num_nodes", "more nodes than two per availability zone")


@_environment_rule
def mlflow_https(env: Validated) -> Iterator[Problem]:
    """Every environment serves MLflow over HTTPS, since its sign-in sends passwords: exactly one of
    `mlflow.load_balancer.certificate_arn` (an existing certificate) and
    `mlflow.load_balancer.hosted_zone_id` (the stack creates a DNS-validated certificate and the
    alias record of `mlflow.load_balancer.host_name` in that public zone) is set. `host_name` goes
    with `hosted_zone_id` only. With `certificate_arn`, `mlflow.server.allowed_hosts` names at least
    one custom host: the certificate cannot cover the load balancer's `*.elb.amazonaws.com` name, so
    users arrive on a custom domain, which MLflow refuses (403) unless it is listed."""
    lb = env.settings.mlflow.load_balancer
    key = "mlflow.load_balancer"
    if lb.certificate_arn is None and lb.hosted_zone_id is None:
        yield env.tfvars(
            f"{key}.certificate_arn",
            "missing: sign-in needs HTTPS in every environment; set certificate_arn (an existing ACM "
            "certificate) or hosted_zone_id and host_name (the stack creates the certificate)",
        )
    elif lb.certificate_arn is not None and lb.hosted_zone_id is not None:
        yield env.tfvars(
            f"{key}.hosted_zone_id",
            "set together with certificate_arn: choose one (the stack would create a second certificate)",
        )
    if lb.hosted_zone_id is not None and lb.host_name is None:
        yield env.tfvars(f"{key}.host_name", "missing: hosted_zone_id needs the name to create there")
    if lb.host_name is not None and lb.hosted_zone_id is None:
        yield env.tfvars(
            f"{key}.host_name", "only used with hosted_zone_id (with certificate_arn: server.allowed_hosts)"
        )
    if lb.host_name is not None and lb.host_name.startswith("*."):
        yield env.tfvars(f"{key}.host_name", "a wildcard cannot be an alias record: name one host")
    if lb.certificate_arn is not None and not env.settings.mlflow.server.allowed_hosts:
        yield env.tfvars(
            "mlflow.server.allowed_hosts",
            "needs the custom host name(s) the certificate covers (e.g. mlflow.example.org): with "
            "certificate_arn set, users cannot use the load balancer's own name",
        )


@_environment_rule
def mlflow_certificate_location(env: Validated) -> Iterator[Problem]:
    """`mlflow.load_balancer.certificate_arn` is a certificate in `aws_region` (a load balancer only
    uses certificates of its own region) and, when `aws_account_id` is set, of that account."""
    arn = env.settings.mlflow.load_balancer.certificate_arn
    if arn is None:
        return
    _, _, _, region, account, _ = arn.split(":", 5)
    if region != env.settings.aws_region:
        yield env.tfvars(
            "mlflow.load_balancer.certificate_arn",
            f"is a certificate in {region}; the load balancer is in aws_region = {env.settings.aws_region!r}",
        )
    if env.settings.aws_account_id is not None and account != env.settings.aws_account_id:
        yield env.tfvars(
            "mlflow.load_balancer.certificate_arn",
            f"belongs to account {account}; aws_account_id = {env.settings.aws_account_id!r}",
        )


@_environment_rule
def mlflow_ami_pinned(env: Validated) -> Iterator[Problem]:
    """`mlflow.server.ami_id` is set: the instances run a pinned AMI, so a new Amazon Linux release
    never starts an unplanned instance refresh (bump procedure: docs/stacks/mlflow.md)."""
    if env.settings.mlflow.server.ami_id is None:
        yield env.tfvars(
            "mlflow.server.ami_id",
            "missing: pin the Amazon Linux 2023 AMI of aws_region (docs/stacks/mlflow.md, Bumping the AMI)",
        )


@_environment_rule
def mlflow_memory_headroom(env: Validated) -> Iterator[Problem]:
    """`mlflow.server.workers` leaves at least half of `mlflow.server.instance_type`'s memory free:
    MLflow's estimated memory at rest (a base, plus each server worker, plus the job runner and its
    job-queue consumers when `mlflow.cache.enabled` turns job execution on; figures measured by the
    boot rehearsal, `platform_config/sizing.py`) is at most half of the instance's memory.
    The other half is for the system, nginx, the CloudWatch agent, uploads, job runs and spikes."""
    server = env.settings.mlflow.server
    jobs = env.settings.mlflow.cache.enabled
    estimate = sizing.MLFLOW_AT_REST.estimate(server.workers, jobs)
    budget = sizing.budget_mib(server.instance_type)
    if estimate <= budget:
        return
    at_rest = sizing.MLFLOW_AT_REST
    terms = f"{at_rest.base} MiB base + {server.workers} x {at_rest.server_worker} MiB per worker"
    if jobs:
        terms += f" + {at_rest.job_queue} MiB for the job queue, which cache.enabled turns on"
    fits = sizing.max_workers(server.instance_type, jobs)
    advice = f"{fits} is the most that fits" if fits else "not even one fits"
    yield env.tfvars(
        "mlflow.server.workers",
        f"workers = {server.workers} needs an estimated {estimate} MiB at rest ({terms}), more than half "
        f"of {server.instance_type}'s {sizing.INSTANCE_MEMORY_MIB[server.instance_type]} MiB "
        f"({budget} MiB): {advice}; or choose a larger instance_type",
    )


# --- databricks ----------------------------------------------------------------------------------


@_environment_rule
def databricks_principals(env: Validated) -> Iterator[Problem]:
    """`databricks.plan_principal` is neither `deploy_principal` nor `run_as_service_principal`: the
    plan identity is the read-only one (pull requests and the drift check sign in as it)."""
    s = env.settings.databricks
    for key, other in (
        ("deploy_principal", s.deploy_principal),
        ("run_as_service_principal", s.run_as_service_principal),
    ):
        if s.plan_principal.lower() == other.lower():
            yield env.tfvars(
                "databricks.plan_principal",
                f"is also {key}: the plan identity must be a read-only principal of its own",
            )


@_environment_rule
def databricks_cloud(env: Validated) -> Iterator[Problem]:
    """`databricks.host`, `model.storage_location` and `job_cluster.node_type_id` belong to
    `databricks.cloud` (hosts on a custom domain cannot be told apart and pass)."""
    s = env.settings.databricks
    host_cloud = next((c for c, suffixes in HOST_SUFFIXES.items() if s.host.endswith(suffixes)), None)
    if host_cloud is not None and host_cloud != s.cloud:
        yield env.tfvars(
            "databricks.host", f"{s.host!r} is a workspace on {host_cloud}, but cloud = {s.cloud!r}"
        )
    location = s.model.storage_location
    if location is not None and not location.startswith(STORAGE_SCHEMES[s.cloud]):
        schemes = " or ".join(STORAGE_SCHEMES[s.cloud])
        yield env.tfvars("databricks.model.storage_location", f"must start with {schemes} on {s.cloud}")
    node_type = s.job_cluster.node_type_id
    if node_type is not None and not NODE_TYPE_PATTERNS[s.cloud].match(node_type):
        yield env.tfvars(
            "databricks.job_cluster.node_type_id",
            f"{node_type!r} is not a node type on {s.cloud} (e.g. {DEFAULT_NODE_TYPES[s.cloud]})",
        )


@_environment_rule
def databricks_training_tasks(env: Validated) -> Iterator[Problem]:
    """`databricks.training.tasks` is non-empty with `layout = "notebooks"`, empty with the
    template layout, its task keys are unique, and no task's `parameters` (nor
    `batch_inference.parameters`) redefines the run context every task gets (`env`, `catalog`,
    `schema`, `model_name`, `experiment_name`); the batch task's also not its table parameters."""
    training = env.settings.databricks.training
    if training.layout == "notebooks" and not training.tasks:
        yield env.tfvars("databricks.training.tasks", 'layout = "notebooks" needs at least one task')
    if training.layout == "template" and training.tasks:
        yield env.tfvars(
            "databricks.training.tasks",
            'only used with layout = "notebooks" (the template layout has fixed tasks)',
        )
    seen: dict[str, int] = {}
    for i, task in enumerate(training.tasks):
        if task.key in seen:
            yield env.tfvars(
                f"databricks.training.tasks[{i}].key",
                f"duplicate task key {task.key!r} (also training.tasks[{seen[task.key]}])",
            )
        else:
            seen[task.key] = i
        for name in sorted(set(task.parameters) & set(RUN_CONTEXT_PARAMETERS)):
            yield env.tfvars(
                f"databricks.training.tasks[{i}].parameters.{name}",
                "is set from the environment for every task (its run context); remove it here",
            )
    batch = env.settings.databricks.batch_inference
    for name in sorted(set(batch.parameters) & {*RUN_CONTEXT_PARAMETERS, *BATCH_TABLE_PARAMETERS}):
        yield env.tfvars(
            f"databricks.batch_inference.parameters.{name}",
            "is set from the environment (run context, input_table, output_table); remove it here",
        )


@_environment_rule
def databricks_keys_without_effect(env: Validated) -> Iterator[Problem]:
    """A key that would be silently ignored is an error, since a setting that does nothing misleads:
    `training.training_data_path` or
    `training.validation` with `layout = "notebooks"`, `job_cluster` when both jobs set
    `existing_cluster_id`."""
    s = env.settings.databricks
    if s.training.layout == "notebooks":
        for key in sorted(s.training.model_fields_set & {"training_data_path", "validation"}):
            yield env.tfvars(f"databricks.training.{key}", 'only used with layout = "template"')
    both_existing = s.training.existing_cluster_id and s.batch_inference.existing_cluster_id
    if both_existing and "job_cluster" in s.model_fields_set:
        yield env.tfvars("databricks.job_cluster", "has no effect: both jobs set existing_cluster_id")


@_environment_rule
def databricks_tags(env: Validated) -> Iterator[Problem]:
    """`databricks.tags` keys are 1-127 letters, digits or `_.:/=+-@` and spaces; values up to 255
    characters."""
    for key, value in env.settings.databricks.tags.items():
        if not re.fullmatch(r"[A-Za-z0-9_.:/=+@ -]{1,127}", key) or len(value) > 255:
            yield env.tfvars(
                f"databricks.tags.{key}", "tag keys are 1-127 letters, digits or _.:/=+-@; values up to 255"
            )


@_environment_rule
def databricks_prod_target(env: Validated) -> Iterator[Problem]:
    """`databricks.target = "prod"` only in a production environment."""
    if not env.settings.is_production and env.settings.databricks.target == "prod":
        yield env.tfvars(
            "databricks.target", '"prod" is the production target; this is not a production environment'
        )


# --- across environments -------------------------------------------------------------------------


@_across_rule
def databricks_targets_unique(envs: Sequence[Validated]) -> Iterator[Problem]:
    """No two environments have the same Databricks target (`databricks.target`, default: `test`,
    `staging`, `prod` for dev, tst, prd and the environment's name otherwise): the target names
    the catalog, experiment, files and jobs, so two environments would manage the same ones."""
    first: dict[str, Validated] = {}
    for env in sorted(envs, key=lambda e: e.tfvars_file):
        target = env.settings.databricks.target or naming.databricks_target(env.name)
        if target in first:
            yield env.tfvars(
                "databricks.target",
                f"{target!r} is also the target of environment {first[target].name!r} "
                f"({first[target].tfvars_file}): each environment needs its own (e.g. {env.name!r})",
            )
        else:
            first[target] = env


@_across_rule
def vpc_ranges_apart(envs: Sequence[Validated]) -> Iterator[Problem]:
    """No two environments' `network.vpc_cidr` overlap (`env add` picks a free range), unless one
    of them lists the other in `network.overlap_allowed_with`: then both set `aws_account_id`, to
    different accounts, and the two networks are never connected."""
    by_name = {env.name: env for env in envs}
    for env in envs:
        for i, other in enumerate(env.settings.network.overlap_allowed_with):
            key = f"network.overlap_allowed_with[{i}]"
            if other == env.name or other not in by_name:
                known = ", ".join(sorted(set(by_name) - {env.name}))
                yield env.tfvars(key, f"{other!r} is not another environment (known: {known})")
                continue
            accounts = (env.settings.aws_account_id, by_name[other].settings.aws_account_id)
            if None in accounts or accounts[0] == accounts[1]:
                yield env.tfvars(
                    key,
                    f"{other!r} may overlap only when both environments set aws_account_id, to "
                    f"different accounts (here: {accounts[0]} and {accounts[1]})",
                )
    ordered = sorted(envs, key=lambda e: e.name)
    for i, first in enumerate(ordered):
        for second in ordered[i + 1 :]:
            a, b = (ipaddress.ip_network(e.settings.network.vpc_cidr) for e in (first, second))
            allowed = second.name in first.settings.network.overlap_allowed_with or (
                first.name in second.settings.network.overlap_allowed_with
            )
            if a.overlaps(b) and not allowed:
                yield second.tfvars(
                    "network.vpc_cidr",
                    f"{b} overlaps {a} of environment {first.name!r} ({first.tfvars_file}); pick "
                    f"another range (`python -m ops env add` picks a free one), or list {first.name!r} "
                    "in network.overlap_allowed_with if the two networks are never connected",
                )


@_across_rule
def ci_oidc_provider_once_per_account(envs: Sequence[Validated]) -> Iterator[Problem]:
    """At most one environment per AWS account has `ci.oidc_provider = "create"`: an account has one
    GitHub OIDC provider, and a second stack creating it fails (EntityAlreadyExists) or, worse,
    deletes it for every environment when torn down. Environments are in the same account when
    they set the same `aws_account_id`; without it this cannot be checked here, and the second
    bootstrap fails at apply."""
    creator: dict[str, Validated] = {}
    for env in sorted(envs, key=lambda e: e.tfvars_file):
        ci, account = env.settings.ci, env.settings.aws_account_id
        if ci is None or ci.oidc_provider != "create" or account is None:
            continue
        if account in creator:
            first = creator[account]
            yield env.tfvars(
                "ci.oidc_provider",
                f"environment {first.name!r} ({first.tfvars_file}) already creates the GitHub OIDC "
                f'provider of account {account}: use "existing" here',
            )
        else:
            creator[account] = env


# --- production requirements ---------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """What a production environment must set: ``key`` is the dotted tfvars key, ``shown`` the
    requirement as the reference's Production column states it."""

    key: str
    shown: str
    holds: Callable[[EnvironmentSettings], bool]
    message: str


_MUST_BE_TRUE = "must be true in a production environment"

PRODUCTION: tuple[Requirement, ...] = (
    Requirement(
        "network.single_nat_gateway",
        "false",
        lambda s: not s.network.single_nat_gateway,
        "must be false in a production environment (one NAT gateway per zone)",
    ),
    Requirement("mlflow.database.multi_az", "true", lambda s: s.mlflow.database.multi_az, _MUST_BE_TRUE),
    Requirement(
        "mlflow.database.deletion_protection",
        "true",
        lambda s: s.mlflow.database.deletion_protection,
        _MUST_BE_TRUE,
    ),
    Requirement(
        "mlflow.database.performance_insights",
        "true",
        lambda s: s.mlflow.database.performance_insights,
        _MUST_BE_TRUE,
    ),
    Requirement(
        "mlflow.load_balancer.deletion_protection",
        "true",
        lambda s: s.mlflow.load_balancer.deletion_protection,
        _MUST_BE_TRUE,
    ),
    Requirement(
        "mlflow.database.monitoring_interval",
        "not 0",
        lambda s: s.mlflow.database.monitoring_interval != 0,
        "enhanced monitoring must be on in production",
    ),
    Requirement(
        "mlflow.database.backup_retention_days",
        ">= 7",
        lambda s: s.mlflow.database.backup_retention_days >= 7,
        "must be at least 7 in production",
    ),
    Requirement(
        "mlflow.auth.default_permission",
        '"NO_PERMISSIONS"',
        lambda s: s.mlflow.auth.default_permission == "NO_PERMISSIONS",
        "must be NO_PERMISSIONS in production: nobody reads an experiment or model unless granted",
    ),
    Requirement(
        "mlflow.server.min_size",
        ">= 2",
        lambda s: s.mlflow.server.min_size >= 2,
        "must be at least 2 in production (one instance per zone)",
    ),
    Requirement(
        "mlflow.cache.num_nodes",
        ">= 2 when `cache.enabled`",
        lambda s: not s.mlflow.cache.enabled or s.mlflow.cache.num_nodes >= 2,
        "must be at least 2 in production (automatic failover)",
    ),
    Requirement(
        "mlflow.alerts.emails",
        "at least one",
        lambda s: bool(s.mlflow.alerts.emails),
        "production alerts need at least one recipient",
    ),
    Requirement(
        "state_bucket.replication.enabled",
        "true",
        lambda s: s.state_bucket.replication.enabled,
        "must be true in a production environment (a copy of every state outside aws_region)",
    ),
    Requirement(
        "mlflow.log_retention_days",
        ">= 365",
        lambda s: s.mlflow.log_retention_days >= 365,
        "must be at least 365 in production",
    ),
)


@_environment_rule
def production_requirements(env: Validated) -> Iterator[Problem]:
    """A production environment (`is_production = true`) must meet every requirement of the
    Production column."""
    if env.settings.is_production:
        for req in PRODUCTION:
            if not req.holds(env.settings):
                yield env.tfvars(req.key, req.message)

"""What an environment's settings resolve to: every derived name and default, computed once.

Stacks read these objects and never derive a name or a default themselves. Pure Python: no
provider import, no pydantic model is built here (the validated settings come in, frozen
dataclasses go out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from platform_config import naming
from platform_config.databricks import DEFAULT_NODE_TYPES, DatabricksSettings, Schedule
from platform_config.environment import EnvironmentSettings


@dataclass(frozen=True)
class BootstrapNames:
    """Physical names of ``bootstrap-<env>``'s resources (seed 003's naming)."""

    state_bucket: str
    lock_table: str
    kms_alias: str
    log_bucket: str
    replica_bucket: str
    replica_kms_alias: str
    replication_role: str
    plan_role: str  # CI: jobs of GitHub Environment <env>-plan
    deploy_role: str  # CI: jobs of GitHub Environment <env>
    workload_boundary: str  # permissions boundary of every role the deploy role creates


@dataclass(frozen=True)
class MlflowNames:
    """Physical names of ``mlflow-<env>``'s resources."""

    prefix: str  # mlopspltf-<env>-mlflow: VPC, groups, database, cache, load balancer, instances
    kms_alias: str
    alerts_topic: str
    parameter_path: str  # SSM path the instances read their settings from
    metrics_namespace: str  # CloudWatch agent metrics
    # CloudWatch log groups by role: vpc_flow_logs, server, nginx, system, redis_slow_log
    log_groups: Mapping[str, str]
    # Secrets Manager secrets generated outside Terraform (constructs_lib/secrets.py).
    admin_password_secret: str
    flask_secret_key_secret: str
    redis_auth_token_secret: str
    # The names users reach MLflow on, the stack's own host first (load_balancer.host_name).
    public_hosts: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """What users and clients sign in to (HTTPS: the certificate covers these names)."""
        return f"https://{self.public_hosts[0]}" if self.public_hosts else ""

    def user_secret(self, username: str) -> str:
        """The secret ``ops mlflow user create --service-account`` keeps an automation user's password in."""
        return f"{self.prefix}-user-{username}"


@dataclass(frozen=True)
class DatabricksNames:
    """Every name of one environment's Databricks resources, resolved from its settings."""

    host: str
    target: str
    project: str
    catalog: str
    schema: str
    model: str
    model_full_name: str
    experiment_path: str
    files_root: str
    job_prefix: str
    training_job_name: str
    batch_inference_job_name: str
    batch_input_table: str
    batch_output_table: str
    node_type_id: str
    training_schedule_paused: bool
    batch_inference_schedule_paused: bool
    # Who plans, applies and runs (application ids), and the owners the stack declares.
    plan_principal: str
    deploy_principal: str
    run_as: str
    job_owner: str
    model_owner: str
    oidc_audience: str
    # The bundle roots whose state `ops deploy` checks before a first apply (the deployer's, and the
    # one files_root lies in when it is a bundle's files folder), without the /Workspace prefix.
    bundle_roots: tuple[str, ...]

    def notebook(self, path: str) -> str:
        """Workspace path of a notebook given relative to the bundle's files root (or absolute)."""
        return path if path.startswith("/") else f"{self.files_root}/{path}"


def bootstrap_names(env: str) -> BootstrapNames:
    return BootstrapNames(
        naming.state_bucket(env),
        naming.lock_table(env),
        naming.state_kms_alias(env),
        naming.state_log_bucket(env),
        naming.state_replica_bucket(env),
        naming.state_replica_kms_alias(env),
        naming.state_replication_role(env),
        naming.ci_role(env, "plan"),
        naming.ci_role(env, "deploy"),
        naming.workload_boundary(env),
    )


def mlflow_names(env: str, settings: EnvironmentSettings | None = None) -> MlflowNames:
    prefix = naming.mlflow_name(env)
    hosts: tuple[str, ...] = ()
    if settings is not None:
        lb, server = settings.mlflow.load_balancer, settings.mlflow.server
        own = (lb.host_name,) if lb.host_name is not None else ()
        hosts = (*own, *(h for h in server.allowed_hosts if h != lb.host_name))
    parts = {
        "vpc_flow_logs": "vpc-flow-logs",
        "server": "server",
        "nginx": "nginx",
        "system": "system",
        "redis_slow_log": "redis-slow-log",
    }
    return MlflowNames(
        prefix=prefix,
        kms_alias=f"alias/{prefix}",
        alerts_topic=f"{prefix}-alerts",
        parameter_path=naming.mlflow_parameter_path(env),
        metrics_namespace=f"{prefix}/instances",
        log_groups=MappingProxyType(
            {role: naming.mlflow_log_group(env, part) for role, part in parts.items()}
        ),
        admin_password_secret=f"{prefix}-admin-password",
        flask_secret_key_secret=f"{prefix}-flask-secret-key",
        redis_auth_token_secret=f"{prefix}-redis-auth-token",
        public_hosts=hosts,
    )


def databricks_names(env: str, settings: EnvironmentSettings) -> DatabricksNames:
    """Resolve the ``databricks`` block of settings that passed ``platform_config.rules``."""
    s: DatabricksSettings = settings.databricks
    project = s.project
    target = s.target or naming.databricks_target(env)
    catalog = s.catalog or target
    schema = s.schema_name or project
    model = s.model_name or naming.databricks_model_name(project)
    deployer = s.deployer or s.deploy_principal
    files_root = s.files_root or naming.databricks_files_root(deployer, project, target)
    prefix = s.job_name_prefix if s.job_name_prefix is not None else naming.databricks_job_prefix(target)
    return DatabricksNames(
        host=s.host,
        target=target,
        project=project,
        catalog=catalog,
        schema=schema,
        model=model,
        model_full_name=naming.databricks_model_full_name(catalog, schema, model),
        experiment_path=s.experiment_path or naming.databricks_experiment_path(deployer, target, project),
        files_root=files_root,
        job_prefix=prefix,
        training_job_name=naming.databricks_job_name(prefix, project, naming.DATABRICKS_TRAINING_JOB),
        batch_inference_job_name=naming.databricks_job_name(
            prefix, project, naming.DATABRICKS_BATCH_INFERENCE_JOB
        ),
        batch_input_table=s.batch_inference.input_table
        or naming.databricks_inference_input_table(catalog, schema),
        batch_output_table=s.batch_inference.output_table
        or naming.databricks_predictions_table(catalog, schema),
        node_type_id=s.job_cluster.node_type_id or DEFAULT_NODE_TYPES[s.cloud],
        training_schedule_paused=_paused(s.training.schedule, s.pause_schedules),
        batch_inference_schedule_paused=_paused(s.batch_inference.schedule, s.pause_schedules),
        plan_principal=s.plan_principal,
        deploy_principal=s.deploy_principal,
        run_as=s.run_as_service_principal,
        job_owner=s.job_owner or s.deploy_principal,
        model_owner=s.model.owner or s.run_as_service_principal,
        oidc_audience=s.oidc_audience,
        bundle_roots=_bundle_roots(deployer, project, target, files_root),
    )


def _bundle_roots(deployer: str, project: str, target: str, files_root: str) -> tuple[str, ...]:
    roots = [naming.databricks_bundle_root(deployer, project, target)]
    bundle_files = naming.bundle_root_of_files(files_root)
    if bundle_files is not None and bundle_files not in roots:
        roots.append(bundle_files)
    return tuple(roots)


def _paused(schedule: Schedule, pause_schedules: bool) -> bool:
    return schedule.paused if schedule.paused is not None else pause_schedules


@dataclass(frozen=True)
class EnvironmentNames:
    """Every derived physical name of one environment, per stack kind."""

    bootstrap: BootstrapNames
    mlflow: MlflowNames
    databricks: DatabricksNames


def resolve(env: str, settings: EnvironmentSettings) -> EnvironmentNames:
    """Every derived name of environment ``env``, whose settings passed ``platform_config.rules``."""
    return EnvironmentNames(
        bootstrap_names(env), mlflow_names(env, settings), databricks_names(env, settings)
    )

"""Every physical name, state key and stack id of the platform, derived in one place.

Pure Python: no provider import, so the config layer can check backend files against it.
"""

from __future__ import annotations

import re

PROJECT = "mlopspltf"
STATE_KEY_PREFIX = f"{PROJECT}_infra"

# Stack kinds, in deployment order: the bootstrap stack holds everybody's state.
STACK_KINDS: tuple[str, ...] = ("bootstrap", "mlflow", "databricks")

# The bootstrap state key is the seed repo's (003), so an existing state can be adopted as is.
_STATE_DIRS = {"bootstrap": "tf_remote_backend"}

ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9]{1,7}$")


def stack_id(kind: str, env: str) -> str:
    """CDKTF stack name, e.g. ``bootstrap-dev``; also the directory under cdktf.out/stacks."""
    _check_kind(kind)
    return f"{kind}-{env}"


def parse_stack_id(name: str) -> tuple[str, str]:
    """Inverse of :func:`stack_id`."""
    kind, _, env = name.partition("-")
    _check_kind(kind)
    return kind, env


def state_key(kind: str) -> str:
    """Object key of a stack's state in the environment's state bucket."""
    _check_kind(kind)
    return f"{STATE_KEY_PREFIX}/{_STATE_DIRS.get(kind, kind)}/terraform.tfstate"


def state_bucket(env: str) -> str:
    return f"{PROJECT}-{env}-s3-tf-backend"


def lock_table(env: str) -> str:
    return f"{PROJECT}-{env}-ddb-tf-backend"


def state_kms_alias(env: str) -> str:
    return f"alias/{PROJECT}-{env}-tf-backend"


def state_log_bucket(env: str) -> str:
    """Receives the state bucket's server access logs."""
    return f"{state_bucket(env)}-logs"


def state_replica_bucket(env: str) -> str:
    """The state bucket's cross-region replica."""
    return f"{state_bucket(env)}-replica"


def state_replica_kms_alias(env: str) -> str:
    return f"{state_kms_alias(env)}-replica"


def state_replication_role(env: str) -> str:
    return f"{PROJECT}-{env}-tf-backend-replication"


# --- CI identities (bootstrap-<env>) ------------------------------------------------------------
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# The audience aws-actions/configure-aws-credentials requests, and the provider's client id.
GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com"


def ci_role(env: str, purpose: str) -> str:
    """``mlopspltf-<env>-ci-plan`` or ``mlopspltf-<env>-ci-deploy``."""
    if purpose not in ("plan", "deploy"):
        raise ValueError(f"unknown CI role purpose {purpose!r}")
    return f"{PROJECT}-{env}-ci-{purpose}"


def ci_github_environment(env: str, purpose: str) -> str:
    """The GitHub Environment whose jobs may assume the role: ``<env>-plan`` or ``<env>``."""
    return f"{env}-plan" if purpose == "plan" else env


def github_subject(repository: str, github_environment: str) -> str:
    """The ``sub`` claim of a GitHub Actions OIDC token of a job in ``github_environment``."""
    return f"repo:{repository}:environment:{github_environment}"


def workload_boundary(env: str) -> str:
    """The permissions boundary every role the deploy role creates must carry."""
    return f"{PROJECT}-{env}-workload-boundary"


def local_state_path(kind: str, env: str) -> str:
    """Local state file of a stack that is not (yet) on S3, relative to the repository root.

    Kept outside cdktf.out so that a re-synthesis can never delete it.
    """
    return f"local_state/{stack_id(kind, env)}.tfstate"


def resource_prefix(env: str) -> str:
    """Prefix of every AWS resource name of an environment, e.g. ``mlopspltf-dev``."""
    return f"{PROJECT}-{env}"


def default_tags(env: str, kind: str, extra: dict[str, str]) -> dict[str, str]:
    """Tags set on every AWS resource through the provider's default_tags."""
    tags = {
        "Project": PROJECT,
        "Environment": env,
        "Stack": stack_id(kind, env),
        "ManagedBy": "cdktf",
        "Repository": "mlops-infra",
    }
    tags.update(extra)
    return tags


def _check_kind(kind: str) -> None:
    if kind not in STACK_KINDS:
        raise ValueError(f"unknown stack kind {kind!r}; expected one of {', '.join(STACK_KINDS)}")


# --- Databricks (databricks-<env>) -------------------------------------------------------------
# Our environments map onto the workspace targets of the mlops-stacks template (seed 001/002):
# push -> test, tests passed -> staging, release -> prod. Any other environment is its own target.
DATABRICKS_TARGETS = {"dev": "test", "tst": "staging", "prd": "prod"}

DATABRICKS_TRAINING_JOB = "model-training-job"
DATABRICKS_BATCH_INFERENCE_JOB = "batch-inference-job"


def databricks_target(env: str) -> str:
    """Bundle target (and, by the template's convention, Unity Catalog catalog) of an environment."""
    return DATABRICKS_TARGETS.get(env, env)


def databricks_model_name(project: str) -> str:
    return f"{project}-model"


def databricks_model_full_name(catalog: str, schema: str, model: str) -> str:
    """Unity Catalog three-level name, also the registered model's Terraform id."""
    return f"{catalog}.{schema}.{model}"


def databricks_predictions_table(catalog: str, schema: str) -> str:
    return f"{catalog}.{schema}.predictions"


def databricks_inference_input_table(catalog: str, schema: str) -> str:
    return f"{catalog}.{schema}.feature_store_inference_input"


def databricks_experiment_path(deployer: str, target: str, project: str) -> str:
    return f"/Users/{deployer}/{target}-{project}-experiment"


def databricks_bundle_root(deployer: str, project: str, target: str) -> str:
    """A bundle's default ``workspace.root_path`` (``~/.bundle/<name>/<target>``, CLI
    ``bundle/config/mutator/default_workspace_root.go``), as the workspace API takes it (no
    ``/Workspace`` prefix, which CLI v0.230.0 added to the files' paths)."""
    return f"/Users/{deployer}/.bundle/{project}/{target}"


def databricks_files_root(deployer: str, project: str, target: str) -> str:
    """Where ``databricks bundle deploy`` uploads the project's notebooks for a target
    (``<root>/files``, ``default_workspace_paths.go``)."""
    return f"/Workspace{databricks_bundle_root(deployer, project, target)}/files"


_BUNDLE_FILES = re.compile(r"^(?:/Workspace)?(?P<root>/Users/[^/]+/\.bundle/[^/]+/[^/]+)/files$")


def bundle_root_of_files(files_root: str) -> str | None:
    """The bundle root a ``files_root`` of the form ``[/Workspace]/Users/<who>/.bundle/<name>/<target>/files``
    lies in (without ``/Workspace``), else None."""
    match = _BUNDLE_FILES.match(files_root)
    return match["root"] if match else None


def databricks_state_dir(bundle_root: str) -> str:
    """Where a bundle keeps its state files (``terraform.tfstate``, or ``resources.json`` for the
    direct engine) and ``metadata.json``: ``<root>/state``."""
    return f"{bundle_root}/state"


def databricks_job_prefix(target: str) -> str:
    """Job names carry their target in every target, production too (the template's
    ``${bundle.target}-<project>-...``); development mode would add ``[dev <user>] `` on top."""
    return f"{target}-"


def databricks_job_name(prefix: str, project: str, job: str) -> str:
    return f"{prefix}{project}-{job}"


# --- MLflow platform stack ------------------------------------------------------------------


def mlflow_name(env: str, part: str = "") -> str:
    """Physical name of an MLflow platform resource, e.g. ``mlopspltf-dev-mlflow`` or, with a
    part, ``mlopspltf-dev-mlflow-alerts``."""
    return f"{resource_prefix(env)}-mlflow" + (f"-{part}" if part else "")


def mlflow_parameter_path(env: str) -> str:
    """SSM Parameter Store path under which the MLflow instances find their settings.

    ``settings/``: they are plain String parameters (no secret in them); the SecureString ones of
    earlier versions lived one level up. Parameter Store refuses to change a parameter's type in a
    hierarchy (HierarchyTypeMismatchException), so new names make Terraform replace them instead."""
    return f"/{resource_prefix(env)}/mlflow/settings"


def mlflow_log_group(env: str, part: str) -> str:
    """CloudWatch log group of the MLflow platform, e.g. ``/mlopspltf-dev/mlflow/server``."""
    return f"/{resource_prefix(env)}/mlflow/{part}"

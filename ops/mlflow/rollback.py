"""``ops mlflow rollback --env E``: back to the MLflow release before an upgrade by restoring the
snapshot ``ops mlflow upgrade`` took (docs/runbooks/mlflow-upgrade.md, Rollback).

The environment file names the snapshot (``mlflow.database.restore_from_snapshot``) and the release
to go back to (``mlflow.mlflow_version``); ``make plan ENV=E`` planned the database's replacement
from the snapshot. The command refuses, before anything changes: a production environment without
``--force-production``; a snapshot that does not exist, is not available, is another database's,
or was not taken before an upgrade *from* the release the file names (its ``MlflowReleaseBefore``
tag); a saved plan that does not replace the database or replaces or destroys anything else. Then
it asks, applies the saved plan (``ops deploy --stack mlflow``), waits for the instance refresh and
checks that ``/version`` is the release the file names. Run again after an interruption: the
deploy of a plan already applied is refused as stale by ``ops deploy`` (make a new plan: it shows
no replacement once the database is restored), the refresh is waited for, the check repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.mlflow import people
from ops.mlflow.upgrade import Aws, Deployer, OpsDeploy, _get, plan_problems
from ops.runner import ROOT, CommandError, Console, UsageError
from platform_config.loader import Environment

# What restoring the database replaces with it: the database-user function's invocation (its
# input names the instance), the suffix of the final snapshot's name (kept per restore) and, when
# the snapshot is of the MySQL major version before an engine upgrade (ops db upgrade-engine's
# <prefix>-pre-mysql-8-4, docs/runbooks/mysql-major-upgrade.md), the parameter group (its family
# is ForceNew; created before the old one is destroyed).
REPLACED_WITH_DATABASE = (
    "aws_db_instance.mlflow",
    "aws_db_parameter_group.mlflow",
    "aws_lambda_invocation.",
    "random_id.final_snapshot_suffix",
)


@dataclass
class RollbackPlan(OpsDeploy):
    def plan_check(self) -> list[str]:
        text_file = self.root / "plans" / f"{self.stack}.txt"
        if not text_file.is_file():
            raise CommandError(
                f"no saved plan of {self.stack} ({text_file}): run `make plan ENV={self.env}` first"
            )
        text = text_file.read_text()
        lines = plan_problems(text, self.stack, REPLACED_WITH_DATABASE, "a rollback")
        if not any(line.startswith("# aws_db_instance.mlflow must be replaced") for line in lines):
            raise CommandError(
                f"the saved plan of {self.stack} does not replace aws_db_instance.mlflow: is "
                "mlflow.database.restore_from_snapshot set, and was the plan made after that?"
            )
        return lines


@dataclass
class Rollback:
    env: Environment
    url: str
    aws: Aws
    deployer: Deployer
    console: Console
    auto_approve: bool = False
    force_production: bool = False

    @property
    def release(self) -> str:
        return self.env.settings.mlflow.mlflow_version

    def snapshot(self, name: str) -> dict[str, Any]:
        rds = self.aws.client("rds")
        try:
            [found] = rds.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"]
        except rds.exceptions.DBSnapshotNotFoundFault:
            raise CommandError(f"snapshot {name} not found in {self.env.settings.aws_region}") from None
        tags = {
            t["Key"]: t["Value"]
            for t in rds.list_tags_for_resource(ResourceName=found["DBSnapshotArn"]).get("TagList", [])
        }
        return {**found, "tags": tags}

    def run(self) -> int:
        c, env = self.console, self.env
        if env.settings.is_production and not self.force_production:
            raise UsageError(
                f"refusing to roll back production environment {env.name!r} ({env.tfvars_file}: "
                "is_production = true) without --force-production (FORCE_PRD=1)"
            )
        name = env.settings.mlflow.database.restore_from_snapshot
        if not name:
            raise UsageError(
                f"{env.tfvars_file}: mlflow.database.restore_from_snapshot: not set; name the snapshot "
                "`ops mlflow upgrade` took (<prefix>-pre-mlflow-<release>), then `make plan`"
            )
        found = self.snapshot(name)
        identifier = env.names.mlflow.prefix
        if found["DBInstanceIdentifier"] != identifier:
            raise CommandError(f"snapshot {name} is of {found['DBInstanceIdentifier']}, not {identifier}")
        if found["Status"] != "available":
            raise CommandError(f"snapshot {name} is {found['Status']}, not available yet")
        before, after = found["tags"].get("MlflowReleaseBefore"), found["tags"].get("MlflowReleaseAfter")
        if before != self.release:
            raise CommandError(
                f"snapshot {name} was taken before an upgrade from MLflow {before or '(unknown: no MlflowReleaseBefore tag)'}"
                f" to {after}, but {env.tfvars_file} names mlflow_version = {self.release}: set the release the "
                "snapshot's data is of, or name another snapshot"
            )
        plan = self.deployer.plan_check()
        for line in plan:
            c.line(f"plan | {line}")
        question = (
            f"Roll back MLflow in {env.name!r} to {self.release}: the database {identifier} is replaced by snapshot "
            f"{name} ({found.get('SnapshotCreateTime', '')}); everything written since is lost (the replaced "
            "database's final snapshot keeps it)"
        )
        if not self.auto_approve and not c.confirm(question, env.name):
            return 1
        self.deployer.apply(c)
        c.line(self.aws.wait_refresh(identifier, c))
        health = _get(self.url + "/health", None)[0]
        admin = env.settings.mlflow.auth.admin_username
        password, _ = people.current_secret(
            self.aws.client("secretsmanager"), env.names.mlflow.admin_password_secret
        )
        status, version = _get(self.url + "/version", (admin, password))
        c.line(f"check: /health {health}; /version {status} {version.strip()!r}")
        if health != 200 or status != 200 or version.strip() != self.release:
            raise CommandError(f"{env.name} does not answer as MLflow {self.release} (above)")
        c.line(f"{env.name} runs MLflow {self.release} on the data of snapshot {name}")
        return 0


def run(
    env: Environment,
    url: str | None,
    *,
    auto_approve: bool,
    force_production: bool,
    console: Console | None = None,
    aws: Aws | None = None,
    deployer: Deployer | None = None,
    root: Path = ROOT,
) -> int:
    t = people.target(env, url)
    return Rollback(
        env,
        t.url,
        aws or Aws(env.settings.aws_region),
        deployer or RollbackPlan(root, env.name),
        console or Console(),
        auto_approve=auto_approve,
        force_production=force_production,
    ).run()

"""``ops db upgrade-engine``: the MLflow stack's database to the next MySQL major version, in place,
with a named snapshot taken first (docs/runbooks/mysql-major-upgrade.md).

The upgrade itself is a reviewed Terraform change, not an API call made here: this command gets the
instance and the environment file ready for it, then says what the plan must show. Each run looks at
the instance first and does only what is left, so it is safe to run again at any point:

1. **Guard.** An environment with ``is_production = true`` needs ``--force-production``; anything is
   asked before it is done (type the environment name) unless ``--auto-approve``. Documentation
   placeholders are refused, as ``ops plan`` and ``ops deploy`` refuse them. With ``aws_account_id``
   set, the credentials must be that account's.
2. **Preflight** (read only): ``DescribeDBInstances`` (status ``available``, no pending
   modifications, no read replica: RDS upgrades replicas first and this stack has none, every
   parameter group ``in-sync``), ``DescribeDBEngineVersions`` (the target major is among the current
   version's ``ValidUpgradeTarget``), ``DescribePendingMaintenanceActions`` (no pending operating
   system update: AWS asks for those first). RDS's own upgrade prechecks have no API: they run when
   the upgrade starts and cancel it, instance untouched, on an incompatibility (runbook).
3. **Snapshot** ``<identifier>-pre-mysql-<major>`` (``-pre-mysql-8-4``): created and waited for; a
   re-run finds it (``available``: reused, ``creating``: waited for) and refuses one of another
   instance or in another state, with the way out.
4. **The environment file**: ``mlflow.database.engine_version`` = the target,
   ``allow_major_version_upgrade = true``, ``apply_immediately = true`` where the environment would
   otherwise wait for the maintenance window, and ``engine_lifecycle_support`` = the instance's own
   enrollment where the file's would differ. Written only if something changes; loaded again
   afterwards (a file that no longer loads is put back).
5. Prints the plan a reviewer must see and the next commands (``make plan``, ``make deploy``), and
   run again afterwards it checks the result: engine version, parameter group in sync, snapshot kept.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ops import synth
from ops.run_job import parse_duration
from ops.runner import CommandError, Console, UsageError
from platform_config.errors import ConfigError
from platform_config.loader import Environment, load
from platform_config.mlflow import (
    EXTENDED_SUPPORT,
    MYSQL_MAJOR,
    MYSQL_UPGRADE_RUNBOOK,
    MYSQL_UPGRADE_SOURCES,
    DatabaseSettings,
    mysql_major,
)

RUNBOOK = MYSQL_UPGRADE_RUNBOOK
_TARGET = re.compile(r"^\d+\.\d+(\.\d+)?$")
# RDS answers these while a snapshot is being made; anything else that is not "available" is an end.
_SNAPSHOT_WAITING = ("creating", "pending")
_POLL_SECONDS = 30


def rds_client(region: str) -> Any:
    """The RDS API of ``region`` (tests replace this function)."""
    return boto3.client("rds", region_name=region)


def sts_client(region: str) -> Any:
    return boto3.client("sts", region_name=region)


def snapshot_name(identifier: str, major: str) -> str:
    """``<identifier>-pre-mysql-8-4`` (snapshot names allow letters, digits and hyphens only)."""
    return f"{identifier}-pre-mysql-{major.replace('.', '-')}"


def group_name(identifier: str, major: str) -> str:
    """The stack's parameter group of ``major`` (constructs_lib/database.py, parameter_group_name)."""
    from constructs_lib.database import parameter_group_name  # late: jsii only when it is needed

    return parameter_group_name(identifier, f"mysql{major}")


@dataclass(frozen=True)
class Instance:
    """What DescribeDBInstances says about the database, as far as the upgrade cares."""

    identifier: str
    arn: str
    engine_version: str
    status: str
    pending: Mapping[str, Any]
    replicas: tuple[str, ...]
    parameter_groups: tuple[tuple[str, str], ...]  # (name, ParameterApplyStatus)
    lifecycle_support: str
    maintenance_window: str
    created: datetime | None = None

    @property
    def major(self) -> str:
        return mysql_major(self.engine_version)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Instance:
        return cls(
            identifier=d["DBInstanceIdentifier"],
            arn=d.get("DBInstanceArn", ""),
            engine_version=d.get("EngineVersion", ""),
            status=d.get("DBInstanceStatus", ""),
            pending={
                k: v for k, v in (d.get("PendingModifiedValues") or {}).items() if v not in (None, [], {})
            },
            replicas=tuple(d.get("ReadReplicaDBInstanceIdentifiers") or ()),
            parameter_groups=tuple(
                (g.get("DBParameterGroupName", ""), g.get("ParameterApplyStatus", ""))
                for g in d.get("DBParameterGroups") or ()
            ),
            # Unset in the answer means the API's default at creation: enrolled.
            lifecycle_support=d.get("EngineLifecycleSupport") or EXTENDED_SUPPORT,
            maintenance_window=d.get("PreferredMaintenanceWindow", ""),
            created=d.get("InstanceCreateTime"),
        )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _api_error(what: str, exc: ClientError | BotoCoreError) -> CommandError:
    return CommandError(f"{what}: {exc} (nothing was changed by this step)")


def describe_instance(rds: Any, identifier: str) -> Instance | None:
    try:
        [found] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as exc:
        if _error_code(exc) == "DBInstanceNotFound":
            return None
        raise _api_error(f"DescribeDBInstances {identifier}", exc) from None
    except BotoCoreError as exc:
        raise _api_error(f"DescribeDBInstances {identifier}", exc) from None
    return Instance.from_api(found)


def valid_targets(rds: Any, version: str) -> list[str]:
    """The versions RDS can upgrade ``version`` to (DescribeDBEngineVersions, ValidUpgradeTarget)."""
    try:
        answer = rds.describe_db_engine_versions(Engine="mysql", EngineVersion=version)
    except (ClientError, BotoCoreError) as exc:
        raise _api_error(f"DescribeDBEngineVersions mysql {version}", exc) from None
    return [
        t["EngineVersion"]
        for v in answer.get("DBEngineVersions", [])
        for t in v.get("ValidUpgradeTarget", [])
    ]


def pending_maintenance(rds: Any, arn: str) -> list[str]:
    """The instance's pending maintenance actions, e.g. ``system-update (auto-applied ...)``."""
    try:
        answer = rds.describe_pending_maintenance_actions(ResourceIdentifier=arn)
    except (ClientError, BotoCoreError) as exc:
        raise _api_error(f"DescribePendingMaintenanceActions {arn}", exc) from None
    return [
        str(a.get("Action", "?"))
        for r in answer.get("PendingMaintenanceActions", [])
        for a in r.get("PendingMaintenanceActionDetails", [])
    ]


def preflight(rds: Any, instance: Instance, target: str) -> list[str]:
    """Everything that must hold before the snapshot and the upgrade; each problem says what to do."""
    problems: list[str] = []
    name = instance.identifier
    if instance.status != "available":
        problems.append(f"{name} is {instance.status!r}: wait until it is 'available' and run this again")
    if instance.pending:
        problems.append(
            f"{name} has pending modifications {dict(instance.pending)}: they would be applied with the upgrade; "
            "apply them first (make deploy with apply_immediately) or wait for the maintenance window "
            f"({instance.maintenance_window})"
        )
    if instance.replicas:
        problems.append(
            f"{name} has read replicas {', '.join(instance.replicas)}: RDS upgrades replicas before their "
            "source, and this stack creates none; upgrade or remove them first"
        )
    for group, status in instance.parameter_groups:
        if status != "in-sync":
            problems.append(
                f"{name}: parameter group {group} is {status!r}: reboot the instance first "
                f"(aws rds reboot-db-instance --db-instance-identifier {name}) so that it runs what it says"
            )
    targets = valid_targets(rds, instance.engine_version)
    wanted = [t for t in targets if (t == target if target.count(".") == 2 else mysql_major(t) == target)]
    if not wanted:
        offered = ", ".join(targets) or "none"
        problems.append(
            f"RDS cannot upgrade {name} from {instance.engine_version} to {target} (valid targets: {offered}); "
            "upgrade to a newer minor of its major version first (an engine_version minor in the file)"
        )
    actions = pending_maintenance(rds, instance.arn)
    if "system-update" in actions:
        problems.append(
            f"{name} has a pending operating system update, which AWS asks to apply before a major upgrade: "
            f"aws rds apply-pending-maintenance-action --resource-identifier {instance.arn} "
            "--apply-action system-update --opt-in-type immediate"
        )
    return problems


# --- the snapshot ----------------------------------------------------------------------------


def _snapshot(rds: Any, name: str) -> Mapping[str, Any] | None:
    try:
        [found] = rds.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"]
    except ClientError as exc:
        if _error_code(exc) == "DBSnapshotNotFound":
            return None
        raise _api_error(f"DescribeDBSnapshots {name}", exc) from None
    except BotoCoreError as exc:
        raise _api_error(f"DescribeDBSnapshots {name}", exc) from None
    return found  # type: ignore[no-any-return]


def _unusable(name: str, status: str) -> CommandError:
    return CommandError(
        f"snapshot {name} is {status!r}: it cannot be the way back; delete it (aws rds delete-db-snapshot "
        f"--db-snapshot-identifier {name}) and run this again"
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _minutes(seconds: float) -> str:
    return f"{max(1, round(seconds / 60))} min"


def ensure_snapshot(
    rds: Any,
    instance: Instance,
    name: str,
    *,
    timeout: float,
    console: Console,
    env_name: str,
    mlflow_release: str,
) -> Mapping[str, Any]:
    """The manual snapshot ``name`` of ``instance``, available: taken now, or found from an earlier
    run (waited for while RDS is still making it). Tagged with the MLflow release its schemas are
    of, before and after (the engine upgrade changes no schema), as ``ops mlflow upgrade`` tags its
    snapshots: ``ops mlflow rollback`` restores it as it restores those (runbook, Rollback)."""
    found = _snapshot(rds, name)
    if found is not None and found.get("DBInstanceIdentifier") != instance.identifier:
        raise CommandError(
            f"snapshot {name} exists but is of {found.get('DBInstanceIdentifier')!r}, not {instance.identifier!r}: "
            "rename or delete it, then run this again"
        )
    if found is not None and mysql_major(str(found.get("EngineVersion", ""))) != instance.major:
        raise CommandError(
            f"snapshot {name} is of MySQL {found.get('EngineVersion')}, not of the {instance.engine_version} "
            "the instance runs: it cannot be the way back; delete it (aws rds delete-db-snapshot "
            f"--db-snapshot-identifier {name}) and run this again"
        )
    taken = found.get("SnapshotCreateTime") if found is not None else None
    if isinstance(taken, datetime) and isinstance(instance.created, datetime) and taken < instance.created:
        # The instance was created after it, e.g. restored from it by a rollback: the snapshot
        # lacks everything written since, so it cannot be this upgrade's way back.
        raise CommandError(
            f"snapshot {name} was taken {_when(taken)}, before {instance.identifier} was created "
            f"({_when(instance.created)}; restored by a rollback?): it lacks the data written since; delete it "
            f"(aws rds delete-db-snapshot --db-snapshot-identifier {name}) and run this again"
        )
    if found is None:
        console.progress("db", env_name, f"creating snapshot {name} of {instance.identifier}")
        try:
            rds.create_db_snapshot(
                DBSnapshotIdentifier=name,
                DBInstanceIdentifier=instance.identifier,
                Tags=[
                    {
                        "Key": "Purpose",
                        "Value": f"the way back from the MySQL upgrade of {instance.identifier}",
                    },
                    {"Key": "Runbook", "Value": RUNBOOK},
                    {"Key": "MysqlVersionBefore", "Value": instance.engine_version},
                    {"Key": "MlflowReleaseBefore", "Value": mlflow_release},
                    {"Key": "MlflowReleaseAfter", "Value": mlflow_release},
                ],
            )
        except (ClientError, BotoCoreError) as exc:
            raise _api_error(f"CreateDBSnapshot {name}", exc) from None
    else:
        console.progress(
            "db", env_name, f"snapshot {name} exists ({found.get('Status')}): taken by an earlier run"
        )
    status = str((found or {}).get("Status", "creating"))
    if status != "available":
        if found is not None and status not in _SNAPSHOT_WAITING:
            raise _unusable(name, status)
        console.progress("db", env_name, f"waiting for snapshot {name} (at most {_minutes(timeout)})")
        try:
            rds.get_waiter("db_snapshot_available").wait(
                DBSnapshotIdentifier=name,
                WaiterConfig={
                    "Delay": _POLL_SECONDS,
                    "MaxAttempts": max(1, math.ceil(timeout / _POLL_SECONDS)),
                },
            )
        except (ClientError, BotoCoreError) as exc:  # WaiterError (a BotoCoreError), or an API error
            now = _snapshot(rds, name)
            if now is not None and str(now.get("Status")) not in (*_SNAPSHOT_WAITING, "available"):
                raise _unusable(name, str(now.get("Status"))) from None
            raise CommandError(
                f"snapshot {name} was not available within {_minutes(timeout)} ({exc}); nothing else was done: "
                "run this again to keep waiting (it finds the snapshot), or with a longer --timeout"
            ) from None
        found = _snapshot(rds, name)
        if found is None or found.get("Status") != "available":
            raise CommandError(
                f"snapshot {name} disappeared or failed while it was being made; run this again"
            )
    if found is None:  # pragma: no cover - created above, or found available
        raise CommandError(f"snapshot {name}: not found after it was made; run this again")
    return found


# --- the environment file ----------------------------------------------------------------------


def file_settings(env: Environment, instance: Instance, target: str) -> dict[str, str]:
    """The ``mlflow.database`` keys (HCL literals) the file must say for the upgrade of ``instance``."""
    database = env.settings.mlflow.database
    wanted = {"engine_version": f'"{target}"', "allow_major_version_upgrade": "true"}
    immediate = database.apply_immediately
    if not (immediate if immediate is not None else not env.settings.is_production):
        wanted["apply_immediately"] = "true"
    after = DatabaseSettings(
        engine_version=target, engine_lifecycle_support=database.engine_lifecycle_support
    )
    if after.lifecycle_support != instance.lifecycle_support:
        wanted["engine_lifecycle_support"] = f'"{instance.lifecycle_support}"'
    return wanted


_OPEN = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\{\s*(#.*)?$")
_ATTRIBUTE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$")
_QUOTED = re.compile(r'"([^"\\]|\\.)*"')


def _depth_change(line: str) -> int:
    code = _QUOTED.sub('""', line).split("#", 1)[0].split("//", 1)[0]
    return code.count("{") - code.count("}")


def _block(lines: Sequence[str], name: str, start: int, end: int, depth: int) -> tuple[int, int] | None:
    """(line of ``name = {``, line of its ``}``) among ``lines[start:end]`` at nesting ``depth``."""
    level = depth
    for i in range(start, end):
        m = _OPEN.match(lines[i])
        if level == depth and m and m.group(2) == name:
            inner = 1
            for j in range(i + 1, end):
                inner += _depth_change(lines[j])
                if inner == 0:
                    return i, j
            return None
        level += _depth_change(lines[i])
    return None


def edit_database_block(text: str, values: Mapping[str, str], file: str) -> str:
    """``text`` with ``mlflow = { database = { key = value } }`` set for every key of ``values``
    (replaced where the key is, added otherwise); the rest, comments included, unchanged."""
    lines = text.splitlines(keepends=True)
    how = f"set them by hand in {file} (mlflow = {{ database = {{ ... }} }}): " + ", ".join(
        f"{k} = {v}" for k, v in values.items()
    )
    mlflow = _block(lines, "mlflow", 0, len(lines), 0)
    if mlflow is None:
        raise CommandError(f"{file}: no `mlflow = {{` block on a line of its own found; {how}")
    database = _block(lines, "database", mlflow[0] + 1, mlflow[1], 0)
    if database is None:
        indent = re.match(r"\s*", lines[mlflow[0]]).group(0) + "  "  # type: ignore[union-attr]
        body = "".join(f"{indent}  {k} = {v}\n" for k, v in values.items())
        lines.insert(mlflow[1], f"\n{indent}database = {{\n{body}{indent}}}\n")
        return "".join(lines)
    first, last = database
    indent = re.match(r"\s*", lines[first]).group(0) + "  "  # type: ignore[union-attr]
    missing = dict(values)
    level = 0
    for i in range(first + 1, last):
        m = _ATTRIBUTE.match(lines[i])
        if level == 0 and m and m.group(2) in missing:
            indent = m.group(1)
            lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{missing.pop(m.group(2))}\n"
        level += _depth_change(lines[i])
    lines[first + 1 : first + 1] = [f"{indent}{k} = {v}\n" for k, v in missing.items()]
    return "".join(lines)


def write_file_settings(root: Path, env: Environment, values: Mapping[str, str], console: Console) -> bool:
    """Set ``values`` in the environment file, formatted as ``terraform fmt`` would; True if it changed.
    The edited file must load with every other environment, or the old text is put back."""
    from ops.lint import terraform_fmt

    path = root / env.tfvars_file
    old = path.read_text(encoding="utf-8")
    new = edit_database_block(old, values, env.tfvars_file)
    try:
        new = terraform_fmt(new)
    except (OSError, ValueError) as exc:
        console.error(f"warning: {env.tfvars_file}: not formatted ({exc}); run `make fmt`")
    if new == old:
        return False
    path.write_text(new, encoding="utf-8")
    try:
        load(root, [env.name])
    except ConfigError as exc:
        path.write_text(old, encoding="utf-8")
        problems = "; ".join(str(p) for p in exc.problems)
        raise CommandError(
            f"{env.tfvars_file}: the edited file does not load ({problems}); it was put back"
        ) from None
    return True


# --- the command ---------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "db",
        help="the MLflow stack's database: upgrade its MySQL major version in place, after a snapshot",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    commands = parser.add_subparsers(dest="db_command", required=True, metavar="<db command>")
    text = (
        "preflight, a named snapshot waited for, and the environment file set for the in-place upgrade "
        f"(then make plan / make deploy); run again to resume or to check the result ({RUNBOOK})"
    )
    upgrade = commands.add_parser("upgrade-engine", help=text, description=text)
    synth.add_env_option(upgrade)
    upgrade.add_argument(
        "--to",
        required=True,
        metavar="VERSION",
        help=f"target MySQL version: {MYSQL_MAJOR} or {MYSQL_MAJOR}.x",
    )
    upgrade.add_argument("--auto-approve", action="store_true", help="no confirmation prompt")
    upgrade.add_argument(
        "--force-production", action="store_true", help="allow an environment with is_production = true"
    )
    upgrade.add_argument(
        "--timeout",
        type=parse_duration,
        default=parse_duration("2h"),
        help="wait this long for the snapshot (2h)",
    )
    upgrade.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    [env] = load(args.root, [args.env], "--env")
    target: str = args.to
    if not _TARGET.match(target) or mysql_major(target) != MYSQL_MAJOR:
        raise UsageError(
            f"--to {target}: the upgrade goes to MySQL {MYSQL_MAJOR} or {MYSQL_MAJOR}.x ({RUNBOOK})"
        )
    if env.settings.is_production and not args.force_production:
        raise UsageError(
            f"refusing to upgrade the database of production environment {env.name!r} ({env.tfvars_file}: "
            "is_production = true) without --force-production (FORCE_PRD=1); rehearse it on a non-production "
            f"environment first ({RUNBOOK})"
        )
    if (refused := synth.refuse_placeholders([env])) is not None:
        return refused
    region = env.settings.aws_region
    _check_account(env, region)
    rds = rds_client(region)
    identifier = env.names.mlflow.prefix
    instance = describe_instance(rds, identifier)
    if instance is None:
        raise CommandError(
            f"no DB instance {identifier} in {region}: nothing to upgrade (a new deployment is created on "
            f"MySQL {MYSQL_MAJOR} by make deploy ENV={env.name})"
        )
    console.progress("db", env.name, f"{identifier}: MySQL {instance.engine_version}, {instance.status}")
    if instance.major == MYSQL_MAJOR:
        return _verify(args.root, env, instance, rds, console)
    if instance.major not in MYSQL_UPGRADE_SOURCES:
        raise CommandError(
            f"{identifier} runs MySQL {instance.engine_version}, which this upgrade does not start from"
        )
    pending = str(instance.pending.get("EngineVersion", ""))
    if pending and mysql_major(pending) == MYSQL_MAJOR:
        raise CommandError(
            f"{identifier}: the upgrade to {pending} is already scheduled for the maintenance window "
            f"({instance.maintenance_window}), deployed without apply_immediately; set "
            f"mlflow.database.apply_immediately = true in {env.tfvars_file} and make deploy ENV={env.name} to run it now"
        )
    problems = preflight(rds, instance, target)
    if problems:
        raise CommandError("preflight: nothing was done:\n  " + "\n  ".join(problems))
    name = snapshot_name(identifier, MYSQL_MAJOR)
    values = file_settings(env, instance, target)
    question = "\n".join(
        [
            f"Upgrade {identifier} ({env.name}) from MySQL {instance.engine_version} to {target}:",
            f"  1. snapshot {name} (taken now, or the one an earlier run took), waited for",
            f"  2. {env.tfvars_file}: mlflow.database " + ", ".join(f"{k} = {v}" for k, v in values.items()),
            "  3. you: make plan, review, make deploy (nothing is upgraded before that)",
        ]
    )
    if not args.auto_approve and not console.confirm(question, env.name):
        return 1
    snapshot = ensure_snapshot(
        rds,
        instance,
        name,
        timeout=args.timeout,
        console=console,
        env_name=env.name,
        mlflow_release=env.settings.mlflow.mlflow_version,
    )
    taken = snapshot.get("SnapshotCreateTime")
    when = _when(taken) if isinstance(taken, datetime) else "?"
    console.progress(
        "db", env.name, f"snapshot {name} available (taken {when}): the way back ({RUNBOOK}, Rollback)"
    )
    changed = write_file_settings(args.root, env, values, console)
    console.progress("db", env.name, f"{env.tfvars_file}: {'updated' if changed else 'already set'}")
    console.line(_next_steps(env, instance, target, name))
    return 0


def _check_account(env: Environment, region: str) -> None:
    expected = env.settings.aws_account_id
    if expected is None:
        return
    try:
        account = sts_client(region).get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as exc:
        raise _api_error("GetCallerIdentity", exc) from None
    if account != expected:
        raise UsageError(
            f"the credentials are of account {account}, but {env.tfvars_file} says aws_account_id = {expected}: "
            "use that account's credentials"
        )


def _next_steps(env: Environment, instance: Instance, target: str, snapshot: str) -> str:
    identifier = instance.identifier
    old_group = next((g for g, _ in instance.parameter_groups), group_name(identifier, instance.major))
    new_group = group_name(identifier, MYSQL_MAJOR)
    return f"""
Next ({RUNBOOK}):
  make plan ENV={env.name} STACK=mlflow
The plan must show exactly this for the database (anything else: stop and read it):
  +/- aws_db_parameter_group.mlflow must be replaced (create_before_destroy): name "{old_group}" ->
      "{new_group}", family "mysql{instance.major}" -> "mysql{MYSQL_MAJOR}" (forces replacement)
  ~ aws_db_instance.mlflow (update in place): engine_version "{instance.major}" -> "{target}",
      parameter_group_name "{old_group}" -> "{new_group}", allow_major_version_upgrade -> true
      (and apply_immediately -> true where the environment waits for the maintenance window)
  no replacement of aws_db_instance.mlflow, nothing else of the database
Then: make deploy ENV={env.name} STACK=mlflow (the instance is unavailable while RDS upgrades it, about
10 minutes and longer for big databases; the apply waits), and run this command again to check the result.
The way back is snapshot {snapshot} ({RUNBOOK}, Rollback)."""


def _verify(root: Path, env: Environment, instance: Instance, rds: Any, console: Console) -> int:
    """The instance is on the target major already: say what is left, fix the file if it still
    names the old major (its next plan would try a downgrade)."""
    identifier = instance.identifier
    problems: list[str] = []
    if instance.status != "available":
        problems.append(f"{identifier} is {instance.status!r}")
    expected = group_name(identifier, MYSQL_MAJOR)
    for group, status in instance.parameter_groups:
        if status != "in-sync":
            problems.append(
                f"parameter group {group} is {status!r}: reboot (aws rds reboot-db-instance "
                f"--db-instance-identifier {identifier})"
            )
        elif group != expected:
            problems.append(
                f"parameter group is {group}, not the stack's {expected}: make deploy ENV={env.name}"
            )
    database = env.settings.mlflow.database
    if database.major_version != MYSQL_MAJOR:
        values = {"engine_version": f'"{MYSQL_MAJOR}"'}
        after = DatabaseSettings(engine_lifecycle_support=database.engine_lifecycle_support)
        if after.lifecycle_support != instance.lifecycle_support:
            values["engine_lifecycle_support"] = f'"{instance.lifecycle_support}"'
        if write_file_settings(root, env, values, console):
            console.progress(
                "db", env.name, f"{env.tfvars_file}: now says MySQL {MYSQL_MAJOR}, as the instance runs"
            )
    snapshot = _snapshot(rds, snapshot_name(identifier, MYSQL_MAJOR))
    kept = (
        f"snapshot {snapshot['DBSnapshotIdentifier']} is kept: delete it once the way back is no longer "
        f"needed (aws rds delete-db-snapshot --db-snapshot-identifier {snapshot['DBSnapshotIdentifier']})"
        if snapshot is not None
        else "no pre-upgrade snapshot of this instance exists"
    )
    if problems:
        raise CommandError(
            f"{identifier} runs MySQL {instance.engine_version}, but:\n  " + "\n  ".join(problems)
        )
    console.line(
        f"{identifier} runs MySQL {instance.engine_version} with {expected} in sync: nothing to do. {kept}. "
        f"allow_major_version_upgrade and apply_immediately in {env.tfvars_file} may go in a later change."
    )
    return 0

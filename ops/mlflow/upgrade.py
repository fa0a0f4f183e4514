"""``ops mlflow upgrade --env E``: an environment's MLflow to the release its environment file names
(``mlflow.mlflow_version``, the release the pinned constraints are for), in the safe order, each
step safe to run again after an interruption (docs/runbooks/mlflow-upgrade.md; why this way:
docs/decisions/mlflow-upgrades.md).

1. **Preflight** (changes nothing): the running instances; on one of them, with SSM Run Command, the
   target release's ``mlflow_upgrade report``: each database's revision against the release's head,
   the pending migrations, legacy refusals the sign-in migration would drop, the rows users made;
   the saved plan of ``mlflow-<env>`` (``make plan ENV=E``), which must change the launch template
   and must not replace or destroy anything. Refused, before anything changes: a database newer
   than the target (a downgrade is a snapshot restore, ``ops mlflow rollback``), a release the
   pinned constraints do not cover, refusals that cannot be carried over, no running instance.
2. **Snapshot** ``<db>-pre-mlflow-<release>`` of the RDS instance, waited for (found again on a
   re-run, and refused if it belongs to another instance).
3. **Migrations**, once, with the target release, on one instance: ``mlflow_upgrade upgrade`` under
   the schema lock; a re-run finds the schemas at head and migrates nothing.
4. **Instance refresh**: ``ops deploy --stack mlflow`` applies the saved plan (a new launch template
   version starts the group's refresh, one instance at a time); then waits for the refresh. Skipped
   when the launch template already installs the target release.
5. **Check**: ``/health``, ``/version`` (as the admin) is the target release, a search of runs
   answers, and the rows users made are all still there.

Production (``is_production = true``) needs ``--force-production`` (``FORCE_PRD=1``); every run asks
for the environment's name unless ``--auto-approve``.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3

from ops.mlflow import people, upgrade_script
from ops.runner import ROOT, CommandError, Console, UsageError
from platform_config.loader import Environment

SCRIPT_TIMEOUT = 1800  # building the venv (pip) and the migrations
POLL_SECONDS = 5.0
SNAPSHOT_WAIT_SECONDS = 3600
REFRESH_WAIT_SECONDS = 5400
RELEASE_IN_USER_DATA = re.compile(r'"mlflow\[auth\]==([0-9][^"\s]*)"')
CHECK_TIMEOUT = 30


@dataclass(frozen=True)
class ScriptResult:
    status: str  # SSM's: Success, Failed, TimedOut, Cancelled, ...
    exit_code: int
    stdout: str
    stderr: str

    def answer(self) -> dict[str, Any]:
        """mlflow_upgrade's JSON (its last line)."""
        for line in reversed(self.stdout.strip().splitlines()):
            if line.startswith("{"):
                found: dict[str, Any] = json.loads(line)
                return found
        tail = "\n".join((self.stderr or self.stdout).strip().splitlines()[-8:])
        raise CommandError(
            f"the instance's script ended {self.status} (exit {self.exit_code}) without an answer:\n{tail}"
        )


class Aws:
    """The upgrade's AWS calls (the rehearsal runs the same ones against moto, and runs the
    script itself: ``run_script`` is what it overrides)."""

    def __init__(self, region: str) -> None:
        self.region = region

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def in_service(self, group: str) -> list[str]:
        found = self.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
        groups = found["AutoScalingGroups"]
        if not groups:
            return []
        return sorted(
            i["InstanceId"]
            for i in groups[0]["Instances"]
            if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"
        )

    def send(self, instance_id: str, line: str, comment: str) -> str:
        sent = self.client("ssm").send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Comment=comment[:100],
            TimeoutSeconds=600,  # to be delivered
            Parameters={"commands": [line], "executionTimeout": [str(SCRIPT_TIMEOUT)]},
        )
        return str(sent["Command"]["CommandId"])

    def run_script(self, instance_id: str, script: str, comment: str) -> ScriptResult:
        """Run ``script`` on the instance as root and wait for it (SSM Run Command)."""
        ssm = self.client("ssm")
        command_id = self.send(instance_id, upgrade_script.command_line(script), comment)
        deadline = time.monotonic() + SCRIPT_TIMEOUT + 600
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            try:
                found = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            except ssm.exceptions.InvocationDoesNotExist:
                continue
            if found["Status"] in {
                "Success",
                "Failed",
                "TimedOut",
                "Cancelled",
                "Undeliverable",
                "Terminated",
            }:
                return ScriptResult(
                    found["Status"],
                    int(found.get("ResponseCode", -1)),
                    found.get("StandardOutputContent", ""),
                    found.get("StandardErrorContent", ""),
                )
        raise CommandError(
            f"SSM command {command_id} on {instance_id}: no result within {SCRIPT_TIMEOUT + 600} s"
        )

    def snapshot(self, db_identifier: str, name: str, tags: dict[str, str]) -> str:
        """The named snapshot of the instance, taken now or found from an earlier run; waited for."""
        rds = self.client("rds")
        try:
            [found] = rds.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"]
            if found["DBInstanceIdentifier"] != db_identifier:
                raise CommandError(
                    f"snapshot {name} exists but is of {found['DBInstanceIdentifier']}, not {db_identifier}: "
                    "delete or rename it, then run again"
                )
            outcome = f"snapshot {name} found (from an earlier run, {found['Status']})"
        except rds.exceptions.DBSnapshotNotFoundFault:
            rds.create_db_snapshot(
                DBSnapshotIdentifier=name,
                DBInstanceIdentifier=db_identifier,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )
            outcome = f"snapshot {name} taken"
        rds.get_waiter("db_snapshot_available").wait(
            DBSnapshotIdentifier=name,
            WaiterConfig={"Delay": 15, "MaxAttempts": SNAPSHOT_WAIT_SECONDS // 15},
        )
        return outcome + ", available"

    def launch_template_release(self, group: str) -> str | None:
        """The MLflow release the group's launch template (its default version) installs."""
        found = self.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
        spec = found["AutoScalingGroups"][0].get("LaunchTemplate", {})
        if not spec:
            return None
        versions = self.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=spec["LaunchTemplateId"], Versions=["$Latest"]
        )["LaunchTemplateVersions"]
        data = versions[0]["LaunchTemplateData"].get("UserData", "") if versions else ""
        return release_in_user_data(data)

    def wait_refresh(self, group: str, console: Console) -> str:
        """Until the group's latest instance refresh ends; its outcome (raises unless Successful)."""
        asg = self.client("autoscaling")
        deadline, last = time.monotonic() + REFRESH_WAIT_SECONDS, ""
        while time.monotonic() < deadline:
            refreshes = asg.describe_instance_refreshes(AutoScalingGroupName=group, MaxRecords=1)[
                "InstanceRefreshes"
            ]
            if not refreshes:
                return "no instance refresh (nothing to replace)"
            latest = refreshes[0]
            status = latest["Status"]
            seen = f"{status} {latest.get('PercentageComplete', 0)}%"
            if seen != last:
                console.line(f"instance refresh {latest['InstanceRefreshId']}: {seen}")
                last = seen
            if status == "Successful":
                return f"instance refresh {latest['InstanceRefreshId']} successful"
            if status in {"Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed", "Baseline_Failed"}:
                raise CommandError(
                    f"instance refresh {latest['InstanceRefreshId']} ended {status}: "
                    f"{latest.get('StatusReason', '')}. The schemas are migrated and the snapshot is kept: fix the "
                    "cause and run the command again, or roll back (docs/runbooks/mlflow-upgrade.md, Rollback)"
                )
            time.sleep(POLL_SECONDS * 6)
        raise CommandError(f"instance refresh of {group} still running after {REFRESH_WAIT_SECONDS} s")


def release_in_user_data(data: str) -> str | None:
    """The MLflow release a launch template's user data (base64, gzipped or not) installs."""
    if not data:
        return None
    raw = base64.b64decode(data)
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode(errors="replace")
    match = RELEASE_IN_USER_DATA.search(text)
    return match.group(1) if match else None


class Deployer(Protocol):
    """How the new launch template reaches the group (the rehearsal starts its instances itself)."""

    def plan_check(self) -> list[str]:
        """What the saved plan of mlflow-<env> changes; CommandError when it is missing or would
        replace or destroy anything."""

    def apply(self, console: Console) -> None: ...


@dataclass
class OpsDeploy:
    """``ops deploy --stack mlflow`` with the saved plan of ``make plan ENV=E``."""

    root: Path
    env: str

    @property
    def stack(self) -> str:
        return f"mlflow-{self.env}"

    def plan_check(self) -> list[str]:
        text_file = self.root / "plans" / f"{self.stack}.txt"
        if not text_file.is_file():
            raise CommandError(
                f"no saved plan of {self.stack} ({text_file}): run `make plan ENV={self.env}` after bumping "
                "mlflow_version, review it, then run this again"
            )
        return plan_problems(text_file.read_text(), self.stack)

    def apply(self, console: Console) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "ops", "--root", str(self.root), "deploy", "--env", self.env,
             "--stack", "mlflow", "--auto-approve"],
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise CommandError(
                f"ops deploy of {self.stack} failed (exit {done.returncode}, its output is above): the schemas are "
                "migrated and the instances still run the old release, which works on them until restarted; fix "
                "the deploy and run this command again"
            )


def plan_problems(
    text: str, stack: str, replaced: tuple[str, ...] = (), why: str = "an MLflow upgrade"
) -> list[str]:
    """The lines of ``terraform show`` worth showing; CommandError when it replaces or destroys
    anything but the ``replaced`` addresses (prefixes) or leaves the launch template alone."""
    headers = [line.strip() for line in text.splitlines() if line.strip().startswith("# ")]
    bad = [
        h
        for h in headers
        if ("must be replaced" in h or "will be destroyed" in h)
        and not any(h.startswith(f"# {address}") for address in replaced)
    ]
    if bad:
        raise CommandError(
            f"the saved plan of {stack} replaces or destroys resources, which {why} never needs: "
            + "; ".join(bad[:5])
        )
    if not any("aws_launch_template.mlflow" in h for h in headers):
        raise CommandError(
            f"the saved plan of {stack} does not change the launch template: is mlflow_version bumped, and "
            "was the plan made after that?"
        )
    return headers


@dataclass
class Upgrade:
    env: Environment
    url: str
    aws: Aws
    deployer: Deployer
    console: Console
    auto_approve: bool = False
    force_production: bool = False
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def release(self) -> str:
        return self.env.settings.mlflow.mlflow_version

    @property
    def group(self) -> str:
        return self.env.names.mlflow.prefix

    @property
    def db_identifier(self) -> str:
        return self.env.names.mlflow.prefix

    def snapshot_name(self) -> str:
        return f"{self.db_identifier}-pre-mlflow-{self.release.replace('.', '-')}"

    def script(self, action: str) -> str:
        from platform_config.mlflow_constraints import CONSTRAINTS, MLFLOW_VERSION

        if self.release != MLFLOW_VERSION:  # the loader refuses this too; the script must not lie
            raise UsageError(
                f"{self.env.tfvars_file}: mlflow.mlflow_version = {self.release}, but the pinned constraints are "
                f"for {MLFLOW_VERSION}: regenerate them (python -m rehearsal.constraints --version {self.release})"
            )
        return upgrade_script.render(
            action,
            self.release,
            CONSTRAINTS,
            self.env.names.mlflow.parameter_path,
            self.env.settings.aws_region,
        )

    def run(self) -> int:
        c = self.console
        if self.env.settings.is_production and not self.force_production:
            raise UsageError(
                f"refusing to upgrade production environment {self.env.name!r} ({self.env.tfvars_file}: "
                "is_production = true) without --force-production (FORCE_PRD=1)"
            )
        script = self.script("report")  # refuses an uncovered release before any AWS call
        instances = self.aws.in_service(self.group)
        if not instances:
            raise CommandError(
                f"auto scaling group {self.group} has no healthy instance in service: the upgrade runs on one "
                "(deploy the stack first, or wait for the group to heal)"
            )
        instance = instances[0]
        c.line(
            f"preflight on {instance} (SSM Run Command; the first run installs MLflow {self.release} there) ..."
        )
        report = self.aws.run_script(instance, script, f"mlflow upgrade report {self.release}").answer()
        if "error" in report:
            raise CommandError(f"preflight: {report['error']}")
        state = self.describe(report)
        for line in state:
            c.line(line)
        template_release = self.aws.launch_template_release(self.group)
        at_head = report["tracking"]["revision"] == report["tracking"]["head"] and (
            report["auth"]["revision"] == report["auth"]["head"]
        )
        if at_head and template_release == self.release and report["auth"]["release"] == self.release:
            c.line(
                f"the schemas are at MLflow {self.release}'s head and the launch template installs it: nothing to "
                "migrate or deploy (an earlier run got this far); waiting for the refresh, then the check"
            )
            c.line(self.aws.wait_refresh(self.group, c))
            return self.check(report)
        plan = [] if template_release == self.release else self.deployer.plan_check()
        for line in plan:
            c.line(f"plan | {line}")
        steps = [
            f"snapshot {self.snapshot_name()} of {self.db_identifier}",
            f"migrations with MLflow {self.release} on {instance}"
            + (" (none pending: checked again under the lock)" if at_head else ""),
            "the saved plan applied, then the instance refresh waited for"
            if template_release != self.release
            else f"no deploy: the launch template installs {self.release} already",
            "check: /health, /version, a search of runs, the rows kept",
        ]
        question = f"Upgrade MLflow in {self.env.name!r} to {self.release}:\n" + "\n".join(
            f"  {n}. {s}" for n, s in enumerate(steps, 1)
        )
        if not self.auto_approve and not c.confirm(question, self.env.name):
            return 1
        before = _release_of(report)
        c.line(
            self.aws.snapshot(
                self.db_identifier,
                self.snapshot_name(),
                {
                    "Environment": self.env.name,
                    "MlflowReleaseBefore": before,
                    "MlflowReleaseAfter": self.release,
                    "CreatedBy": "ops mlflow upgrade",
                },
            )
        )
        start = time.monotonic()
        done = self.aws.run_script(
            instance, self.script("upgrade"), f"mlflow upgrade {self.release}"
        ).answer()
        if "error" in done:
            raise CommandError(f"migrations refused, nothing changed by them: {done['error']}")
        self.figures.update(
            migration_seconds=round(time.monotonic() - start, 1),
            tracking_migrations=done["tracking"]["migrations"],
            auth_migrations=done["auth"]["migrations"],
            tracking_migration_seconds=done["tracking"]["seconds"],
            auth_migration_seconds=done["auth"]["seconds"],
            denied_again=done["auth"]["denied_again"],
        )
        c.line(
            f"migrated on {instance}: tracking {done['tracking']['from']} -> {done['tracking']['to']} "
            f"({done['tracking']['migrations']} migrations, {done['tracking']['seconds']} s), sign-in "
            f"{done['auth']['from']} -> {done['auth']['to']} ({done['auth']['migrations']} migrations, "
            f"{done['auth']['seconds']} s); refusals carried over as DENY: {len(done['auth']['denied_again'])}"
        )
        if template_release != self.release:
            self.deployer.apply(c)
        c.line(self.aws.wait_refresh(self.group, c))
        return self.check(report)

    def describe(self, report: dict[str, Any]) -> list[str]:
        """The preflight's lines; CommandError for what must stop the upgrade before it starts."""
        lines = []
        for key, what in (("tracking", "tracking"), ("auth", "sign-in")):
            s = report[key]
            written = s.get("release") or "an unknown release"
            if not s["known"]:
                raise CommandError(
                    f"the {what} database's schema (revision {s['revision']}, written by MLflow {written}) is newer "
                    f"than MLflow {self.release}: a downgrade is not a migration; restore the snapshot taken before "
                    f"the upgrade that wrote it (ops mlflow rollback --env {self.env.name})"
                )
            pending = len(s["pending"] or [])
            lines.append(
                f"{what} database: revision {s['revision']} (MLflow {written}), {pending} migrations to "
                f"{s['head']} (MLflow {self.release}); rows {s['rows']}"
            )
        if report["legacy_denials_not_carried"] and report["drops_legacy_denials"]:
            raise CommandError(
                f"legacy refusals that MLflow {self.release}'s sign-in migration drops and this command cannot "
                f"carry over: {report['legacy_denials_not_carried']} (docs/runbooks/mlflow-upgrade.md)"
            )
        if report["legacy_denials"] and report["drops_legacy_denials"]:
            lines.append(
                f"{len(report['legacy_denials'])} per-resource refusals (NO_PERMISSIONS) will be granted again "
                f"as DENY: {report['legacy_denials'][:5]}"
            )
        return lines

    def check(self, before: dict[str, Any]) -> int:
        """The upgraded environment answers as the target release and kept every row."""
        c = self.console
        health = _get(self.url + "/health", None)[0]
        admin = self.env.settings.mlflow.auth.admin_username
        password, _ = people.current_secret(
            self.aws.client("secretsmanager"), self.env.names.mlflow.admin_password_secret
        )
        version_status, version = _get(self.url + "/version", (admin, password))
        search_status, _ = _post(
            self.url + "/api/2.0/mlflow/runs/search",
            (admin, password),
            {"experiment_ids": ["0"], "max_results": 1},
        )
        instances = self.aws.in_service(self.group)
        after = self.aws.run_script(instances[0], self.script("report"), "mlflow upgrade check").answer()
        lost = {
            f"{db}.{table}": (n, after[db]["rows"].get(table, 0))
            for db in ("tracking", "auth")
            for table, n in before[db]["rows"].items()
            if after[db]["rows"].get(table, 0) < n
        }
        heads = after["tracking"]["revision"] == after["tracking"]["head"] and (
            after["auth"]["revision"] == after["auth"]["head"]
        )
        ok = health == 200 and version_status == 200 and version.strip() == self.release
        ok = ok and search_status == 200 and not lost and heads
        self.figures.update(rows_before=before["tracking"]["rows"], rows_after=after["tracking"]["rows"])
        c.line(
            f"check: /health {health}; /version {version_status} {version.strip()!r}; runs search {search_status}; "
            f"schemas at head: {heads}; rows lost: {lost or 'none'}"
        )
        if not ok:
            raise CommandError(
                f"{self.env.name} does not answer as MLflow {self.release} with all its rows (above): the snapshot "
                f"{self.snapshot_name()} is kept; see docs/runbooks/mlflow-upgrade.md, Rollback"
            )
        c.line(
            f"{self.env.name} runs MLflow {self.release}; snapshot {self.snapshot_name()} kept (delete it when satisfied)"
        )
        return 0


def _release_of(report: dict[str, Any]) -> str:
    recorded = report["tracking"].get("release")
    return str(recorded) if recorded else f"revision-{report['tracking']['revision']}"


def _auth_header(auth: tuple[str, str] | None) -> dict[str, str]:
    if auth is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()}


def _get(url: str, auth: tuple[str, str] | None) -> tuple[int, str]:
    return _send(urllib.request.Request(url, headers=_auth_header(auth)))


def _post(url: str, auth: tuple[str, str] | None, body: dict[str, Any]) -> tuple[int, str]:
    headers = {**_auth_header(auth), "Content-Type": "application/json"}
    return _send(urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST"))


def _send(request: urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT) as response:
            return int(response.status), response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(2000).decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


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
    upgrade = Upgrade(
        env,
        t.url,
        aws or Aws(env.settings.aws_region),
        deployer or OpsDeploy(root, env.name),
        console or Console(),
        auto_approve=auto_approve,
        force_production=force_production,
    )
    return upgrade.run()

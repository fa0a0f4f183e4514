"""The upgrade rehearsal of one environment: MLflow of the release before (rehearsal/upgrade_from.py)
on the stack's two databases, filled as users fill it (people, an experiment, a run with params,
50 metric steps and two artifacts of several MiB, a registered model with two versions and an
alias, grants and an explicit refusal), then:

- the pinned release's boot script on that database: it must stop at once, with the line naming
  both releases and the upgrade command, report the instance unhealthy, and migrate nothing;
- ``ops mlflow upgrade`` as it runs (rehearsal/../ops/mlflow/upgrade.py, the same ``Upgrade``
  object): its AWS calls go to moto (the group, SSM Run Command, the RDS snapshot), the script it
  sends runs on the rehearsal's instance (``RehearsalAws.run_script``), and its deploy starts three
  instances of the pinned release's boot script (``RehearsalDeploy``: no Terraform provider here);
- everything read back as each user, compared with what was read before the upgrade;
- the command run again (nothing migrated twice), a downgrade refused, and the rollback: the
  snapshot (here a dump of both databases) restored and the old release serving the same data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.mlflow import upgrade as ops_upgrade
from ops.mlflow import upgrade_script
from ops.mlflow.rollback import Rollback
from ops.mlflow.venv import ensure as venv_of
from ops.runner import CommandError, Console
from platform_config.loader import load
from rehearsal import procs, substitutions, upgrade_from
from rehearsal.harness import ROOT, Rehearsal
from rehearsal.instance import Instance

OLD = upgrade_from.MLFLOW_VERSION
OLD_VENV = ROOT / f".venv-mlflow-{OLD}"
DATA = Path(__file__).with_name("upgrade_data.py")
NEW_INSTANCES = 3
INSTANCE_FILES = ("mlflow_rds_iam.py", "mlflow_schemas.py", "mlflow_upgrade.py")
MISMATCH_WAIT = 120.0


def old_venv() -> Path:
    """The release before's venv (its own pins), with the instance files as the boot script installs them."""
    from constructs_lib.user_data import PIP_REQUIREMENTS

    python = venv_of(
        [f"{PIP_REQUIREMENTS[0]}=={OLD}", *PIP_REQUIREMENTS[1:]], upgrade_from.CONSTRAINTS, OLD_VENV
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    for name in INSTANCE_FILES:
        shutil.copyfile(ROOT / "constructs_lib" / "instance" / name, site / name)
    info = site / "mlflow_rds_iam-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlflow-rds-iam\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sqlalchemy.plugins]\nrds_iam = mlflow_rds_iam:RdsIamAuth\n")
    return OLD_VENV


@dataclass
class OldServer:
    """MLflow of the release before, started as that release needs (its sign-in file must hold the
    admin's password: it has no other way to create the admin)."""

    root: Path
    venv: Path
    env: dict[str, str]
    port: int = field(default_factory=procs.free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(
        self, tracking_uri: str, auth_settings: dict[str, str], artifacts: str, flask_key: str
    ) -> float:
        self.root.mkdir(parents=True, exist_ok=True)
        ini = self.root / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\n" + "".join(f"{k} = {v.replace('%', '%%')}\n" for k, v in auth_settings.items())
        )
        ini.chmod(0o600)
        env = {
            **self.env,
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_key,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        start = time.monotonic()
        self.proc = procs.start(
            [str(self.venv / "bin/mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri", tracking_uri,
             "--artifacts-destination", artifacts, "--serve-artifacts", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "2"],
            self.root / "server.log", env,
        )  # fmt: skip
        procs.wait_until(f"MLflow {OLD}", lambda: procs.http_ok(f"{self.url}/health"), 300, 0.5)
        return time.monotonic() - start

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


class RehearsalAws(ops_upgrade.Aws):
    """The command's AWS calls against moto; the script it sends with SSM runs on the instance."""

    def __init__(self, r: UpgradeRehearsal) -> None:
        super().__init__(r.target.region)
        self.r = r
        self.scripts: list[tuple[str, float, int]] = []

    def client(self, service: str) -> Any:
        return self.r.client(service)

    def run_script(self, instance_id: str, script: str, comment: str) -> ops_upgrade.ScriptResult:
        self.send(instance_id, upgrade_script.command_line(script), comment)  # recorded by moto
        line = upgrade_script.command_line(script)
        here = self.r.work / "ssm" / instance_id
        ctx = substitutions.Context(here, self.r.venv, self.r.tls.ca, 0, 0)
        text = substitutions.apply(upgrade_script.unpack(line), ctx, substitutions.UPGRADE_RULES)
        here.mkdir(parents=True, exist_ok=True)
        path = here / f"command-{len(self.scripts)}.sh"
        path.write_text(text)
        start = time.monotonic()
        done = subprocess.run(
            ["bash", str(path)], capture_output=True, text=True, timeout=ops_upgrade.SCRIPT_TIMEOUT,
            env={**self.r.base_env(), "PIP_NO_INDEX": "1"}, check=False,
        )  # fmt: skip
        self.scripts.append((comment, time.monotonic() - start, done.returncode))
        (here / f"command-{len(self.scripts) - 1}.log").write_text(
            done.stdout + "\n--- stderr\n" + done.stderr
        )
        return ops_upgrade.ScriptResult(
            "Success" if done.returncode == 0 else "Failed", done.returncode, done.stdout, done.stderr
        )

    def snapshot(self, db_identifier: str, name: str, tags: dict[str, str]) -> str:
        outcome = super().snapshot(db_identifier, name, tags)  # moto: the RDS calls and the waiter
        dump = self.r.snapshot_file(name)
        if not dump.exists():  # what the snapshot holds: both databases as they are now
            size = self.r.db.dump([self.r.db_name, self.r.auth_db_name], dump)
            outcome += f" (its contents here: a dump of both databases, {size // 1024} KiB)"
        return outcome

    def wait_refresh(self, group: str, console: Console) -> str:
        if self.r.restored:
            return f"instance refresh (rehearsal): MLflow {OLD} serving on the restored databases"
        healthy = [i.name for i in self.r.new if i.healthy_after is not None]
        if len(healthy) != NEW_INSTANCES:
            raise CommandError(f"instance refresh (rehearsal): healthy {healthy} of {NEW_INSTANCES}")
        return f"instance refresh (rehearsal): {', '.join(healthy)} healthy with the new launch template"


@dataclass
class RehearsalDeploy:
    """What applying the saved plan does to the group, here: the new launch template version (in
    moto, with the synthesized user data), the old instance replaced by three new ones."""

    r: UpgradeRehearsal
    applied: int = 0

    def plan_check(self) -> list[str]:
        return [
            "# aws_launch_template.mlflow will be updated in-place (rehearsal: no AWS provider on this machine; "
            "the plan is made in CI and checked by ops.mlflow.upgrade.plan_problems, tested on its own)"
        ]

    def apply(self, console: Console) -> None:
        self.applied += 1
        r = self.r
        r.client("ec2").create_launch_template_version(
            LaunchTemplateName=r.group,
            LaunchTemplateData={"UserData": r.target.resources("aws_launch_template")["mlflow"]["user_data"]},
        )
        # Between the migrations and the refresh, the old release's running server works on the
        # new schemas (it is not restarted): what users meet meanwhile.
        meanwhile = r.data("read", r.old.url, r.old.venv)
        r.meanwhile = {"same data": meanwhile["data"] == r.before["data"], "probes": meanwhile["probes"]}
        r.old.stop()
        for inst in r.new:
            inst.boot(r.target.script)
            inst.prepare_units()
        for inst in r.new:
            inst.start_units()
        for inst in r.new:
            inst.wait_healthy()
        console.line(f"(rehearsal) {NEW_INSTANCES} instances of MLflow {r.release} healthy")


@dataclass
class RehearsalRestore:
    """What applying the rollback's saved plan does, here: the database replaced by the snapshot
    (its dump loaded), the instances of the release before started on it."""

    r: UpgradeRehearsal

    def plan_check(self) -> list[str]:
        return [
            "# aws_db_instance.mlflow must be replaced (rehearsal: no AWS provider on this machine; the plan "
            "is made in CI and checked by ops.mlflow.rollback.RollbackPlan, tested on its own)"
        ]

    def apply(self, console: Console) -> None:
        r = self.r
        for inst in r.new:
            inst.stop()
        name = r.snapshot_name()
        r.db.restore([r.db_name, r.auth_db_name], r.snapshot_file(name))
        r.start_old(r.old)
        r.restored = True
        console.line(f"(rehearsal) {name} restored, MLflow {OLD} started on it")


@dataclass
class UpgradeRehearsal(Rehearsal):
    old: OldServer = field(init=False)
    new: list[Instance] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    meanwhile: dict[str, Any] = field(default_factory=dict)
    restored: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.report.env = f"{self.target.env} upgrade"

    @property
    def group(self) -> str:
        return str(self.target.resources("aws_autoscaling_group")["mlflow"]["name"])

    @property
    def release(self) -> str:
        """The pinned release: what the stack's boot script installs."""
        return upgrade_script_release(self.target.script)

    def snapshot_file(self, name: str) -> Path:
        path = self.work / "snapshots" / f"{name}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def uri(self, database: str) -> str:
        return (
            f"mysql+pymysql://{self.db_user}@127.0.0.1:{self.db.port}/{database}"
            f"?ssl_ca={self.tls.ca}&plugin=rds_iam&rds_iam_region={self.target.region}"
        )

    def old_env(self) -> dict[str, str]:
        return {**self.base_env(), "MLFLOW_DISABLE_TELEMETRY": "true"}

    def provisioned(self) -> tuple[bool, str]:
        return True, f"secrets {sorted(self.provision()['secrets'].values())}"

    # --- the release before, filled ---------------------------------------------------------
    def seed_rds(self) -> None:
        """The database instance and the group the command asks moto about."""
        self.client("rds").create_db_instance(
            DBInstanceIdentifier=self.target.resources("aws_db_instance")["mlflow"]["identifier"],
            Engine="mysql",
            DBInstanceClass="db.t3.micro",
            MasterUsername=self.target.db_username,
            MasterUserPassword=secrets.token_urlsafe(12),
            AllocatedStorage=20,
        )

    def boot_old(self) -> tuple[bool, str]:
        self.seed_rds()
        venv = old_venv()
        python = str(venv / "bin/python")
        admin = self.target.auth["admin_username"]
        created = subprocess.run(
            [python, "-c",
             "import sys, mlflow_schemas, sqlalchemy as sa; "
             "print(mlflow_schemas.boot(sa.create_engine(sys.argv[1]), sa.create_engine(sys.argv[2]), 'x', sys.argv[3])[0])",
             self.uri(self.db_name), self.uri(self.auth_db_name), admin],
            capture_output=True, text=True, env=self.old_env(), timeout=600, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            return False, f"schemas of {OLD}: {created.stderr.strip()[-600:]}"
        self.old = OldServer(self.work / "old", venv, self.old_env())
        seconds = self.start_old(self.old)
        revisions = self.revisions()
        return (
            True,
            f"MLflow {OLD}: {created.stdout.strip()}; healthy after {seconds:.1f} s; revisions {revisions}",
        )

    def artifacts_destination(self) -> str:
        """The stack's setting (what every release of the platform serves artifacts from)."""
        name = next(
            v["name"]
            for v in self.target.resources("aws_ssm_parameter").values()
            if v["name"].endswith("/artifacts_destination")
        )
        value: str = self.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        return value

    def start_old(self, server: OldServer) -> float:
        return server.start(
            self.uri(self.db_name),
            {
                "default_permission": self.target.auth["default_permission"],
                "database_uri": self.uri(self.auth_db_name),
                "admin_username": self.target.auth["admin_username"],
                "admin_password": self.secret_value("mlflow_admin_password"),
                "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
            },
            self.artifacts_destination(),
            self.secret_value("mlflow_flask_secret_key"),
        )

    def snapshot_name(self) -> str:
        identifier = self.target.resources("aws_db_instance")["mlflow"]["identifier"]
        return f"{identifier}-pre-mlflow-{self.release.replace('.', '-')}"

    def revisions(self) -> dict[str, str]:
        return {
            "tracking": self.db.sql("SELECT version_num FROM alembic_version", self.db_name).strip(),
            "auth": self.db.sql("SELECT version_num FROM alembic_version_auth", self.auth_db_name).strip(),
        }

    def data(self, action: str, url: str, venv: Path) -> dict[str, Any]:
        done = subprocess.run(
            [str(venv / "bin/python"), str(DATA), action, url],
            input=json.dumps(self.spec), capture_output=True, text=True, timeout=600,
            env=self.old_env(), check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{action} at {url}: {done.stderr.strip()[-800:]}")
        found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return found

    def fill(self) -> tuple[bool, str]:
        names = ("alice", "bob", "carol", "dave")
        self.passwords.update({n: secrets.token_urlsafe(18) for n in names})
        self.spec = {
            "admin": [self.target.auth["admin_username"], self.secret_value("mlflow_admin_password")],
            "users": {n: self.passwords[n] for n in names},
            "experiment": f"upgrade-{self.target.env}",
        }
        self.spec["ids"] = self.data("fill", self.old.url, self.old.venv)
        self.before = self.data("read", self.old.url, self.old.venv)
        return True, json.dumps({"ids": self.spec["ids"], **self.before})[:1500]

    # --- the new release's boot script without the upgrade ----------------------------------
    def refused_without_upgrade(self) -> tuple[bool, str]:
        revisions = self.revisions()
        inst = self.new_instance("not-upgraded")
        inst.boot(self.target.script)
        inst.prepare_units()
        unit = inst.units["mlflow.service"]
        unit.start()
        started = time.monotonic()
        procs.wait_until("the refused start", lambda: bool(unit.exits), MISMATCH_WAIT, 0.25)
        stopped_after = time.monotonic() - started
        time.sleep(unit.spec.restart_sec + 3)  # a restart would have come by now
        log = inst.server_log.read_text(errors="replace")
        line = next((x for x in log.splitlines() if x.startswith("error: ")), "(no error line)")
        health = self.instance_health()
        unchanged = self.revisions() == revisions
        names_both = OLD in line and self.release in line and "ops mlflow upgrade" in line
        ok = unit.exits == [3] and health == "Unhealthy" and unchanged and names_both
        inst.stop()
        self.instances.remove(inst)
        # The group replaces an unhealthy instance; the upgrade then finds a healthy one.
        self.client("autoscaling").set_instance_health(
            InstanceId=self.imds.instance_id, HealthStatus="Healthy"
        )
        self.report.figures["refused start, from unit start to exit"] = f"{stopped_after:.1f} s"
        return ok, (
            f"exit statuses {unit.exits} after {stopped_after:.1f} s, not restarted; {line[:400]}; group health: "
            f"{health}; revisions unchanged: {unchanged} {revisions}"
        )

    # --- the command --------------------------------------------------------------------------
    @contextmanager
    def operator(self) -> Any:
        """The operator's environment for the in-process command: AWS calls to moto."""
        saved = dict(os.environ)
        os.environ.update(
            AWS_ENDPOINT_URL=self.moto.endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=self.target.region, AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
        )  # fmt: skip
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def command(self, aws: RehearsalAws, deploy: RehearsalDeploy) -> ops_upgrade.Upgrade:
        [env] = load(ROOT, [self.target.env])
        return ops_upgrade.Upgrade(
            env, self.new[0].url, aws, deploy, Console(), auto_approve=True, force_production=True
        )

    def upgrade(self, aws: RehearsalAws, deploy: RehearsalDeploy) -> tuple[bool, str]:
        self.new = [self.new_instance(f"new-{i}") for i in range(NEW_INSTANCES)]
        start = time.monotonic()
        with self.operator():
            upgrade = self.command(aws, deploy)
            code = upgrade.run()
        seconds = time.monotonic() - start
        f = upgrade.figures
        self.report.figures[f"upgrade {OLD} -> {self.release}"] = (
            f"{f['tracking_migrations']} tracking + {f['auth_migrations']} sign-in migrations in "
            f"{f['tracking_migration_seconds']} + {f['auth_migration_seconds']} s (script {f['migration_seconds']} s); "
            f"whole command {seconds:.0f} s"
        )
        ok = code == 0 and self.revisions()["tracking"] != "" and deploy.applied == 1
        return ok, (
            f"exit {code} in {seconds:.0f} s; {f}; the old release's running server after the migrations: "
            f"{self.meanwhile}; scripts sent: "
            + ", ".join(f"{c} ({s:.1f} s, exit {e})" for c, s, e in aws.scripts)
        )

    def read_back(self) -> tuple[bool, str]:
        after = self.data("read", self.new[0].url, self.venv)
        same_data = after["data"] == self.before["data"]
        probes = {k: (self.before["probes"][k], v) for k, v in after["probes"].items()}
        changed = {k: v for k, v in probes.items() if v[0] != v[1]}
        by_instance = [
            self.data("read", inst.url, self.venv)["data"] == after["data"] for inst in self.new[1:]
        ]
        self.report.figures["permission probes, HTTP status (before, after)"] = json.dumps(probes)
        self.report.figures["the old release's server, still running, after the migrations"] = json.dumps(
            self.meanwhile
        )
        ok = same_data and not changed and all(by_instance)
        return ok, (
            f"data identical: {same_data}; every instance reads the same: {by_instance}; permission probes "
            f"(before, after): {probes}" + (f"; CHANGED: {changed}" if changed else "")
        )

    def again(self, aws: RehearsalAws, deploy: RehearsalDeploy) -> tuple[bool, str]:
        """Run again (as after an interruption past the deploy): nothing migrated, nothing deployed."""
        revisions, scripts = self.revisions(), len(aws.scripts)
        with self.operator():
            code = self.command(aws, deploy).run()
        ran = [c for c, _, _ in aws.scripts[scripts:]]
        ok = (
            code == 0
            and self.revisions() == revisions
            and deploy.applied == 1
            and "mlflow upgrade " + self.release not in ran
        )
        return (
            ok,
            f"exit {code}; scripts this time: {ran}; deploys in all: {deploy.applied}; revisions {revisions}",
        )

    def downgrade_refused(self) -> tuple[bool, str]:
        """The release before's own report and upgrade against the upgraded databases."""
        revisions = self.revisions()
        outputs = []
        for action in ("report", "upgrade"):
            done = subprocess.run(
                [str(OLD_VENV / "bin/python"), "-m", "mlflow_upgrade", action, self.uri(self.db_name), self.uri(self.auth_db_name)],
                capture_output=True, text=True, env=self.old_env(), timeout=600, check=False,
            )  # fmt: skip
            outputs.append(
                (
                    action,
                    done.returncode,
                    done.stdout.strip().splitlines()[-1][:300] if done.stdout.strip() else done.stderr[-300:],
                )
            )
        report_says_newer = '"known": false' in outputs[0][2]
        refused = outputs[1][1] == 3 and "newer" in outputs[1][2]
        ok = report_says_newer and refused and self.revisions() == revisions
        return ok, f"{outputs}; revisions unchanged: {self.revisions() == revisions}"

    def rollback(self) -> tuple[bool, str]:
        """``ops mlflow rollback`` as it runs (the file naming the release before and the snapshot):
        the snapshot restored (here: its dump), the release before serving the data and the
        permissions as they were before the upgrade."""
        [env] = load(ROOT, [self.target.env])
        database = env.settings.mlflow.database.model_copy(
            update={"restore_from_snapshot": self.snapshot_name()}
        )
        mlflow = env.settings.mlflow.model_copy(update={"mlflow_version": OLD, "database": database})
        env = dataclasses.replace(env, settings=env.settings.model_copy(update={"mlflow": mlflow}))
        self.old = OldServer(self.work / "old-again", OLD_VENV, self.old_env())
        start = time.monotonic()
        with self.operator():
            code = Rollback(
                env, self.old.url, RehearsalAws(self), RehearsalRestore(self), Console(),
                auto_approve=True, force_production=True,
            ).run()  # fmt: skip
        seconds = time.monotonic() - start
        restored = self.revisions()
        back = self.data("read", self.old.url, OLD_VENV)
        same = back["data"] == self.before["data"] and back["probes"] == self.before["probes"]
        self.old.stop()
        return code == 0 and same, (
            f"exit {code} in {seconds:.0f} s; restored revisions {restored}; data and permissions as before the "
            f"upgrade: {same}"
        )

    def run(self) -> Any:
        r = self.report
        aws, deploy = RehearsalAws(self), RehearsalDeploy(self)
        try:
            if not (
                r.step("servers on 127.0.0.1", self.start_servers)
                and r.step("stack's parameters and secrets in moto", self.seed)
                and r.step("database user and secrets by the db-users Lambda handler", self.provisioned)
                and r.step(f"MLflow {OLD} (the release before) started on both databases", self.boot_old)
                and r.step("filled as users do: 4 users, grants and a refusal, run, 8 MiB of artifacts, model versions, alias", self.fill)
            ):  # fmt: skip
                return r
            r.step(
                f"MLflow {self.release}'s boot script without the upgrade: stops at once, unhealthy, nothing migrated",
                self.refused_without_upgrade,
                "22",
            )
            if r.step(
                f"ops mlflow upgrade {OLD} -> {self.release}: snapshot, migrations once, 3 new instances, check",
                lambda: self.upgrade(aws, deploy),
                "22",
            ):
                r.step(
                    "read back as each user on every instance: identical data, same permissions",
                    self.read_back,
                    "22",
                )
                r.step(
                    "ops mlflow upgrade again: nothing to migrate or deploy, the check passes",
                    lambda: self.again(aws, deploy),
                    "22",
                )
                r.step(
                    f"MLflow {OLD} on the upgraded databases: report says newer, upgrade refuses (exit 3)",
                    self.downgrade_refused,
                    "22",
                )
                r.step(
                    f"rollback: the snapshot restored, MLflow {OLD} serves the data as before",
                    self.rollback,
                    "22",
                )
            r.step("no traffic beyond 127.0.0.1 (telemetry)", self.no_egress, "5")
        finally:
            self.old_stop()
            self.stop()
        return r

    def old_stop(self) -> None:
        if hasattr(self, "old"):
            self.old.stop()


def upgrade_script_release(script: str) -> str:
    match = ops_upgrade.RELEASE_IN_USER_DATA.search(script)
    if match is None:
        raise ValueError("the boot script installs no mlflow[auth]==<release>")
    return match.group(1)


def main_for(target: Any, work: Path, venv: Path, moto: Path, path_prefix: Path) -> Any:
    return UpgradeRehearsal(target, work, venv, moto, path_prefix).run()


if __name__ == "__main__":
    sys.exit("run through python -m rehearsal (--upgrade)")

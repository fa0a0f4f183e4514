"""``ops db upgrade-engine`` against moto's RDS (in process), on a copy of the shipped environment
files whose database says what an existing 8.0 deployment's would.

moto 5.2.5 answers DescribeDBInstances, CreateDBSnapshot, DescribeDBSnapshots, the snapshot waiter and
STS, but not DescribeDBEngineVersions nor DescribePendingMaintenanceActions: those two are answered
by a ``before-call`` hook on the client (what RDS would say for an 8.0.40 instance), which is also how
a test makes them say something else.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from moto import mock_aws

from ops import cli, db
from ops.runner import CommandError, Console
from platform_config.loader import TFVARS_DIR, load
from tests.cli.support import repo_copy
from tests.conftest import load_repo_environments

REGION_OF = {e.name: e.settings.aws_region for e in load_repo_environments()}
NON_PRODUCTION = next(e.name for e in load_repo_environments() if not e.settings.is_production)
PRODUCTION = next(e.name for e in load_repo_environments() if e.settings.is_production)
SHIPPED_VERSION = re.compile(r'^(\s*engine_version\s*=\s*)"8\.4"', re.MULTILINE)
VALID_TARGETS = ["8.0.41", "8.4.5", "8.4.6"]


@dataclass
class Rds:
    """The stand-ins for what moto does not answer, and a log of the clients made."""

    targets: list[str] = field(default_factory=lambda: list(VALID_TARGETS))
    maintenance: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    # What moto cannot be made to say: merged into DescribeDBInstances' answer (e.g. pending
    # modifications), snapshot states answered one per DescribeDBSnapshots call (the last one stays),
    # snapshot fields, and operations that fail (an error code, or an exception to raise).
    instance: dict[str, Any] = field(default_factory=dict)
    snapshot_states: list[str] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)
    failing: dict[str, str | Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def client(self, region: str) -> Any:
        self.clients.append(region)
        rds = boto3.client("rds", region_name=region)
        rds.meta.events.register("before-call.rds.*", self._fail)
        rds.meta.events.register("before-call.rds.DescribeDBEngineVersions", self._engine_versions)
        rds.meta.events.register("before-call.rds.DescribePendingMaintenanceActions", self._maintenance)
        rds.meta.events.register("after-call.rds.DescribeDBInstances", self._instances)
        rds.meta.events.register("after-call.rds.DescribeDBSnapshots", self._snapshots)
        return rds

    def _fail(self, model: Any, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        self.calls.append(model.name)
        failure = self.failing.get(model.name)
        if isinstance(failure, Exception):
            raise failure
        if failure is not None:
            return _Denied(), {"Error": {"Code": failure, "Message": f"{failure} (test)"}}
        return None

    def _instances(self, parsed: dict[str, Any], **_: Any) -> None:
        for found in parsed.get("DBInstances", []):
            found.update(self.instance)

    def _snapshots(self, parsed: dict[str, Any], **_: Any) -> None:
        for found in parsed.get("DBSnapshots", []):
            found.update(self.snapshot)
            if self.snapshot_states:
                found["Status"] = (
                    self.snapshot_states.pop(0) if len(self.snapshot_states) > 1 else self.snapshot_states[0]
                )

    def _engine_versions(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        version = params["body"]["EngineVersion"]
        upgrades = [
            {"Engine": "mysql", "EngineVersion": t, "IsMajorVersionUpgrade": not t.startswith(version[:3])}
            for t in self.targets
        ]
        return _Ok(), {
            "DBEngineVersions": [
                {"Engine": "mysql", "EngineVersion": version, "ValidUpgradeTarget": upgrades}
            ]
        }

    def _maintenance(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        arn = params["body"]["ResourceIdentifier"]
        details = [{"Action": a, "Description": a} for a in self.maintenance]
        return _Ok(), {
            "PendingMaintenanceActions": [
                {"ResourceIdentifier": arn, "PendingMaintenanceActionDetails": details}
            ]
            if details
            else []
        }


class _Ok:
    status_code = 200
    headers: ClassVar[dict[str, str]] = {}


class _Denied:
    status_code = 403
    headers: ClassVar[dict[str, str]] = {}


@pytest.fixture
def rds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rds]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_RDS"):
        monkeypatch.delenv(key, raising=False)
    fake = Rds()
    monkeypatch.setattr(db, "rds_client", fake.client)
    with mock_aws():
        yield fake


def repo_on_80(tmp_path: Path, env: str) -> Path:
    """A repository copy whose ``env`` file says what an existing 8.0 database's says."""
    root = repo_copy(tmp_path / "repo")
    path = root / TFVARS_DIR / f"{env}.tfvars"
    text, n = SHIPPED_VERSION.subn(r'\g<1>"8.0"', path.read_text())
    assert n == 1, 'the shipped file no longer says engine_version = "8.4" on a line of its own'
    path.write_text(text)
    return root


def identifier(env: str) -> str:
    return f"mlopspltf-{env}-mlflow"


def make_instance(env: str, version: str = "8.0.40") -> str:
    rds = boto3.client("rds", region_name=REGION_OF[env])
    group = identifier(env) if version.startswith("8.0") else f"{identifier(env)}-mysql84"
    rds.create_db_parameter_group(
        DBParameterGroupName=group,
        DBParameterGroupFamily=f"mysql{version[:3]}",
        Description="MLflow backend store",
    )
    rds.create_db_instance(
        DBInstanceIdentifier=identifier(env),
        Engine="mysql",
        EngineVersion=version,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="mlflow_admin",
        ManageMasterUserPassword=True,
        DBParameterGroupName=group,
        EnableIAMDatabaseAuthentication=True,
    )
    return identifier(env)


def snapshots(env: str) -> list[dict[str, Any]]:
    rds = boto3.client("rds", region_name=REGION_OF[env])
    # moto also lists the automated snapshot it takes at creation (rds:<id>-<time>).
    return [
        s
        for s in rds.describe_db_snapshots()["DBSnapshots"]
        if s["DBInstanceIdentifier"] == identifier(env) and not s["DBSnapshotIdentifier"].startswith("rds:")
    ]


def upgrade(root: Path, env: str, *extra: str) -> int:
    return cli.main(["--root", str(root), "db", "upgrade-engine", "--env", env, "--to", "8.4", *extra])


def database_block(root: Path, env: str) -> dict[str, Any]:
    [loaded] = load(root, [env])
    return loaded.settings.mlflow.database.model_dump()


# --- the way through ---------------------------------------------------------------------------


def test_snapshot_then_the_file_then_the_plan_to_expect(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]
) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    assert upgrade(root, env, "--auto-approve") == 0
    out = capsys.readouterr().out
    [snapshot] = snapshots(env)
    assert snapshot["DBSnapshotIdentifier"] == f"{identifier(env)}-pre-mysql-8-4"
    assert snapshot["Status"] == "available" and snapshot["EngineVersion"] == "8.0.40"
    tags = {t["Key"]: t["Value"] for t in snapshot.get("TagList", [])}
    assert tags["Runbook"] == "docs/runbooks/mysql-major-upgrade.md"
    # What ops mlflow rollback checks before it restores a snapshot: the release the data is of.
    release = load(root, [env])[0].settings.mlflow.mlflow_version
    assert (tags["MlflowReleaseBefore"], tags["MlflowReleaseAfter"]) == (release, release)
    assert tags["MysqlVersionBefore"] == "8.0.40"
    database = database_block(root, env)
    assert database["engine_version"] == "8.4"
    assert database["allow_major_version_upgrade"] is True
    # The instance keeps the enrollment RDS gave it (the API's default, as moto reports none).
    assert database["engine_lifecycle_support"] == "open-source-rds-extended-support"
    # Outside production changes apply at once already: the file does not need to say so.
    assert database["apply_immediately"] is None
    # The plan a reviewer must see, with this instance's names.
    assert f'name "{identifier(env)}" ->\n      "{identifier(env)}-mysql84"' in out
    assert 'engine_version "8.0" -> "8.4"' in out
    assert f"make plan ENV={env} STACK=mlflow" in out and f"make deploy ENV={env} STACK=mlflow" in out
    if shutil.which("terraform"):
        from ops.lint import terraform_fmt

        text = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
        assert terraform_fmt(text) == text, "the edited file is not as terraform fmt writes it"


def test_a_rerun_finds_the_snapshot_and_changes_nothing(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]
) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    # An earlier run took the snapshot, then was interrupted before the file was written.
    boto3.client("rds", region_name=REGION_OF[env]).create_db_snapshot(
        DBSnapshotIdentifier=f"{identifier(env)}-pre-mysql-8-4", DBInstanceIdentifier=identifier(env)
    )
    assert upgrade(root, env, "--auto-approve") == 0
    assert "exists (available): taken by an earlier run" in capsys.readouterr().out
    assert len(snapshots(env)) == 1
    path = root / TFVARS_DIR / f"{env}.tfvars"
    written = path.read_text()
    assert upgrade(root, env, "--auto-approve") == 0
    assert "already set" in capsys.readouterr().out
    assert path.read_text() == written and len(snapshots(env)) == 1


def test_an_instance_on_84_needs_nothing_and_the_file_follows_it(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the deploy (or an upgrade made elsewhere): nothing to do, no snapshot; a file that
    still says 8.0 would plan a downgrade, so it is made to say 8.4."""
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env, version="8.4.5")
    assert upgrade(root, env, "--auto-approve") == 0
    out = capsys.readouterr().out
    assert "runs MySQL 8.4.5" in out and "nothing to do" in out
    assert snapshots(env) == []
    assert database_block(root, env)["engine_version"] == "8.4"


def test_production_applies_the_upgrade_at_once(tmp_path: Path, rds: Rds) -> None:
    """Production waits for the maintenance window by default; the upgrade cannot (the new
    family's group is refused until the engine is 8.4), so the file says apply_immediately."""
    env = PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    assert upgrade(root, env, "--auto-approve", "--force-production") == 0
    database = database_block(root, env)
    assert (database["engine_version"], database["apply_immediately"]) == ("8.4", True)


def test_asks_first_and_does_nothing_without_the_answer(
    tmp_path: Path, rds: Rds, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert upgrade(root, env) == 1
    assert snapshots(env) == [] and (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before
    assert f"answer was not '{env}'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{env}\n"))
    assert upgrade(root, env) == 0
    assert len(snapshots(env)) == 1


# --- refusals: exit code, one message, nothing done --------------------------------------------


def refused(code: int, capsys: pytest.CaptureFixture[str], says: str, exit_code: int) -> str:
    err = capsys.readouterr().err
    assert code == exit_code, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and says in err, err
    return err


def test_an_unknown_environment(tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]) -> None:
    root = repo_copy(tmp_path / "repo")
    refused(upgrade(root, "nosuch1"), capsys, "error: --env: unknown environment 'nosuch1'", 2)
    assert rds.clients == []


def test_production_without_its_guard(tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]) -> None:
    env = PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    err = refused(
        upgrade(root, env, "--auto-approve"),
        capsys,
        f"refusing to upgrade the database of production environment {env!r}",
        2,
    )
    assert "without --force-production (FORCE_PRD=1)" in err
    assert rds.clients == [] and snapshots(env) == []
    assert (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before


@pytest.mark.parametrize("target", ["9.0", "8.0", "8", "8.4.x"])
def test_a_target_other_than_84(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    root = repo_on_80(tmp_path, NON_PRODUCTION)
    code = cli.main(["--root", str(root), "db", "upgrade-engine", "--env", NON_PRODUCTION, "--to", target])
    refused(code, capsys, f"--to {target}: the upgrade goes to MySQL 8.4 or 8.4.x", 2)
    assert rds.clients == []


def test_no_instance_to_upgrade(tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]) -> None:
    root = repo_on_80(tmp_path, NON_PRODUCTION)
    refused(
        upgrade(root, NON_PRODUCTION, "--auto-approve"),
        capsys,
        f"no DB instance {identifier(NON_PRODUCTION)}",
        1,
    )


def test_placeholders_are_refused(tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    for directory in (TFVARS_DIR, "backend_configs"):
        shutil.copytree(Path(__file__).resolve().parents[2] / directory, root / directory)
    code = upgrade(root, NON_PRODUCTION, "--auto-approve")
    assert code == 2 and "documentation placeholder" in capsys.readouterr().err
    assert rds.clients == []


def test_another_account(tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    path = root / TFVARS_DIR / f"{env}.tfvars"
    path.write_text(
        re.sub(
            r"^(aws_region\s*=.*)$",
            r'\1\naws_account_id = "480923715562"',
            path.read_text(),
            count=1,
            flags=re.M,
        )
    )
    refused(upgrade(root, env, "--auto-approve"), capsys, "the credentials are of account 123456789012", 2)
    assert rds.clients == []


Setup = Callable[[Rds, str], None]


def _stopped(_rds: Rds, env: str) -> None:
    boto3.client("rds", region_name=REGION_OF[env]).stop_db_instance(DBInstanceIdentifier=identifier(env))


def _os_update(rds: Rds, _env: str) -> None:
    rds.maintenance.append("system-update")


def _no_84_target(rds: Rds, _env: str) -> None:
    rds.targets = ["8.0.41"]


def _replica(_rds: Rds, env: str) -> None:
    boto3.client("rds", region_name=REGION_OF[env]).create_db_instance_read_replica(
        DBInstanceIdentifier=f"{identifier(env)}-r", SourceDBInstanceIdentifier=identifier(env)
    )


@pytest.mark.parametrize(("setup", "says"), [
    (_stopped, "is 'stopped': wait until it is 'available'"),
    (_os_update, "pending operating system update"),
    (_no_84_target, "RDS cannot upgrade mlopspltf-"),
    (_replica, "has read replicas"),
])  # fmt: skip
def test_preflight_refuses_and_changes_nothing(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str], setup: Setup, says: str
) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    setup(rds, env)
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    err = refused(upgrade(root, env, "--auto-approve"), capsys, "preflight: nothing was done", 1)
    assert says in err
    assert snapshots(env) == []
    assert (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before


def test_preflight_names_what_is_wrong(tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    _os_update(rds, env)
    _no_84_target(rds, env)
    assert upgrade(root, env, "--auto-approve") == 1
    err = capsys.readouterr().err
    assert "pending operating system update" in err
    assert "valid targets: 8.0.41" in err


def test_a_snapshot_of_that_name_from_another_instance(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]
) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    client = boto3.client("rds", region_name=REGION_OF[env])
    client.create_db_instance(
        DBInstanceIdentifier="someone-else", Engine="mysql", EngineVersion="8.0.40", DBInstanceClass="db.t3.micro",
        AllocatedStorage=20, MasterUsername="x", ManageMasterUserPassword=True,
    )  # fmt: skip
    client.create_db_snapshot(
        DBSnapshotIdentifier=f"{identifier(env)}-pre-mysql-8-4", DBInstanceIdentifier="someone-else"
    )
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    refused(upgrade(root, env, "--auto-approve"), capsys, "exists but is of 'someone-else'", 1)
    assert (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before


# --- the file edit ---------------------------------------------------------------------------


FILE = """mlflow = {
  mlflow_version = "3.17.2"

  server = {
    ami_id = "ami-07d2f9a5c3b1e6048" # engine_version = "x" in a comment
  }

  database = {
    # kept
    engine_version = "8.0" # old
    instance_class = "db.t3.micro"
    nested = {
      engine_version = "not this one"
    }
  }
}
"""


def test_the_edit_replaces_adds_and_keeps_the_rest() -> None:
    out = db.edit_database_block(
        FILE, {"engine_version": '"8.4"', "allow_major_version_upgrade": "true"}, "f"
    )
    assert out == FILE.replace('engine_version = "8.0" # old', 'engine_version = "8.4"').replace(
        "  database = {\n", "  database = {\n    allow_major_version_upgrade = true\n"
    )


def test_the_edit_adds_a_missing_database_block() -> None:
    text = 'mlflow = {\n  server = {\n    ami_id = "ami-07d2f9a5c3b1e6048"\n  }\n}\n'
    out = db.edit_database_block(text, {"engine_version": '"8.4"'}, "f")
    assert out.endswith('  }\n\n  database = {\n    engine_version = "8.4"\n  }\n}\n')


@pytest.mark.parametrize("text", ["network = {}\n", 'mlflow = { database = { engine_version = "8.0" } }\n'])
def test_a_layout_it_cannot_edit_is_left_alone_with_the_keys_to_set(text: str) -> None:
    with pytest.raises(CommandError, match=r'set them by hand in f .*engine_version = "8.4"'):
        db.edit_database_block(text, {"engine_version": '"8.4"'}, "f")


def test_an_edit_that_does_not_load_is_put_back(tmp_path: Path) -> None:
    root = repo_copy(tmp_path / "repo")
    [env] = load(root, [NON_PRODUCTION])
    path = root / env.tfvars_file
    before = path.read_text()
    with pytest.raises(
        CommandError, match=r"does not load .*'5.7' is not a supported MySQL version.*put back"
    ):
        db.write_file_settings(root, env, {"engine_version": '"5.7"'}, Console())
    assert path.read_text() == before


# --- the instance is busy, the snapshot is not usable, the API fails -------------------------


def test_pending_modifications_are_applied_first(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]
) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    rds.instance["PendingModifiedValues"] = {"DBInstanceClass": "db.r5.large"}
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    err = refused(upgrade(root, env, "--auto-approve"), capsys, "preflight: nothing was done", 1)
    assert "has pending modifications {'DBInstanceClass': 'db.r5.large'}" in err
    assert snapshots(env) == [] and (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before


def test_an_upgrade_already_waiting_for_the_window(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deployed without apply_immediately: RDS holds the upgrade until the window; this says how to
    run it now instead of taking a second snapshot."""
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    rds.instance["PendingModifiedValues"] = {"EngineVersion": "8.4.6"}
    err = refused(
        upgrade(root, env, "--auto-approve"), capsys, "already scheduled for the maintenance window", 1
    )
    assert "apply_immediately = true" in err
    assert snapshots(env) == [] and "CreateDBSnapshot" not in rds.calls


@pytest.mark.parametrize(
    ("field_", "value", "says"),
    [
        ("Status", "failed", "is 'failed': it cannot be the way back; delete it"),
        ("EngineVersion", "8.4.6", "is of MySQL 8.4.6, not of the 8.0.40 the instance runs"),
    ],
)
def test_an_earlier_snapshot_that_cannot_be_the_way_back(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str], *, field_: str, value: str, says: str
) -> None:
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    boto3.client("rds", region_name=REGION_OF[env]).create_db_snapshot(
        DBSnapshotIdentifier=f"{identifier(env)}-pre-mysql-8-4", DBInstanceIdentifier=identifier(env)
    )
    rds.snapshot[field_] = value
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    err = refused(upgrade(root, env, "--auto-approve"), capsys, says, 1)
    assert f"aws rds delete-db-snapshot --db-snapshot-identifier {identifier(env)}-pre-mysql-8-4" in err
    assert "CreateDBSnapshot" not in rds.calls
    assert (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before


def test_a_snapshot_still_being_made_is_waited_for(
    tmp_path: Path, rds: Rds, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The re-run after an interruption during the snapshot: it waits for that snapshot, takes no
    second one, then goes on."""
    monkeypatch.setattr(db, "_POLL_SECONDS", 0.01)
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    boto3.client("rds", region_name=REGION_OF[env]).create_db_snapshot(
        DBSnapshotIdentifier=f"{identifier(env)}-pre-mysql-8-4", DBInstanceIdentifier=identifier(env)
    )
    rds.snapshot_states[:] = ["creating", "creating", "available"]
    assert upgrade(root, env, "--auto-approve") == 0
    out = capsys.readouterr().out
    assert "exists (creating): taken by an earlier run" in out and "waiting for snapshot" in out
    assert "CreateDBSnapshot" not in rds.calls and len(snapshots(env)) == 1
    assert database_block(root, env)["engine_version"] == "8.4"


@pytest.mark.parametrize(
    ("states", "says"),
    [
        (["creating"], "was not available within 1 min"),
        (["creating", "failed"], "is 'failed': it cannot be the way back"),
    ],
)
def test_a_snapshot_that_does_not_become_available(
    tmp_path: Path,
    rds: Rds,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    states: list[str],
    says: str,
) -> None:
    """Timed out: run again to keep waiting; failed while waited for: the way out. The file is left
    alone either way (no upgrade without its way back)."""
    monkeypatch.setattr(db, "_POLL_SECONDS", 1)
    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    rds.snapshot_states[:] = states
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    refused(upgrade(root, env, "--auto-approve", "--timeout", "1s"), capsys, says, 1)
    assert (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before


@pytest.mark.parametrize(
    ("operation", "failure", "says"),
    [
        ("DescribeDBInstances", "AccessDenied", "DescribeDBInstances mlopspltf-"),
        ("DescribeDBEngineVersions", "Throttling", "DescribeDBEngineVersions mysql 8.0.40"),
        ("DescribePendingMaintenanceActions", "AccessDenied", "DescribePendingMaintenanceActions arn:"),
        ("CreateDBSnapshot", "SnapshotQuotaExceeded", "CreateDBSnapshot mlopspltf-"),
        ("CreateDBSnapshot", "endpoint", "CreateDBSnapshot mlopspltf-"),
    ],
)
def test_an_api_error_is_one_line_and_changes_nothing(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str], *, operation: str, failure: str, says: str
) -> None:
    from botocore.exceptions import EndpointConnectionError

    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    rds.failing[operation] = (
        EndpointConnectionError(endpoint_url="https://rds.invalid") if failure == "endpoint" else failure
    )
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    err = refused(upgrade(root, env, "--auto-approve"), capsys, says, 1)
    assert len(err.strip().splitlines()) == 1, err
    assert ("Could not connect" if failure == "endpoint" else failure) in err
    assert "(nothing was changed by this step)" in err
    assert snapshots(env) == [] and (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before


def test_a_snapshot_older_than_the_instance_is_not_its_way_back(
    tmp_path: Path, rds: Rds, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a rollback restored the instance from <id>-pre-mysql-8-4, a second upgrade must not
    take that old snapshot for its own: it lacks everything written since the restore."""
    from datetime import UTC, datetime, timedelta

    env = NON_PRODUCTION
    root = repo_on_80(tmp_path, env)
    make_instance(env)
    boto3.client("rds", region_name=REGION_OF[env]).create_db_snapshot(
        DBSnapshotIdentifier=f"{identifier(env)}-pre-mysql-8-4", DBInstanceIdentifier=identifier(env)
    )
    rds.instance["InstanceCreateTime"] = datetime.now(UTC) + timedelta(days=1)
    before = (root / TFVARS_DIR / f"{env}.tfvars").read_text()
    err = refused(upgrade(root, env, "--auto-approve"), capsys, "restored by a rollback?", 1)
    assert "aws rds delete-db-snapshot" in err and "CreateDBSnapshot" not in rds.calls
    assert (root / TFVARS_DIR / f"{env}.tfvars").read_text() == before

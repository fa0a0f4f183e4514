"""``ops mlflow upgrade``: the order of its steps, what it refuses before anything changes, and how
a re-run after an interruption resumes. AWS, the instance's script, the deploy and the HTTP check
are fakes here; the real path (moto, the script on an instance, MariaDB, three instances) is the
upgrade rehearsal's (rehearsal/upgrade.py)."""

from __future__ import annotations

import dataclasses
import io
import json
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest

from ops.mlflow import people, rollback, upgrade, upgrade_script
from ops.runner import CommandError, Console, UsageError
from platform_config.loader import Environment, load
from platform_config.mlflow_constraints import CONSTRAINTS, MLFLOW_VERSION
from tests.conftest import ROOT

HEAD, OLD_REV = "dc11669786a5", "1b5f0d9ad7c1"
AUTH_HEAD, AUTH_OLD = "f1a2b3c4d5e6", "2ed73881770d"


def env_with(production: bool) -> Environment:
    env = load(ROOT)[0]
    settings = env.settings.model_copy(update={"is_production": production})
    return dataclasses.replace(env, settings=settings)


def report(
    *, tracking: str = OLD_REV, auth: str = AUTH_OLD, known: bool = True, released: str | None = None
) -> dict[str, Any]:
    def state(rev: str, head: str, pending: list[str]) -> dict[str, Any]:
        return {
            "empty": False, "revision": rev, "head": head, "known": known,
            "pending": pending if known and rev != head else ([] if known else None),
            "release": released, "unversioned": False, "half_created": False, "rows": {"runs": 3},
        }  # fmt: skip

    return {
        "installed": MLFLOW_VERSION,
        "tracking": state(tracking, HEAD, ["a", "b"]),
        "auth": {**state(auth, AUTH_HEAD, ["c3d4e5f6a7b8", "e5f6a7b8c9d0", AUTH_HEAD]), "rows": {"users": 4}},
        "legacy_denials": [],
        "legacy_denials_not_carried": {},
        "drops_legacy_denials": auth != AUTH_HEAD,
        "duplicate_fk_names": {},
    }


class FakeAws(upgrade.Aws):
    """Records every call; the database's schema moves only when ``upgrade`` runs."""

    def __init__(self, first: dict[str, Any], template: str | None = "3.10.1", instances: int = 1) -> None:
        super().__init__("us-east-1")
        self.state = deepcopy(first)
        self.template = template
        self.instances = [f"i-{n:017d}" for n in range(instances)]
        self.calls: list[str] = []
        self.snapshots: dict[str, dict[str, str]] = {}
        self.refresh = "Successful"

    def in_service(self, group: str) -> list[str]:
        self.calls.append("in_service")
        return self.instances

    def run_script(self, instance_id: str, script: str, comment: str) -> upgrade.ScriptResult:
        action = "upgrade" if "mlflow_upgrade upgrade" in script else "report"
        self.calls.append(f"script {action}")
        assert upgrade_script.unpack(upgrade_script.command_line(script)) == script
        if action == "upgrade":
            if not self.state["tracking"]["known"]:
                return upgrade.ScriptResult("Failed", 3, json.dumps({"error": "newer"}), "")
            moved = {k: len(self.state[k]["pending"] or []) for k in ("tracking", "auth")}
            for key in ("tracking", "auth"):
                self.state[key].update(revision=self.state[key]["head"], pending=[], release=MLFLOW_VERSION)
            self.state["drops_legacy_denials"] = False
            answer = {
                "release": MLFLOW_VERSION,
                "tracking": {"from": "x", "to": HEAD, "migrations": moved["tracking"], "seconds": 1.0},
                "auth": {"from": "y", "to": AUTH_HEAD, "migrations": moved["auth"], "seconds": 0.5,
                         "renamed_foreign_keys": [], "denied_again": []},
            }  # fmt: skip
            return upgrade.ScriptResult("Success", 0, "pip noise\n" + json.dumps(answer), "")
        return upgrade.ScriptResult("Success", 0, json.dumps(self.state), "")

    def snapshot(self, db_identifier: str, name: str, tags: dict[str, str]) -> str:
        self.calls.append("snapshot")
        self.snapshots.setdefault(name, tags)
        return f"snapshot {name}"

    def launch_template_release(self, group: str) -> str | None:
        return self.template

    def wait_refresh(self, group: str, console: Console) -> str:
        self.calls.append("wait_refresh")
        if self.refresh != "Successful":
            raise CommandError(f"instance refresh ended {self.refresh}")
        return "refreshed"

    def client(self, service: str) -> Any:
        raise AssertionError(f"no real AWS client in this test ({service})")


@dataclasses.dataclass
class FakeDeploy:
    aws: FakeAws
    plan: list[str] = dataclasses.field(
        default_factory=lambda: ["# aws_launch_template.mlflow will be updated in-place"]
    )
    fail: bool = False
    applied: int = 0

    def plan_check(self) -> list[str]:
        return self.plan

    def apply(self, console: Console) -> None:
        self.aws.calls.append("apply")
        if self.fail:
            raise CommandError("ops deploy of mlflow-x failed")
        self.applied += 1
        self.aws.template = MLFLOW_VERSION


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The check's HTTP calls and secret read, answered as the upgraded server would."""
    seen: list[str] = []
    monkeypatch.setattr(people, "current_secret", lambda sm, name: ("admin-password", "v1"))

    def get(url: str, auth: Any) -> tuple[int, str]:
        seen.append(url.rsplit("/", 1)[1])
        return (200, MLFLOW_VERSION if url.endswith("/version") else "OK")

    monkeypatch.setattr(upgrade, "_get", get)
    monkeypatch.setattr(upgrade, "_post", lambda url, auth, body: (200, "{}"))
    return seen


def command(
    aws: FakeAws, deploy: FakeDeploy, *, production: bool = False, force: bool = False, approve: bool = True
) -> tuple[upgrade.Upgrade, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    u = upgrade.Upgrade(
        env_with(production), "https://mlflow.example.invalid", aws, deploy, Console(out, err),
        auto_approve=approve, force_production=force,
    )  # fmt: skip
    aws.client = lambda service: None  # type: ignore[method-assign]  # the check's secret read is faked
    return u, out, err


def test_the_safe_order(checked: list[str]) -> None:
    aws = FakeAws(report())
    deploy = FakeDeploy(aws)
    u, out, _ = command(aws, deploy)
    assert u.run() == 0
    assert aws.calls == [
        "in_service", "script report", "snapshot", "script upgrade", "apply", "wait_refresh",
        "in_service", "script report",
    ]  # fmt: skip
    [(name, tags)] = aws.snapshots.items()
    assert name == f"{u.db_identifier}-pre-mlflow-{MLFLOW_VERSION.replace('.', '-')}"
    assert tags["MlflowReleaseAfter"] == MLFLOW_VERSION
    assert u.figures["tracking_migrations"] == 2 and u.figures["auth_migrations"] == 3
    assert checked == ["health", "version"]
    assert "rows lost: none" in out.getvalue()


def test_production_needs_the_guard_before_any_call() -> None:
    aws = FakeAws(report())
    with pytest.raises(UsageError, match="--force-production"):
        command(aws, FakeDeploy(aws), production=True)[0].run()
    assert aws.calls == []


def test_production_with_the_guard(checked: list[str]) -> None:
    aws = FakeAws(report())
    assert command(aws, FakeDeploy(aws), production=True, force=True)[0].run() == 0


def test_a_newer_schema_is_a_downgrade_refused_before_anything_changes() -> None:
    aws = FakeAws(report(tracking="ffffffffffff", known=False, released="3.99.0"))
    with pytest.raises(CommandError, match=r"newer than MLflow .*3\.99\.0|written by MLflow 3\.99\.0.*newer"):
        command(aws, FakeDeploy(aws))[0].run()
    assert aws.calls == ["in_service", "script report"]


def test_refusals_that_cannot_be_carried_over_stop_it_before_the_snapshot() -> None:
    state = report()
    state["legacy_denials_not_carried"] = {"scorer_permissions": 2}
    aws = FakeAws(state)
    with pytest.raises(CommandError, match="scorer_permissions"):
        command(aws, FakeDeploy(aws))[0].run()
    assert "snapshot" not in aws.calls


def test_no_instance_in_service() -> None:
    aws = FakeAws(report(), instances=0)
    with pytest.raises(CommandError, match="no healthy instance"):
        command(aws, FakeDeploy(aws))[0].run()


def test_a_plan_that_replaces_anything_is_refused_before_the_snapshot() -> None:
    aws = FakeAws(report())
    deploy = FakeDeploy(aws)
    text = "  # aws_launch_template.mlflow will be updated in-place\n  # aws_db_instance.mlflow must be replaced\n"
    deploy.plan_check = lambda: upgrade.plan_problems(text, "mlflow-x")  # type: ignore[method-assign]
    with pytest.raises(CommandError, match=r"aws_db_instance\.mlflow must be replaced"):
        command(aws, deploy)[0].run()
    assert "snapshot" not in aws.calls


def test_not_confirmed_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    aws = FakeAws(report())
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    u, _, err = command(aws, FakeDeploy(aws), approve=False)
    assert u.run() == 1
    assert aws.calls == ["in_service", "script report"]
    assert "nothing done" in err.getvalue()


def test_interrupted_after_the_migrations_resumes_without_migrating_twice(checked: list[str]) -> None:
    aws = FakeAws(report())
    deploy = FakeDeploy(aws, fail=True)
    with pytest.raises(CommandError, match="deploy"):
        command(aws, deploy)[0].run()
    migrated = aws.calls.count("script upgrade")
    deploy.fail = False
    aws.calls.clear()
    assert command(aws, deploy)[0].run() == 0
    # The snapshot is found again (same name), the upgrade script finds nothing pending.
    assert len(aws.snapshots) == 1 and migrated == 1
    assert aws.calls[:5] == ["in_service", "script report", "snapshot", "script upgrade", "apply"]


def test_interrupted_after_the_deploy_only_waits_and_checks(checked: list[str]) -> None:
    aws = FakeAws(report())
    deploy = FakeDeploy(aws)
    aws.refresh = "Failed"
    with pytest.raises(CommandError, match="Failed"):
        command(aws, deploy)[0].run()
    aws.refresh, aws.calls = "Successful", []
    u, out, _ = command(aws, deploy)
    assert u.run() == 0
    assert "snapshot" not in aws.calls and "script upgrade" not in aws.calls and "apply" not in aws.calls
    assert deploy.applied == 1 and "nothing to migrate or deploy" in out.getvalue()


def test_a_failed_check_keeps_the_snapshot_and_says_so(
    monkeypatch: pytest.MonkeyPatch, checked: list[str]
) -> None:
    monkeypatch.setattr(upgrade, "_get", lambda url, auth: (200, "3.10.1"))
    aws = FakeAws(report())
    with pytest.raises(CommandError, match="Rollback"):
        command(aws, FakeDeploy(aws))[0].run()


def test_a_release_the_constraints_do_not_cover(monkeypatch: pytest.MonkeyPatch) -> None:
    aws = FakeAws(report())
    u = command(aws, FakeDeploy(aws))[0]
    mlflow = u.env.settings.mlflow.model_copy(update={"mlflow_version": "9.9.9"})
    u.env = dataclasses.replace(u.env, settings=u.env.settings.model_copy(update={"mlflow": mlflow}))
    with pytest.raises(UsageError, match=r"9\.9\.9.*constraints"):
        u.run()
    assert aws.calls == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("  # aws_db_instance.mlflow must be replaced\n  # aws_launch_template.mlflow will be updated in-place\n", "replaces or destroys"),
        ("  # aws_s3_bucket.x will be destroyed\n  # aws_launch_template.mlflow will be updated in-place\n", "replaces or destroys"),
        ("  # aws_ssm_parameter.x will be updated in-place\n", "does not change the launch template"),
    ],
)  # fmt: skip
def test_plan_problems(text: str, problem: str) -> None:
    with pytest.raises(CommandError, match=problem):
        upgrade.plan_problems(text, "mlflow-x")


def test_plan_of_an_upgrade_passes() -> None:
    text = "Terraform will perform the following actions:\n\n  # aws_launch_template.mlflow will be updated in-place\n"
    assert upgrade.plan_problems(text, "mlflow-x") == [
        "# aws_launch_template.mlflow will be updated in-place"
    ]


def test_missing_saved_plan_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="make plan ENV=dev"):
        upgrade.OpsDeploy(tmp_path, "dev").plan_check()


def test_the_script_carries_the_instance_files_and_the_pins() -> None:
    script = upgrade_script.render("upgrade", MLFLOW_VERSION, CONSTRAINTS, "/p/mlflow", "eu-west-1")
    for name in upgrade_script.FILES.values():
        body = (upgrade_script.INSTANCE_DIR / name).read_text().rstrip("\n")
        assert body in script
    assert "\n".join(CONSTRAINTS) in script
    assert f'"mlflow[auth]=={MLFLOW_VERSION}"' in script
    assert script.rstrip().endswith('-m mlflow_upgrade upgrade --settings "/p/mlflow" --region "eu-west-1"')
    assert upgrade_script.MARKER.search(script) is None
    line = upgrade_script.command_line(script)
    assert line.startswith("echo ") and line.endswith(" | base64 -d | gunzip | bash")
    assert upgrade_script.unpack(line) == script
    with pytest.raises(ValueError, match="action"):
        upgrade_script.render("drop", MLFLOW_VERSION, CONSTRAINTS, "/p", "eu-west-1")


def test_the_launch_template_release_is_read_from_its_user_data(synth: Any) -> None:
    """From the synthesized launch templates (gzipped), and from plain user data."""
    import base64

    env = load(ROOT)[0].name
    data = synth.resources(f"mlflow-{env}", "aws_launch_template")["mlflow"]["user_data"]
    assert upgrade.release_in_user_data(data) == MLFLOW_VERSION
    plain = base64.b64encode(b'pip install "mlflow[auth]==3.10.1" pymysql\n').decode()
    assert upgrade.release_in_user_data(plain) == "3.10.1"
    assert upgrade.release_in_user_data("") is None


# --- ops mlflow rollback -------------------------------------------------------------------------


class FakeRds:
    """describe_db_snapshots / list_tags_for_resource of one snapshot (or none)."""

    class exceptions:  # noqa: N801 (boto3's shape)
        class DBSnapshotNotFoundFault(Exception):  # noqa: N818 (boto3's name)
            pass

    def __init__(self, snapshot: dict[str, Any] | None, tags: dict[str, str]) -> None:
        self.snapshot, self.tags = snapshot, tags

    def describe_db_snapshots(self, DBSnapshotIdentifier: str) -> dict[str, Any]:  # noqa: N803
        if self.snapshot is None:
            raise self.exceptions.DBSnapshotNotFoundFault(DBSnapshotIdentifier)
        return {"DBSnapshots": [self.snapshot]}

    def list_tags_for_resource(self, ResourceName: str) -> dict[str, Any]:  # noqa: N803
        return {"TagList": [{"Key": k, "Value": v} for k, v in self.tags.items()]}


def rollback_command(
    snapshot: dict[str, Any] | None, tags: dict[str, str], *, name: str | None = "db-pre-mlflow-3-17-2",
    production: bool = False, force: bool = False,
) -> tuple[rollback.Rollback, FakeAws, FakeDeploy]:  # fmt: skip
    env = env_with(production)
    database = env.settings.mlflow.database.model_copy(update={"restore_from_snapshot": name})
    mlflow = env.settings.mlflow.model_copy(update={"database": database, "mlflow_version": "3.10.1"})
    env = dataclasses.replace(env, settings=env.settings.model_copy(update={"mlflow": mlflow}))
    aws = FakeAws(report())
    rds = FakeRds(snapshot, tags)
    aws.client = lambda service: rds if service == "rds" else None  # type: ignore[method-assign]
    deploy = FakeDeploy(aws)
    r = rollback.Rollback(env, "https://mlflow.example.invalid", aws, deploy, Console(io.StringIO(), io.StringIO()),
                          auto_approve=True, force_production=force)  # fmt: skip
    return r, aws, deploy


def good_snapshot(env: Environment) -> dict[str, Any]:
    return {"DBInstanceIdentifier": env.names.mlflow.prefix, "Status": "available", "DBSnapshotArn": "arn:x"}


TAGS = {"MlflowReleaseBefore": "3.10.1", "MlflowReleaseAfter": MLFLOW_VERSION}


def test_rollback_deploys_and_checks_the_release_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(people, "current_secret", lambda sm, name: ("pw", "v1"))
    monkeypatch.setattr(
        rollback, "_get", lambda url, auth: (200, "3.10.1" if url.endswith("/version") else "OK")
    )
    r, aws, deploy = rollback_command(good_snapshot(env_with(False)), TAGS)
    assert r.run() == 0
    assert aws.calls == ["apply", "wait_refresh"] and deploy.applied == 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": None}, "restore_from_snapshot: not set"),
        ({"snapshot": None}, "not found"),
        ({"snapshot": {"DBInstanceIdentifier": "another-db", "Status": "available", "DBSnapshotArn": "a"}}, "is of another-db"),
        ({"snapshot": "creating"}, "creating, not available"),
        ({"tags": {"MlflowReleaseBefore": "3.5.1", "MlflowReleaseAfter": MLFLOW_VERSION}}, r"from MLflow 3\.5\.1.*3\.10\.1"),
        ({"tags": {}}, "unknown: no MlflowReleaseBefore tag"),
        ({"plan": "  # aws_launch_template.mlflow will be updated in-place\n"}, "does not replace aws_db_instance.mlflow"),
        ({"plan": "  # aws_db_instance.mlflow must be replaced\n  # aws_s3_bucket.artifacts will be destroyed\n  # aws_launch_template.mlflow will be updated in-place\n"}, "aws_s3_bucket.artifacts"),
        ({"production": True}, "--force-production"),
    ],
)  # fmt: skip
def test_rollback_refuses_before_anything_changes(change: dict[str, Any], problem: str) -> None:
    env = env_with(False)
    snapshot: Any = change.get("snapshot", good_snapshot(env))
    if snapshot == "creating":
        snapshot = {**good_snapshot(env), "Status": "creating"}
    r, aws, deploy = rollback_command(
        snapshot, change.get("tags", TAGS), name=change.get("name", "db-pre-mlflow-3-17-2"),
        production=change.get("production", False),
    )  # fmt: skip
    if "plan" in change:
        deploy.plan_check = lambda: rollback.RollbackPlan.plan_check(_plan_file(change["plan"]))  # type: ignore[method-assign]
    with pytest.raises((CommandError, UsageError), match=problem):
        r.run()
    assert "apply" not in aws.calls


def _plan_file(text: str) -> rollback.RollbackPlan:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="rollback-plan-"))
    (root / "plans").mkdir()
    (root / "plans" / "mlflow-x.txt").write_text(text)
    return rollback.RollbackPlan(root, "x")


def test_rollback_plan_allows_what_the_restore_replaces() -> None:
    text = (
        "  # aws_db_instance.mlflow must be replaced\n"
        "  # aws_lambda_invocation.db_users must be replaced\n"
        "  # random_id.final_snapshot_suffix must be replaced\n"
        "  # aws_launch_template.mlflow will be updated in-place\n"
    )
    assert len(rollback.RollbackPlan.plan_check(_plan_file(text))) == 4


def test_rollback_plan_of_an_engine_upgrade_replaces_the_parameter_group() -> None:
    """Back to the snapshot ops db upgrade-engine took (MySQL 8.0): the file says 8.0 again, so the
    group of that family replaces the 8.4 one; anything else of the database is still refused."""
    text = (
        "  # aws_db_instance.mlflow must be replaced\n"
        "  # aws_db_parameter_group.mlflow must be replaced\n"
        "  # aws_launch_template.mlflow will be updated in-place\n"
    )
    assert len(rollback.RollbackPlan.plan_check(_plan_file(text))) == 3
    with pytest.raises(CommandError, match=r"aws_db_subnet_group\.database"):
        rollback.RollbackPlan.plan_check(
            _plan_file(text + "  # aws_db_subnet_group.database must be replaced\n")
        )

"""The deliberate migration of MLflow's two schemas to the installed release, and the read-only
report: what ``python -m ops mlflow upgrade`` runs, with SSM Run Command, on one instance, in a venv
of the target release (docs/decisions/mlflow-upgrades.md). Uses mlflow_schemas' one-connection
paths and its lock, so it runs once however often it is started: a second run finds the schemas at
the release's head and changes nothing.

``python -m mlflow_upgrade {report,upgrade} --settings PARAMETER_PATH --region REGION`` (the
database URIs built from the stack's SSM settings as launch.py builds them: IAM tokens, TLS), or
``... {report,upgrade} TRACKING_URI AUTH_URI``. Prints one JSON line; exit 3 when a database holds
a newer schema than the installed release (a downgrade is a snapshot restore) or the upgrade would
lose a setting it cannot carry over.

Sign-in migration ``e5f6a7b8c9d0`` (MLflow 3.13.0) turns the per-resource grants into role
permissions and drops the ``NO_PERMISSIONS`` ones: a user who was explicitly refused an experiment
would get ``default_permission`` instead. The upgrade grants ``DENY`` for each such row (MLflow's
own store, after the migration, before the release is recorded: a re-run after an interruption
does it again where it is missing).
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from mlflow_schemas import (
    MISMATCH_EXIT,
    SchemaMismatchError,
    _auth_script,
    auth_state,
    auth_upgrade,
    installed_release,
    record_release,
    recorded_release,
    schema_lock,
    tracking_create,
    tracking_state,
    tracking_upgrade,
)

# The migration that drops per-resource NO_PERMISSIONS grants (mlflow/server/auth/db/migrations/
# versions/e5f6a7b8c9d0_*.py, _DROPPED_PERMISSION).
DROPS_NO_PERMISSIONS = "e5f6a7b8c9d0"
# Legacy per-resource grant tables: (table, resource type, the column naming the resource). The
# ones the upgrade carries over as DENY; any other table's NO_PERMISSIONS rows stop it.
CARRIED = (
    ("experiment_permissions", "experiment", "experiment_id"),
    ("registered_model_permissions", "registered_model", "name"),
)
NOT_CARRIED = (
    "scorer_permissions",
    "gateway_secret_permissions",
    "gateway_endpoint_permissions",
    "gateway_model_definition_permissions",
)
# What the check after the upgrade compares (rows that users made).
TRACKING_TABLES = (
    "experiments",
    "runs",
    "params",
    "metrics",
    "tags",
    "registered_models",
    "model_versions",
    "registered_model_aliases",
)
AUTH_TABLES = ("users",)
RDS_CA = "/opt/mlflow/rds-ca.pem"


def _fk_names_in(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if called in {"ForeignKeyConstraint", "ForeignKey"}:
            names += [
                kw.value.value
                for kw in node.keywords
                if kw.arg == "name" and isinstance(kw.value, ast.Constant)
            ]
        elif called == "create_foreign_key" and node.args and isinstance(node.args[0], ast.Constant):
            names.append(node.args[0].value)
    return [str(n) for n in names]


def duplicate_fk_names() -> dict[str, list[str]]:
    """Foreign-key names the installed release's sign-in migrations give more than once, with the
    revisions that do: MySQL refuses the second (names are per schema)."""
    _, script = _auth_script()
    seen: dict[str, list[str]] = {}
    for revision in script.walk_revisions():
        for name in _fk_names_in(Path(revision.path)):
            seen.setdefault(name, []).append(revision.revision)
    return {name: revisions for name, revisions in seen.items() if len(revisions) > 1}


def counts(conn: sa.Connection, tables: tuple[str, ...]) -> dict[str, int]:
    present = set(sa.inspect(conn).get_table_names())
    return {
        t: int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{t}`").scalar() or 0)
        for t in tables
        if t in present
    }


def legacy_denials(conn: sa.Connection) -> tuple[list[dict[str, str]], dict[str, int]]:
    """The per-resource NO_PERMISSIONS grants of the legacy tables: the ones carried over as DENY
    (user, resource type, resource), and the count of those in tables that are not."""
    present = set(sa.inspect(conn).get_table_names())
    carried: list[dict[str, str]] = []
    for table, kind, column in CARRIED:
        if table in present:
            rows = conn.exec_driver_sql(
                f"SELECT u.username, p.`{column}` FROM `{table}` p JOIN users u ON u.id = p.user_id "
                f"WHERE p.permission = 'NO_PERMISSIONS' ORDER BY u.username, p.`{column}`"
            ).all()
            carried += [{"user": str(r[0]), "resource_type": kind, "resource": str(r[1])} for r in rows]
    others = {
        t: int(
            conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{t}` WHERE permission = 'NO_PERMISSIONS'").scalar()
            or 0
        )
        for t in NOT_CARRIED
        if t in present
    }
    return carried, {t: n for t, n in others.items() if n}


def _passes_drop(state: dict[str, Any]) -> bool:
    return DROPS_NO_PERMISSIONS in (state["pending"] or [])


def upgrade(
    tracking: sa.Engine, auth: sa.Engine, deny: Callable[[list[dict[str, str]]], list[dict[str, str]]]
) -> dict[str, Any]:
    """Both schemas to the installed release, under the lock; what was found and done. ``deny``
    grants DENY for each carried-over NO_PERMISSIONS row that has no grant yet (returns those)."""
    release = installed_release()
    out: dict[str, Any] = {"release": release}
    with tracking.connect() as tc, schema_lock(tc):
        before = tracking_state(tc)
        tc.commit()
        if not before["known"]:
            raise SchemaMismatchError(
                f"the tracking schema is newer (revision {before['revision']}, MLflow {before['release']}) than "
                f"MLflow {release}: a downgrade is a snapshot restore, not a migration"
            )
        with auth.connect() as ac:
            state = auth_state(ac)
            ac.commit()
            if not state["known"]:
                raise SchemaMismatchError(
                    f"the sign-in schema is newer (revision {state['revision']}) than MLflow {release}: a "
                    "downgrade is a snapshot restore, not a migration"
                )
            carried, others = legacy_denials(ac) if not state["empty"] else ([], {})
            ac.commit()
            if others and _passes_drop(state):
                raise SchemaMismatchError(
                    f"the sign-in database refuses users per resource in {sorted(others)} ({others}): migration "
                    f"{DROPS_NO_PERMISSIONS} of MLflow {release} would drop those refusals and this upgrade cannot "
                    "carry them over; grant DENY for them by hand after upgrading, or remove them first"
                )
            out["tracking"] = {
                "from": before["revision"],
                "to": before["head"],
                "migrations": 0,
                "seconds": 0.0,
            }
            start = _now()
            if before["empty"]:
                tracking_create(tc)
            elif before["revision"] != before["head"]:
                tracking_upgrade(tc)
            if before["revision"] != before["head"] or before["release"] != release:
                record_release(tc, release)
            out["tracking"].update(migrations=len(before["pending"] or []), seconds=round(_now() - start, 1))
            start = _now()
            renamed: list[tuple[str, str, str]] = []
            if state["revision"] != state["head"]:
                renamed = auth_upgrade(ac)
            # The DENY grants: when this upgrade passes the migration that drops the refusals, or
            # resumes one that did (its release not recorded yet).
            unfinished = recorded_release(ac) != release
            denied = deny(carried) if carried and (_passes_drop(state) or unfinished) else []
            if state["revision"] != state["head"] or unfinished:
                record_release(ac, release)
            # An unversioned schema is stamped at the first revision, which then does not run.
            migrations = len(state["pending"] or []) - (1 if state["unversioned"] else 0)
            out["auth"] = {
                "from": state["revision"],
                "to": state["head"],
                "migrations": migrations,
                "seconds": round(_now() - start, 1),
                "renamed_foreign_keys": renamed,
                "denied_again": denied,
            }
    return out


def _now() -> float:
    return time.monotonic()


def report(tracking: sa.Engine, auth: sa.Engine) -> dict[str, Any]:
    """What the databases hold and what an upgrade to the installed release would do."""
    with tracking.connect() as tc:
        t = tracking_state(tc)
        t["rows"] = counts(tc, TRACKING_TABLES)
    with auth.connect() as ac:
        a = auth_state(ac)
        a["rows"] = counts(ac, AUTH_TABLES)
        carried, others = legacy_denials(ac) if not a["empty"] else ([], {})
    return {
        "installed": installed_release(),
        "tracking": t,
        "auth": a,
        "legacy_denials": carried,
        "legacy_denials_not_carried": others,
        "drops_legacy_denials": _passes_drop(a),
        "duplicate_fk_names": duplicate_fk_names(),
    }


def store_deny(auth_uri: str) -> Callable[[list[dict[str, str]]], list[dict[str, str]]]:
    """DENY through the installed release's own sign-in store (at head now: its init_db migrates
    nothing), skipping a resource the user has a grant on already."""

    def deny(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        from mlflow.exceptions import MlflowException
        from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore()
        store.init_db(auth_uri)
        done = []
        for row in rows:
            try:
                store.grant_user_resource_permission(
                    row["user"], row["resource_type"], row["resource"], "DENY"
                )
            except MlflowException as exc:
                if "already exists" in str(exc):
                    continue
                raise
            done.append(row)
        return done

    return deny


def uris_from_settings(parameter_path: str, region: str) -> tuple[str, str]:
    """The tracking and sign-in URIs as launch.py builds them: the db_user setting with an IAM
    token per connection (the rds_iam plugin), TLS verified with the RDS bundle."""
    import boto3

    ssm = boto3.client("ssm", region_name=region)

    def param(name: str) -> str:
        value: str = ssm.get_parameter(Name=f"{parameter_path}/{name}")["Parameter"]["Value"]
        return value

    host, port, user = param("db_host"), int(param("db_port")), param("db_user")

    def uri(name: str) -> str:
        return (
            f"mysql+pymysql://{urllib.parse.quote(user, safe='')}@{host}:{port}/{name}"
            f"?ssl_ca={RDS_CA}&plugin=rds_iam&rds_iam_region={region}"
        )

    return uri(param("db_name")), uri(param("db_auth_name"))


def main(argv: list[str], engine: Callable[[str], sa.Engine] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m mlflow_upgrade")
    parser.add_argument("action", choices=("report", "upgrade"))
    parser.add_argument("uris", nargs="*", metavar="URI", help="TRACKING_URI AUTH_URI (or --settings)")
    parser.add_argument("--settings", help="the stack's SSM parameter path")
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    if args.settings:
        tracking_uri, auth_uri = uris_from_settings(args.settings, args.region)
    elif len(args.uris) == 2:
        tracking_uri, auth_uri = args.uris
    else:
        parser.error("give TRACKING_URI AUTH_URI, or --settings PATH --region REGION")
    make = engine or (lambda uri: sa.create_engine(uri, poolclass=sa.pool.NullPool))
    tracking, auth = make(tracking_uri), make(auth_uri)
    try:
        if args.action == "report":
            result = report(tracking, auth)
        else:
            result = upgrade(tracking, auth, store_deny(auth_uri))
    except SchemaMismatchError as exc:
        print(json.dumps({"error": str(exc)}))
        return int(MISMATCH_EXIT)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    sys.exit(main(sys.argv[1:]))

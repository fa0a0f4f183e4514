"""The deliberate migration of MLflow's two schemas to the installed release, and the read-only
report: what ``python -m ops mlflow upgrade`` runs once, on one instance, with the target release
installed (docs/decisions/mlflow-schemas.md). Uses mlflow_schemas' one-connection paths and lock.

``python -m mlflow_upgrade {report,upgrade} TRACKING_URI AUTH_URI``: one JSON line; exit 3 when
the databases hold a newer schema than the installed release (a downgrade is a snapshot restore).
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import sys
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
    schema_lock,
    tracking_create,
    tracking_state,
    tracking_upgrade,
)


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


def upgrade(tracking: sa.Engine, auth: sa.Engine) -> dict[str, Any]:
    """Both schemas to the installed release, under the lock; what was found and done."""
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
        if before["empty"]:
            tracking_create(tc)
        elif before["revision"] != before["head"]:
            tracking_upgrade(tc)
        if before["revision"] != before["head"]:
            record_release(tc, release)
        out["tracking"] = {
            "from": before["revision"],
            "to": before["head"],
            "migrations": len(before["pending"] or []),
        }
        with auth.connect() as ac:
            state = auth_state(ac)
            ac.commit()
            if not state["known"]:
                raise SchemaMismatchError(
                    f"the sign-in schema is newer (revision {state['revision']}) than MLflow {release}"
                )
            renamed: list[tuple[str, str, str]] = []
            if state["revision"] != state["head"]:
                renamed = auth_upgrade(ac)
                record_release(ac, release)
            # An unversioned schema is stamped at the first revision, which then does not run.
            migrations = len(state["pending"] or []) - (1 if state["unversioned"] else 0)
            out["auth"] = {
                "from": state["revision"],
                "to": state["head"],
                "migrations": migrations,
                "renamed_foreign_keys": renamed,
            }
    return out


def report(tracking: sa.Engine, auth: sa.Engine) -> dict[str, Any]:
    with tracking.connect() as tc:
        t = tracking_state(tc)
    with auth.connect() as ac:
        a = auth_state(ac)
    return {
        "installed": installed_release(),
        "tracking": t,
        "auth": a,
        "duplicate_fk_names": duplicate_fk_names(),
    }


def main(argv: list[str], engine: Callable[[str], sa.Engine] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m mlflow_upgrade")
    parser.add_argument("action", choices=("report", "upgrade"))
    parser.add_argument("tracking_uri")
    parser.add_argument("auth_uri")
    args = parser.parse_args(argv)
    make = engine or (lambda uri: sa.create_engine(uri, poolclass=sa.pool.NullPool))
    tracking, auth = make(args.tracking_uri), make(args.auth_uri)
    try:
        result = (report if args.action == "report" else upgrade)(tracking, auth)
    except SchemaMismatchError as exc:
        print(json.dumps({"error": str(exc)}))
        return int(MISMATCH_EXIT)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    sys.exit(main(sys.argv[1:]))

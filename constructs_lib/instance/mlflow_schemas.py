"""The schemas of MLflow's two databases, tracking and sign-in, handled deliberately (on the
instances, in MLflow's venv; why: docs/decisions/mlflow-schemas.md).

MLflow's own start migrates a filled database silently or refuses it with a misleading message,
and its sign-in migrations lose the ``?plugin=rds_iam`` of the URI, work on a second connection and
trip over two foreign keys named ``fk_user_id`` on MySQL. Here, on one connection per database,
under one ``GET_LOCK`` every instance shares: an empty database gets its schema (once); a filled
one is only verified, and another release's schema raises ``SchemaMismatchError`` (nothing changed).
alembic's ``EnvironmentContext`` is driven directly (``alembic.command.upgrade`` minus MLflow's
``env.py``). ``mlflow_upgrade`` (the upgrade command's) migrates on purpose.
"""

from __future__ import annotations

import ast
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

LOCK = "mlflow-schema-init"
LOCK_SECONDS = 600
RELEASE_TABLE = "mlops_schema_release"
AUTH_VERSION_TABLE = "alembic_version_auth"  # since 3.6.0 (server/auth/db/migrations/env.py)
AUTH_INITIAL_REVISION = "8606fa83a998"
# Exit status of a start refused for its schema: systemd does not restart it (RestartPreventExitStatus).
MISMATCH_EXIT = 3

log = logging.getLogger("mlflow_schemas")


class SchemaMismatchError(Exception):
    """The database's schema is not the installed release's: the line to print."""


def installed_release() -> str:
    import mlflow

    return str(mlflow.__version__)


# --- what each database records ---------------------------------------------------------------


def recorded_release(conn: sa.Connection) -> str | None:
    if RELEASE_TABLE not in sa.inspect(conn).get_table_names():
        return None
    row = conn.exec_driver_sql(f"SELECT release_name FROM {RELEASE_TABLE} ORDER BY id DESC LIMIT 1").first()
    return str(row[0]) if row else None


def record_release(conn: sa.Connection, release: str) -> None:
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {RELEASE_TABLE} (id INTEGER PRIMARY KEY AUTO_INCREMENT, "
        "release_name VARCHAR(32) NOT NULL, written_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
    )
    conn.execute(sa.text(f"INSERT INTO {RELEASE_TABLE} (release_name) VALUES (:r)"), {"r": release})
    conn.commit()


def _own(table: str) -> bool:
    return table.startswith("alembic_") or table == RELEASE_TABLE


def _run(
    conn: sa.Connection, script: ScriptDirectory, cfg: Config, fn: Any, destination: str, **opts: Any
) -> None:
    with EnvironmentContext(cfg, script, fn=fn, destination_rev=destination) as env:
        env.configure(connection=conn, **opts)
        with env.begin_transaction():
            env.run_migrations()
    if conn.in_transaction():
        conn.commit()


# --- tracking ----------------------------------------------------------------------------------


def _tracking_script() -> tuple[Config, ScriptDirectory]:
    import mlflow.store.db.utils as db_utils  # also puts every ORM table on Base.metadata

    cfg = db_utils._get_alembic_config(db_url="")  # store/db_migrations; no URL is used
    return cfg, ScriptDirectory.from_config(cfg)


def tracking_state(conn: sa.Connection) -> dict[str, Any]:
    _, script = _tracking_script()
    current = MigrationContext.configure(conn).get_current_revision()
    return _state(conn, script, current, script.get_current_head())


def tracking_upgrade(conn: sa.Connection, target: str = "heads") -> None:
    """What ``mlflow db upgrade`` does, on ``conn`` (MLflow's tracking env.py is not run)."""
    from mlflow.store.db.base_sql_model import Base

    cfg, script = _tracking_script()
    _run(
        conn,
        script,
        cfg,
        lambda rev, ctx: script._upgrade_revs(target, rev),
        target,
        target_metadata=Base.metadata,
        render_as_batch=True,  # as store/db_migrations/env.py
    )


def tracking_create(conn: sa.Connection) -> None:
    """An empty database only: the initial tables, then every migration (MLflow's own
    ``_initialize_tables``, on ``conn``)."""
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    if not _state(conn, None, None, "")["empty"]:
        raise RuntimeError("tracking schema: refusing to create tables in a database that has some")
    InitialBase.metadata.create_all(conn)
    tracking_upgrade(conn)


# --- sign-in -------------------------------------------------------------------------------------


def _auth_script() -> tuple[Config, ScriptDirectory]:
    from mlflow.server.auth.db import utils as auth_db_utils

    cfg = Config()  # no ini file and no URL: nothing here can build a second engine
    cfg.set_main_option("script_location", str(auth_db_utils._get_alembic_dir()))
    return cfg, ScriptDirectory.from_config(cfg)


def _initial_tables(script: ScriptDirectory) -> set[str]:
    """The tables the first sign-in revision creates, read from its source."""
    tree = ast.parse(Path(script.get_revision(AUTH_INITIAL_REVISION).path).read_text())
    return {
        str(node.args[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "create_table"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def auth_state(conn: sa.Connection) -> dict[str, Any]:
    _, script = _auth_script()
    current = MigrationContext.configure(
        conn, opts={"version_table": AUTH_VERSION_TABLE}
    ).get_current_revision()
    state = _state(conn, script, current, script.get_current_head())
    tables = set(sa.inspect(conn).get_table_names())
    initial = _initial_tables(script)
    # No revision recorded but the first revision's tables there: a pre-3.6 database, or one that
    # 3.6.0 left with an empty version table (upstream #18760). Upgrading stamps it first.
    state["unversioned"] = current is None and initial <= tables
    state["half_created"] = current is None and bool(tables & initial) and not initial <= tables
    return state


@contextlib.contextmanager
def unique_fk_names(conn: sa.Connection, renamed: list[tuple[str, str, str]]) -> Iterator[None]:
    """While active, ``op.create_table`` gives a foreign key whose name is already taken in the
    schema a table-specific one, recorded in ``renamed``. MySQL and MariaDB only; one process at a
    time (it patches alembic's class)."""
    if conn.dialect.name not in {"mysql", "mariadb"}:
        yield
        return
    taken = set(
        conn.exec_driver_sql(
            "SELECT CONSTRAINT_NAME FROM information_schema.TABLE_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_TYPE = 'FOREIGN KEY'"
        ).scalars()
    )
    original = Operations.create_table

    def create_table(self: Operations, table_name: str, *columns: Any, **kw: Any) -> Any:
        for item in columns:
            if isinstance(item, sa.ForeignKeyConstraint) and item.name:
                if item.name in taken:
                    new = f"fk_{table_name}_{'_'.join(item.column_keys)}"[:64]
                    if new in taken:
                        raise RuntimeError(
                            f"sign-in schema: cannot rename foreign key {item.name}: {new} is taken"
                        )
                    log.warning("sign-in schema: foreign key %s of %s named %s", item.name, table_name, new)
                    renamed.append((table_name, str(item.name), new))
                    item.name = new
                taken.add(str(item.name))
        return original(self, table_name, *columns, **kw)

    Operations.create_table = create_table
    try:
        yield
    finally:
        Operations.create_table = original


def auth_upgrade(conn: sa.Connection, target: str = "head") -> list[tuple[str, str, str]]:
    """Bring the sign-in schema to ``target`` on ``conn``; the foreign keys renamed on the way."""
    from mlflow.server.auth.db.models import Base

    cfg, script = _auth_script()
    state = auth_state(conn)
    if state["half_created"]:
        present = sorted(set(sa.inspect(conn).get_table_names()) & _initial_tables(script))
        rows = sum(int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{t}`").scalar() or 0) for t in present)
        if rows:
            raise RuntimeError(f"sign-in schema half-created ({', '.join(present)}) and holding {rows} rows")
        inspector = sa.inspect(conn)
        for table in sorted(present, key=lambda t: -len(inspector.get_foreign_keys(t))):  # referrers first
            conn.exec_driver_sql(f"DROP TABLE `{table}`")
        log.warning("sign-in schema: dropped the empty tables a failed first run left: %s", present)
    elif state["unversioned"]:
        _run(
            conn,
            script,
            cfg,
            lambda rev, ctx: script._stamp_revs(AUTH_INITIAL_REVISION, rev),
            AUTH_INITIAL_REVISION,
            version_table=AUTH_VERSION_TABLE,
        )
    renamed: list[tuple[str, str, str]] = []
    with unique_fk_names(conn, renamed):
        _run(
            conn,
            script,
            cfg,
            lambda rev, ctx: script._upgrade_revs(target, rev),
            target,
            target_metadata=Base.metadata,
            version_table=AUTH_VERSION_TABLE,
        )
    return renamed


# --- both ---------------------------------------------------------------------------------------


def _state(
    conn: sa.Connection, script: ScriptDirectory | None, current: str | None, head: str
) -> dict[str, Any]:
    tables = sa.inspect(conn).get_table_names()
    known = current is None
    if script is not None and current is not None:
        try:
            known = script.get_revision(current) is not None
        except Exception:  # alembic's ResolutionError: a revision of a newer release
            known = False
    pending = None
    if script is not None and known:
        pending = [r.revision for r in reversed(list(script.iterate_revisions(head, current or "base")))]
    return {
        "empty": all(_own(t) for t in tables),
        "revision": current,
        "head": head,
        "known": known,
        "pending": pending,
        "release": recorded_release(conn),
    }


def _mismatch(what: str, state: dict[str, Any], release: str, command: str) -> str:
    written = f"MLflow {state['release']}'s" if state["release"] else "of an unknown MLflow release"
    if state["known"]:
        direction = f"older: {len(state['pending'] or [])} migrations pending"
    else:
        direction = "newer than this release knows"
    return (
        f"{what} schema is {written} (revision {state['revision']}, {direction}); this instance runs MLflow "
        f"{release} (revision {state['head']}): nothing was changed; run `{command}`"
    )


@contextlib.contextmanager
def schema_lock(conn: sa.Connection, seconds: int = LOCK_SECONDS) -> Iterator[None]:
    """The database-wide lock every instance and the upgrade take (a session lock: it survives
    MySQL's implicit commits around DDL)."""
    if conn.dialect.name not in {"mysql", "mariadb"}:
        yield
        return
    got = conn.exec_driver_sql(f"SELECT GET_LOCK('{LOCK}', {int(seconds)})").scalar()
    conn.commit()
    if got != 1:
        raise RuntimeError(f"could not take the schema lock {LOCK!r} within {seconds} s")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{LOCK}')")
        conn.commit()


def has_user(conn: sa.Connection, username: str) -> bool:
    """Whether the sign-in database knows ``username`` (the table of every release's first revision)."""
    found = conn.execute(sa.text("SELECT COUNT(*) FROM users WHERE username = :u"), {"u": username}).scalar()
    return bool(found)


def boot(tracking: sa.Engine, auth: sa.Engine, command: str, admin: str) -> tuple[str, bool]:
    """An empty database gets the installed release's schema; a schema is only verified. Returns
    what was done and whether the sign-in database has the ``admin`` user yet. Raises
    SchemaMismatchError (nothing changed) when a schema is another release's."""
    release = installed_release()
    done = []
    admin_exists = False
    with tracking.connect() as tc, schema_lock(tc):
        state = tracking_state(tc)
        tc.commit()
        if state["empty"]:
            tracking_create(tc)
            record_release(tc, release)
            done.append(f"tracking schema created ({state['head']})")
        elif state["revision"] != state["head"]:
            raise SchemaMismatchError(_mismatch("the tracking", state, release, command))
        else:
            done.append(f"tracking schema verified ({state['head']})")
        with auth.connect() as ac:  # another database: its own connection, inside the lock
            state = auth_state(ac)
            ac.commit()
            if state["empty"] or state["half_created"]:
                renamed = auth_upgrade(ac)
                record_release(ac, release)
                done.append(f"sign-in schema created ({state['head']}; foreign keys renamed: {len(renamed)})")
            elif state["revision"] != state["head"]:
                raise SchemaMismatchError(_mismatch("the sign-in", state, release, command))
            else:
                done.append(f"sign-in schema verified ({state['head']})")
            admin_exists = has_user(ac, admin)
            ac.commit()
    return "; ".join(done), admin_exists

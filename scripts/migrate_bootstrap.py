"""Phase 2 of an environment's bootstrap: move ``bootstrap-<env>``'s local state into its own bucket.

Usage: ``make migrate-bootstrap ENV=<env>`` (or ``python scripts/migrate_bootstrap.py <env>``),
after phase 1 was applied on local state and ``bootstrap_state = "s3"`` was set in
``env_specific_vars/<env>.tfvars``.

Steps: re-synthesize the stack (now with the S3 backend), back up the local state file with a
timestamp, ``terraform init -migrate-state -force-copy`` in the stack's directory, then prove that
the state in the bucket has the same lineage and no lower serial, and that a plan shows no changes.
Terraform gives the first snapshot written at an empty key a new lineage (its remote-state code,
every version since 0.12); when that happens
and the bucket holds exactly the local state's contents, the original is pushed once more with
``state push -force`` (the object now exists, so its lineage is kept).
It refuses to overwrite a different state already at the key, and a re-run after a successful
migration changes nothing. Exit 0 on success, 1 when a step fails, 2 on a usage or config problem.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a file (the Makefile does): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from platform_config import naming
from platform_config.errors import ConfigError
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load_environments, read_config_dir
from scripts.terraform_cli import (
    StateError,
    StateInfo,
    Terraform,
    copy_exact,
    remote_state,
    state_info,
    synthesized_backend,
)

ROOT = Path(__file__).resolve().parent.parent
KIND = "bootstrap"
BACKUP_DIR = "local_state/backups"


@dataclass(frozen=True)
class Migration:
    before: StateInfo
    after: StateInfo
    backup: Path
    already_done: bool
    plan_clean: bool | None
    lineage_restored: bool = False


def migrate(
    stack_dir: Path,
    local_state: Path,
    backup_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    binary: str | None = None,
    plan: bool = True,
    now: datetime | None = None,
) -> Migration:
    """Move the state of the stack synthesized in ``stack_dir`` from ``local_state`` to its S3 backend.

    Raises StateError, with what to do, whenever the result could not be proven correct.
    """
    backend = synthesized_backend(stack_dir)
    if list(backend) != ["s3"]:
        raise StateError(
            f"{stack_dir.name} is synthesized with the {'/'.join(backend)} backend: set "
            'bootstrap_state = "s3" in its tfvars file and synthesize again'
        )
    if not local_state.is_file():
        raise StateError(f"no local state at {local_state}: nothing to migrate (was phase 1 applied here?)")
    before = _read_state(local_state)
    backup = _backup(local_state, backup_dir, now or datetime.now(UTC))
    tf = Terraform(stack_dir, env, binary)

    existing = remote_state(stack_dir, env, binary)
    if existing is not None:
        if existing.lineage != before.lineage:
            raise StateError(
                f"the bucket already holds a different state at {backend['s3'].get('key')} "
                f"({existing}); the local state has {before}. Refusing to overwrite it: find out "
                "which one is real before going on"
            )
        if existing.serial < before.serial:
            raise StateError(
                f"the bucket holds an older version of this state ({existing}) than the local file "
                f"({before}); resolve by hand (`terraform state push` of the newer one)"
            )
        # Already migrated, maybe applied since: never copy the old local file over it.
        tf.init("-reconfigure")
        after, already = tf.pull(), True
        repaired = False
    else:
        repaired = False
        implicit = _prepare_previous_backend(stack_dir, local_state)
        try:
            tf.init("-migrate-state", "-force-copy")
        finally:
            if implicit is not None:
                implicit.unlink(missing_ok=True)
        after, already = tf.pull(), False
        if after is not None and after.lineage != before.lineage:
            after, repaired = _restore_lineage(tf, backup), True

    if after is None:
        raise StateError(
            f"after `terraform init -migrate-state` the bucket holds no state for {stack_dir.name}; "
            f"the local state and its backup {backup} are untouched"
        )
    if after.lineage != before.lineage:
        raise StateError(f"lineage changed: local {before}, bucket {after}; restore from {backup}")
    if after.serial < before.serial:
        raise StateError(f"serial went back: local {before}, bucket {after}; restore from {backup}")
    plan_clean = _plan_is_clean(tf) if plan else None
    return Migration(before, after, backup, already, plan_clean, repaired)


def _restore_lineage(tf: Terraform, backup: Path) -> StateInfo | None:
    """Give the migrated state back its lineage, if the copy is otherwise exactly the local state.

    Terraform writes the first state snapshot at a key with no object under a *new* lineage with
    serial 1 (internal/states/remote/state.go: PersistState re-reads the missing object, which
    clears the lineage it was given, then generates a new one; unchanged since 0.12, same in
    OpenTofu), both in ``init -migrate-state`` and in ``state push``. Once the object exists,
    ``state push -force`` of the original keeps its lineage and bumps its serial. Forcing is
    safe only because we first prove the bucket holds nothing but our own copy.
    """
    remote = json.loads(tf.run("state", "pull").stdout)
    local = json.loads(backup.read_text(encoding="utf-8"))
    if _content(remote) != _content(local):
        raise StateError(
            "the migrated state has a new lineage and differs from the local state; not touching it. "
            f"Compare `terraform state pull` in {tf.workdir} with {backup}"
        )
    tf.run("state", "push", "-force", "-lock-timeout=60s", str(backup.resolve()))
    return tf.pull()


def _content(doc: dict[str, Any]) -> tuple[Any, ...]:
    return (doc.get("resources", []), doc.get("outputs", {}), doc.get("check_results"))


def _read_state(path: Path) -> StateInfo:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    return state_info(text, str(path))


def _backup(local_state: Path, backup_dir: Path, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = backup_dir / f"{local_state.stem}.{stamp}.tfstate"
    n = 1
    while target.exists():
        n += 1
        target = backup_dir / f"{local_state.stem}.{stamp}-{n}.tfstate"
    copy_exact(local_state, target)
    return target


def _prepare_previous_backend(stack_dir: Path, local_state: Path) -> Path | None:
    """Make sure Terraform's idea of the previous backend is our local state file.

    Normally ``.terraform/terraform.tfstate`` still records phase 1's local backend (re-synthesis
    keeps ``.terraform``). In a fresh checkout it is missing: then Terraform treats a
    ``terraform.tfstate`` in the working directory as the previous state, so a copy goes there.
    Returns that copy, for removal after the migration.
    """
    record_file = stack_dir / ".terraform" / "terraform.tfstate"
    if record_file.is_file():
        try:
            record = json.loads(record_file.read_text(encoding="utf-8")).get("backend") or {}
        except ValueError:
            record = {}
        path = (record.get("config") or {}).get("path")
        if record.get("type") == "local" and path and (stack_dir / path).resolve() == local_state.resolve():
            return None
        raise StateError(
            f"{record_file} records a different previous backend ({record.get('type')}, "
            f"{path or record.get('config', {}).get('key')}), so Terraform would not migrate "
            f"{local_state}. Remove that file and run again"
        )
    implicit = stack_dir / "terraform.tfstate"
    if implicit.exists():
        raise StateError(f"{implicit} exists already; move it away and run again")
    copy_exact(local_state, implicit)
    return implicit


def _plan_is_clean(tf: Terraform) -> bool:
    proc = tf.run("plan", "-input=false", "-no-color", "-detailed-exitcode", "-lock-timeout=60s", check=False)
    if proc.returncode == 1:
        raise StateError(f"`terraform plan` after the migration failed:\n{proc.stderr.strip()}")
    return proc.returncode == 0


def _synthesize(env_name: str, root: Path) -> None:
    cmd = [sys.executable, str(root / "main.py")]
    run_env = {**os.environ, "MLOPS_ENVS": env_name, "MLOPS_STACKS": KIND, "MLOPS_QUIET": "1"}
    proc = subprocess.run(cmd, cwd=root, env=run_env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StateError(f"synthesizing {naming.stack_id(KIND, env_name)} failed:\n{proc.stderr.strip()}")


class _RefusedError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _environment(env_name: str, root: Path) -> Environment:
    """The environment, checked to be in phase 2 and to have a phase-1 state on this machine."""
    try:
        envs = load_environments(read_config_dir(root, TFVARS_DIR), read_config_dir(root, BACKEND_DIR))
    except ConfigError as exc:
        raise _RefusedError("\n".join(f"error: {p}" for p in exc.problems), 2) from None
    env = next((e for e in envs if e.name == env_name), None)
    if env is None:
        known = ", ".join(e.name for e in envs)
        raise _RefusedError(f"error: unknown environment {env_name!r} (known: {known})", 2)
    if env.settings.bootstrap_state != "s3":
        raise _RefusedError(
            f'error: {env.tfvars_file}: bootstrap_state: is "{env.settings.bootstrap_state}"; set it to '
            '"s3" once phase 1 is applied, then run this again',
            2,
        )
    if not (root / naming.local_state_path(KIND, env_name)).is_file():
        raise _RefusedError(
            f"error: no local state at {naming.local_state_path(KIND, env_name)}: nothing to migrate "
            "(phase 1 is applied on the machine that holds it)",
            1,
        )
    return env


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: migrate_bootstrap.py <env>   (make migrate-bootstrap ENV=<env>)", file=sys.stderr)
        return 2
    env_name = args[0]
    local_path = naming.local_state_path(KIND, env_name)
    try:
        env = _environment(env_name, root)
        stack = naming.stack_id(KIND, env_name)
        print(f"synthesizing {stack} with its S3 backend ...")
        _synthesize(env_name, root)
        print(f"migrating {local_path} ...")
        outdir = root / os.environ.get("CDKTF_OUTDIR", "cdktf.out")
        result = migrate(outdir / "stacks" / stack, root / local_path, root / BACKUP_DIR)
    except _RefusedError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except StateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    where = f"s3://{env.backend.bucket}/{naming.state_key(KIND)}"
    print(f"local state backed up to {result.backup.relative_to(root)}")
    if result.already_done:
        print(f"already migrated: {where} has {result.after} (local file: serial {result.before.serial})")
    else:
        print(f"migrated to {where}: {result.after}; lineage unchanged, serial kept")
    if result.lineage_restored:
        print(
            "note: Terraform wrote the first copy under a new lineage (its behaviour at an empty key); "
            "the original lineage was restored with `state push -force` after checking the contents match"
        )
    if result.plan_clean is False:
        print(
            "note: `terraform plan` shows changes; the state is migrated intact, review them before applying"
        )
    elif result.plan_clean:
        print("terraform plan: no changes")
    print(
        f"The local file {local_path} is now stale: keep it out of use (the bucket is the source of truth)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

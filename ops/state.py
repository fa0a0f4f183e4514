"""``ops state migrate`` and ``ops state unlock``: the two state operations that are ours.

``state migrate --env E`` is phase 2 of an environment's bootstrap: after phase 1 was applied on
local state and ``bootstrap_state = "s3"`` was set, it re-synthesizes ``bootstrap-<env>`` (now
with the S3 backend), backs up the local state file, runs ``terraform init -migrate-state
-force-copy`` and then proves that the bucket holds the same lineage with no lower serial and
that a plan shows no changes. Terraform gives the first snapshot written at an empty key a new
lineage; when that happens and the bucket holds exactly the local state's contents, the
original is pushed once more with ``state push -force`` (see ``_restore_lineage``). It refuses
to overwrite a different state, and a re-run after a successful migration changes nothing.

``state unlock --env E --stack K [--lock-id ID]`` is the stuck-lock runbook: without an ID it
shows who holds the lock; with one it releases the lock only if that exact lock is held now,
then checks that the state's lineage and serial did not change and that the lock is free. Both
work on the state through a scratch directory holding only the stack's backend block: no
provider plugins, and the stack directory's record of its previous backend stays as it is.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops import synth
from ops.runner import CommandError, LockInfo, StateInfo, Terraform, state_info
from platform_config import naming
from platform_config.errors import ConfigError, Problem
from platform_config.loader import load

BACKUP_DIR = "local_state/backups"


def synthesized_backend(stack_dir: Path) -> dict[str, Any]:
    """``{type: settings}`` of the backend in a synthesized stack's ``cdk.tf.json``."""
    path = stack_dir / "cdk.tf.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        backend: dict[str, Any] = doc["terraform"]["backend"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"{path}: no synthesized stack with a backend here ({exc})") from None
    return backend


@contextmanager
def backend_only(
    stack_dir: Path, env: Mapping[str, str] | None = None, binary: str | None = None
) -> Iterator[Terraform]:
    """Terraform, initialised in a scratch directory with just the stack's backend block."""
    backend = synthesized_backend(stack_dir)
    with tempfile.TemporaryDirectory(prefix="state-") as scratch:
        work = Path(scratch)
        (work / "backend.tf.json").write_text(json.dumps({"terraform": {"backend": backend}}))
        tf = Terraform(work, env, binary)
        tf.init()
        yield tf


# --- migrate ----------------------------------------------------------------------------------
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

    Raises CommandError, with what to do, whenever the result could not be proven correct.
    """
    backend = synthesized_backend(stack_dir)
    if list(backend) != ["s3"]:
        raise CommandError(
            f"{stack_dir.name} is synthesized with the {'/'.join(backend)} backend: set "
            'bootstrap_state = "s3" in its tfvars file and synthesize again'
        )
    if not local_state.is_file():
        raise CommandError(f"no local state at {local_state}: nothing to migrate (was phase 1 applied here?)")
    before = _read_state(local_state)
    backup = _backup(local_state, backup_dir, now or datetime.now(UTC))
    tf = Terraform(stack_dir, env, binary)
    with backend_only(stack_dir, env, binary) as probe:
        existing = probe.pull()
    repaired = False
    if existing is not None:
        if existing.lineage != before.lineage:
            raise CommandError(
                f"the bucket already holds a different state at {backend['s3'].get('key')} "
                f"({existing}); the local state has {before}. Refusing to overwrite it: find out "
                "which one is real before going on"
            )
        if existing.serial < before.serial:
            raise CommandError(
                f"the bucket holds an older version of this state ({existing}) than the local file "
                f"({before}); resolve by hand (`terraform state push` of the newer one)"
            )
        # Already migrated, maybe applied since: never copy the old local file over it.
        tf.init("-reconfigure")
        after, already = tf.pull(), True
    else:
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
        raise CommandError(
            f"after `terraform init -migrate-state` the bucket holds no state for {stack_dir.name}; "
            f"the local state and its backup {backup} are untouched"
        )
    if after.lineage != before.lineage:
        raise CommandError(f"lineage changed: local {before}, bucket {after}; restore from {backup}")
    if after.serial < before.serial:
        raise CommandError(f"serial went back: local {before}, bucket {after}; restore from {backup}")
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
        raise CommandError(
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
        raise CommandError(f"cannot read {path}: {exc}") from None
    return state_info(text, str(path))


def _copy_exact(src: Path, dst: Path) -> None:
    """Copy a state file and prove the copy is byte-identical before anybody relies on it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    if dst.read_bytes() != src.read_bytes():
        raise CommandError(f"copy {dst} differs from {src}")


def _backup(local_state: Path, backup_dir: Path, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = backup_dir / f"{local_state.stem}.{stamp}.tfstate"
    n = 1
    while target.exists():
        n += 1
        target = backup_dir / f"{local_state.stem}.{stamp}-{n}.tfstate"
    _copy_exact(local_state, target)
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
        raise CommandError(
            f"{record_file} records a different previous backend ({record.get('type')}, "
            f"{path or record.get('config', {}).get('key')}), so Terraform would not migrate "
            f"{local_state}. Remove that file and run again"
        )
    implicit = stack_dir / "terraform.tfstate"
    if implicit.exists():
        raise CommandError(f"{implicit} exists already; move it away and run again")
    _copy_exact(local_state, implicit)
    return implicit


def _plan_is_clean(tf: Terraform) -> bool:
    result = tf.run(
        "plan", "-input=false", "-no-color", "-detailed-exitcode", "-lock-timeout=60s", check=False
    )
    if result.returncode == 1:
        raise CommandError(f"`terraform plan` after the migration failed:\n{result.stderr.strip()}")
    return result.returncode == 0


def run_migrate(root: Path, env_name: str) -> int:
    [env] = load(root, [env_name], "--env")
    if env.settings.bootstrap_state != "s3":
        raise ConfigError(
            [
                Problem(
                    env.tfvars_file,
                    "bootstrap_state",
                    f'is "{env.settings.bootstrap_state}"; set it to "s3" once phase 1 is applied, '
                    "then run this again",
                )
            ]
        )
    local_path = naming.local_state_path("bootstrap", env.name)
    if not (root / local_path).is_file():
        raise CommandError(
            f"no local state at {local_path}: nothing to migrate (phase 1 is applied on the machine that holds it)"
        )
    stack = naming.stack_id("bootstrap", env.name)
    print(f"synthesizing {stack} with its S3 backend ...")
    out = synth.synthesize([env], ("bootstrap",), synth.outdir(root))
    print(f"migrating {local_path} ...")
    result = migrate(out / "stacks" / stack, root / local_path, root / BACKUP_DIR)
    where = f"s3://{env.backend.bucket}/{naming.state_key('bootstrap')}"
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


# --- unlock -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unlock:
    holder: LockInfo | None
    before: StateInfo | None
    after: StateInfo | None


def lock_holder(
    stack_dir: Path, env: Mapping[str, str] | None = None, binary: str | None = None
) -> LockInfo | None:
    with backend_only(stack_dir, env, binary) as tf:
        return tf.lock_holder()


def force_unlock(
    stack_dir: Path, lock_id: str, env: Mapping[str, str] | None = None, binary: str | None = None
) -> Unlock:
    """Release ``lock_id`` on the state of the stack synthesized in ``stack_dir``.

    Returns the released holder (None if the state was not locked). Raises CommandError when the
    lock is somebody else's, or when the state afterwards differs from the state before.
    """
    with backend_only(stack_dir, env, binary) as tf:
        holder = tf.lock_holder()
        before = tf.pull()
        if holder is None:
            return Unlock(None, before, before)
        if holder.id != lock_id:
            raise CommandError(
                f"the lock on {stack_dir.name} is held by {holder}, not {lock_id}. Make sure that run "
                "is dead, then pass its ID"
            )
        tf.run("force-unlock", "-force", "-no-color", lock_id)
        after = tf.pull()
        if before != after:
            raise CommandError(f"the state changed while unlocking: before {before}, after {after}")
        still = tf.lock_holder()
        if still is not None:
            raise CommandError(f"the state of {stack_dir.name} is still locked: {still}")
        return Unlock(holder, before, after)


def run_unlock(root: Path, env_name: str, kind: str, lock_id: str | None) -> int:
    stack = naming.stack_id(kind, env_name)
    with tempfile.TemporaryDirectory(prefix="state-unlock-synth-") as scratch:
        stack_dir = synth.outdir(root) / "stacks" / stack
        if not (stack_dir / "cdk.tf.json").is_file():
            # Synthesized aside: the user's cdktf.out (and its .terraform dirs) stays as it is.
            envs = load(root, [env_name], "--env")
            stack_dir = synth.synthesize(envs, (kind,), Path(scratch) / "cdktf.out") / "stacks" / stack
        if lock_id is None:
            holder = lock_holder(stack_dir)
            if holder is None:
                print(f"{stack}: the state is not locked")
            else:
                print(f"{stack}: locked by {holder}")
                print("If that run is dead (its CI job cancelled, its machine gone), release it with:")
                print(f"  make state-unlock ENV={env_name} STACK={kind} LOCK_ID={holder.id}")
            return 0
        result = force_unlock(stack_dir, lock_id)
    if result.holder is None:
        print(f"{stack}: the state is not locked; nothing done")
    else:
        print(f"{stack}: released the lock {result.holder}")
        print(f"state intact: {result.after or 'empty'}; the lock is free")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("state", help="state operations: migrate, unlock", description=__doc__)
    commands = parser.add_subparsers(dest="state_command", required=True, metavar="<state command>")
    move = commands.add_parser(
        "migrate", help="move bootstrap-ENV's local state into its own S3 bucket, lineage checked"
    )
    synth.add_env_option(move)
    unlock = commands.add_parser(
        "unlock", help="show (or, with --lock-id, release) the state lock of one stack; state checked after"
    )
    synth.add_env_option(unlock)
    synth.add_stack_option(unlock, required=True, many=False)
    unlock.add_argument("--lock-id", help="the lock to release: exactly the one held now")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.state_command == "migrate":
        return run_migrate(args.root, args.env)
    return run_unlock(args.root, args.env, args.stack, args.lock_id)

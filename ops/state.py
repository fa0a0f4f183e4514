"""``ops state migrate | unlock | adopt``: the state operations that are ours (the runbooks).

``state migrate --env E`` is phase 2 of an environment's bootstrap: after phase 1 was applied on
local state and ``bootstrap_state = "s3"`` was set, it re-synthesizes ``bootstrap-<env>`` (now
with the S3 backend), backs up the local state file, runs ``terraform init -migrate-state
-force-copy`` and then proves that the bucket holds the same lineage with no lower serial and
that a plan shows no changes. Terraform gives the first snapshot written at an empty key a new
lineage; when the bucket then holds exactly the local state's contents (right after the copy,
or left by an interrupted earlier run), the original is pushed once more with ``state push
-force`` (see ``_restore_lineage``). It refuses to overwrite a different state, and a re-run
after a successful migration changes nothing.

``state migrate --env E --to local`` is the way back (retiring an environment): with
``bootstrap_state = "local"`` it copies the bucket's current state to the local file, without a
prompt, and refuses when a local file exists that is not the bucket's current state.

``state unlock --env E --stack K [--lock-id ID]`` is the stuck-lock runbook: without an ID it
shows who holds the lock; with one it releases the lock only if that exact lock is held now,
then checks that the state's lineage and serial did not change and that the lock is free.

``state adopt --env E --stack K --from FILE`` makes an old state (a seed repository's) the
stack's state: it drops the seed-only resources (``SEED_ONLY_TYPES``), refuses a plan with any
destroy, and pushes with the lineage kept (``push_keeping_lineage``, reusable by other adoptions).

The bucket is read through a scratch directory holding only the backend block and the stack's
pinned provider versions, installed from the stack's own ``.terraform`` (``backend_only``): the
stack directory's record of its previous backend stays as it is, and no registry is needed.
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
from ops.runner import CommandError, LockInfo, StateInfo, Terraform, UsageError, state_info
from platform_config import naming
from platform_config.errors import ConfigError, Problem
from platform_config.loader import Environment, load

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


def synthesized_providers(stack_dir: Path) -> dict[str, Any]:
    """The exact provider versions a synthesized stack requires (``terraform.required_providers``)."""
    doc = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
    providers: dict[str, Any] = doc.get("terraform", {}).get("required_providers", {})
    return providers


def scratch_init_args(stack_dir: Path) -> list[str]:
    """``init`` flags that install the stack's providers from its own ``.terraform`` cache.

    ``init`` installs every provider the *state* names, even with no resource in the config
    (internal/command/init_run.go merges ``state.ProviderRequirements()`` into the
    requirements), so a backend-only directory still needs the providers. Read from the stack's
    already-initialised plugin directory, nothing is downloaded; without one, the pinned
    versions are installed the usual way (registry or the configured mirror).
    """
    plugins = stack_dir / ".terraform" / "providers"
    return [f"-plugin-dir={plugins.resolve()}"] if plugins.is_dir() else []


@contextmanager
def backend_only(
    stack_dir: Path,
    env: Mapping[str, str] | None = None,
    binary: str | None = None,
    backend: Mapping[str, Any] | None = None,
) -> Iterator[Terraform]:
    """Terraform, initialised in a scratch directory with just a backend block (the stack's, or
    ``backend``) and the stack's pinned provider versions and lock file."""
    terraform: dict[str, Any] = {"backend": dict(backend or synthesized_backend(stack_dir))}
    providers = synthesized_providers(stack_dir)
    if providers:
        terraform["required_providers"] = providers
    with tempfile.TemporaryDirectory(prefix="state-") as scratch:
        work = Path(scratch)
        (work / "backend.tf.json").write_text(json.dumps({"terraform": terraform}))
        lock_file = stack_dir / ".terraform.lock.hcl"
        if lock_file.is_file():
            shutil.copy2(lock_file, work / lock_file.name)
        tf = Terraform(work, env, binary)
        tf.init("-backend=true", *scratch_init_args(stack_dir))
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
    if existing is not None and existing.lineage != before.lineage:
        # Either our own earlier copy (an interrupted run: Terraform wrote it under a new
        # lineage, see _restore_lineage) or somebody else's state. Only the first is resumed.
        tf.init("-reconfigure")
        if not _same_content(tf, backup):
            raise CommandError(
                f"the bucket already holds a different state at {backend['s3'].get('key')} "
                f"({existing}); the local state has {before}. Refusing to overwrite it: find out "
                "which one is real before going on (docs/runbooks/bootstrap.md, "
                '"When the bucket holds another state")'
            )
        after, already, repaired = _restore_lineage(tf, backup), False, True
    elif existing is not None:
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
            if not _same_content(tf, backup):
                raise CommandError(
                    "the migrated state has a new lineage and differs from the local state; not "
                    f"touching it. Compare `terraform state pull` in {tf.workdir} with {backup}"
                )
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


def _restore_lineage(tf: Terraform, original: Path) -> StateInfo | None:
    """Give the state at ``tf``'s backend back the lineage of ``original``, whose content it holds.

    Terraform writes the first state snapshot at a key with no object under a *new* lineage with
    serial 1 (internal/states/remote/state.go: PersistState re-reads the missing object, which
    clears the lineage it was given, then generates a new one; unchanged since 0.12, same in
    OpenTofu), both in ``init -migrate-state`` and in ``state push``. Once the object exists,
    ``state push -force`` of the original keeps its lineage and bumps its serial. Forcing is
    safe only because the caller first proved (``_same_content``) that the backend holds
    nothing but a copy of ``original``.
    """
    tf.run("state", "push", "-force", "-lock-timeout=60s", str(original.resolve()))
    return tf.pull()


def _same_content(tf: Terraform, original: Path) -> bool:
    """Whether the state at ``tf``'s backend has exactly the resources and outputs of ``original``."""
    remote = json.loads(tf.run("state", "pull").stdout)
    return _content(remote) == _content(json.loads(original.read_text(encoding="utf-8")))


def push_keeping_lineage(tf: Terraform, source: Path) -> StateInfo:
    """Push the state file ``source`` to ``tf``'s (empty) backend, keeping its lineage.

    The state-moving core of every adoption: the first push into an empty key gets a new
    lineage (see ``_restore_lineage``), so it is repaired once the copy is proven identical.
    """
    wanted = _read_state(source)
    tf.run("state", "push", "-lock-timeout=60s", str(source.resolve()))
    after = tf.pull()
    if after is not None and after.lineage != wanted.lineage:
        if not _same_content(tf, source):
            raise CommandError(f"the pushed state differs from {source}; compare `terraform state pull`")
        after = _restore_lineage(tf, source)
    if after is None or after.lineage != wanted.lineage or after.serial < wanted.serial:
        raise CommandError(f"after the push the backend holds {after}, not {source} ({wanted})")
    return after


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


def migrate_to_local(
    stack_dir: Path,
    bucket_backend: Mapping[str, Any],
    local_state: Path,
    backup_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    binary: str | None = None,
    plan: bool = True,
    now: datetime | None = None,
) -> Migration:
    """Copy the bucket's current state of the stack in ``stack_dir`` (now synthesized with its
    local backend) to ``local_state``: the first step of retiring an environment.

    Never prompts. Refuses when ``local_state`` exists and is not the bucket's current state: a
    stale phase-1 file (same lineage, lower serial) would otherwise become the state.
    """
    if list(synthesized_backend(stack_dir)) != ["local"]:
        raise CommandError(
            f'{stack_dir.name} is synthesized with the S3 backend: set bootstrap_state = "local" '
            "in its tfvars file and synthesize again"
        )
    with backend_only(stack_dir, env, binary, backend=bucket_backend) as bucket:
        text = bucket.run("state", "pull").stdout
    remote = state_info(text, "the bucket's state") if text.strip() else None
    if remote is None or not remote.lineage:
        raise CommandError(f"the bucket holds no state for {stack_dir.name}: nothing to copy back")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    backup = backup_dir / f"{local_state.stem}.bucket.{stamp}.tfstate"
    backup.parent.mkdir(parents=True, exist_ok=True)
    backup.write_text(text, encoding="utf-8")
    already = local_state.is_file()
    if already:
        _refuse_other_local_state(local_state, remote, json.loads(text))
    else:
        local_state.parent.mkdir(parents=True, exist_ok=True)
        local_state.write_text(text, encoding="utf-8")
    tf = Terraform(stack_dir, env, binary)
    tf.init("-reconfigure")
    after = tf.pull()
    if after is None or (after.lineage, after.serial) != (remote.lineage, remote.serial):
        raise CommandError(
            f"the local state reads as {after}, not the bucket's {remote}; copy kept at {backup}"
        )
    return Migration(remote, after, backup, already, _plan_is_clean(tf) if plan else None)


def _refuse_other_local_state(local_state: Path, remote: StateInfo, remote_doc: dict[str, Any]) -> None:
    """Accept an existing local file only if it is exactly the bucket's current state."""
    local = _read_state(local_state)
    move_away = f"move {local_state} away (e.g. into {BACKUP_DIR}/) and run again"
    if local.lineage != remote.lineage:
        raise CommandError(
            f"{local_state} holds another state ({local}) than the bucket ({remote}); {move_away}"
        )
    if local.serial < remote.serial:
        raise CommandError(
            f"{local_state} is a stale copy ({local}); the bucket's state is newer ({remote}). "
            f"Terraform would switch to the stale file: {move_away}"
        )
    local_doc = json.loads(local_state.read_text(encoding="utf-8"))
    if local.serial > remote.serial or _content(local_doc) != _content(remote_doc):
        raise CommandError(
            f"{local_state} ({local}) has changes the bucket ({remote}) does not: find out which one "
            f"is real; if it is the bucket, {move_away}"
        )


def _require_phase(env: Environment, wanted: str) -> None:
    if env.settings.bootstrap_state != wanted:
        when = "once phase 1 is applied" if wanted == "s3" else "to move its state out of the bucket"
        raise ConfigError(
            [
                Problem(
                    env.tfvars_file,
                    "bootstrap_state",
                    f'is "{env.settings.bootstrap_state}"; set it to "{wanted}" {when}, then run this again',
                )
            ]
        )


def bucket_backend(env: Environment, kind: str) -> dict[str, Any]:
    """The S3 backend block of stack ``kind`` of ``env``, as ``constructs_lib.state_backend`` writes it."""
    return {"s3": {**env.backend.terraform_attributes(), "key": naming.state_key(kind)}}


def run_migrate_to_local(root: Path, env: Environment) -> int:
    _require_phase(env, "local")
    local_path = naming.local_state_path("bootstrap", env.name)
    stack = naming.stack_id("bootstrap", env.name)
    print(f"synthesizing {stack} with its local backend ...")
    out = synth.synthesize([env], ("bootstrap",), synth.outdir(root))
    result = migrate_to_local(
        out / "stacks" / stack, bucket_backend(env, "bootstrap"), root / local_path, root / BACKUP_DIR
    )
    print(f"the bucket's state saved to {result.backup.relative_to(root)}")
    verb = "already holds" if result.already_done else "now holds"
    print(f"{local_path} {verb} the bucket's current state: {result.after}")
    if result.plan_clean is False:
        print("note: `terraform plan` shows changes; review them before applying anything")
    elif result.plan_clean:
        print("terraform plan: no changes")
    print(
        "Next: empty and delete the bucket, the lock table and the key by hand (docs/runbooks/teardown-dev.md)."
    )
    return 0


def run_migrate(root: Path, env_name: str, to: str = "s3") -> int:
    [env] = load(root, [env_name], "--env")
    if to == "local":
        return run_migrate_to_local(root, env)
    _require_phase(env, "s3")
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


# --- adopt ------------------------------------------------------------------------------------
# Resource types of the seed repositories that our stacks replace by design and that must not be
# destroyed with the adoption (the MLflow seed's SSH key pair and the TLS key behind it: deleting
# them belongs to the operator, after the adoption, not to a plan).
SEED_ONLY_TYPES = ("aws_key_pair", "tls_private_key")


@dataclass(frozen=True)
class Adoption:
    source: StateInfo
    removed: tuple[str, ...]
    after: StateInfo
    adopted_copy: Path
    already_done: bool


def declared_addresses(stack_dir: Path) -> set[str]:
    doc = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
    return {f"{rtype}.{name}" for rtype, items in doc.get("resource", {}).items() for name in items}


def _managed_addresses(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(address, type)`` of every managed resource of a state document."""
    out = []
    for r in doc.get("resources", []):
        if r.get("mode") == "managed":
            prefix = f"{r['module']}." if r.get("module") else ""
            out.append((f"{prefix}{r['type']}.{r['name']}", r["type"]))
    return out


def adopt(
    stack_dir: Path,
    source: Path,
    backup_dir: Path,
    *,
    remove_types: tuple[str, ...] = SEED_ONLY_TYPES,
    env: Mapping[str, str] | None = None,
    binary: str | None = None,
    now: datetime | None = None,
) -> Adoption:
    """Make the old state file ``source`` the state of the stack in ``stack_dir``, lineage kept.

    First removes the resources of ``remove_types`` the stack does not declare (Terraform's
    ``state rm`` on a copy), then plans the stack against that copy and refuses any destroy or
    replacement; only then is the copy pushed to the stack's backend (``push_keeping_lineage``).
    ``source`` itself is never modified.
    """
    before = _read_state(source)
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    adopted = backup_dir / f"{stack_dir.name}.adopted.{stamp}.tfstate"
    _copy_exact(source, adopted)
    declared = declared_addresses(stack_dir)
    doc = json.loads(source.read_text(encoding="utf-8"))
    removed = tuple(a for a, t in _managed_addresses(doc) if t in remove_types and a not in declared)
    if removed:
        with tempfile.TemporaryDirectory(prefix="state-rm-") as scratch:
            rm = Terraform(Path(scratch), env, binary)
            rm.run("state", "rm", f"-state={adopted.resolve()}", "-backup=-", *removed)
    destroys = _planned_destroys(stack_dir, adopted, env, binary)
    if destroys:
        raise CommandError(
            f"the plan of {stack_dir.name} on the adopted state would destroy or replace "
            f"{', '.join(destroys)}; nothing was pushed (fix the stack or the names first)"
        )
    wanted = _read_state(adopted)
    with backend_only(stack_dir, env, binary) as tf:
        existing = tf.pull()
        if existing is not None:
            if existing.lineage == wanted.lineage and existing.serial >= wanted.serial:
                return Adoption(before, removed, existing, adopted, True)
            raise CommandError(
                f"{stack_dir.name}'s key already holds a state ({existing}); refusing to replace it "
                f"with {source} ({before})"
            )
        after = push_keeping_lineage(tf, adopted)
    return Adoption(before, removed, after, adopted, False)


def _planned_destroys(
    stack_dir: Path, state: Path, env: Mapping[str, str] | None, binary: str | None
) -> list[str]:
    """Addresses the stack's plan against the local ``state`` would delete (or replace)."""
    with tempfile.TemporaryDirectory(prefix="state-adopt-") as scratch:
        work = Path(scratch) / stack_dir.name
        shutil.copytree(
            stack_dir, work, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfplan", "plan*")
        )
        override = {"terraform": {"backend": {"local": {"path": str(state.resolve())}}}}
        (work / "adopt_override.tf.json").write_text(json.dumps(override))
        tf = Terraform(work, env, binary)
        tf.init("-reconfigure", *scratch_init_args(stack_dir))
        tf.run("plan", "-input=false", "-no-color", "-lock=false", "-out=adopt.tfplan")
        shown = json.loads(tf.run("show", "-json", "adopt.tfplan").stdout)
    return [
        change["address"]
        for change in shown.get("resource_changes", [])
        if "delete" in change["change"]["actions"]
    ]


def run_adopt(root: Path, env_name: str, kind: str, source: Path) -> int:
    envs = load(root, [env_name], "--env")
    if not source.is_file():
        raise UsageError(f"--from {source}: no such file")
    stack = naming.stack_id(kind, env_name)
    print(f"synthesizing {stack} ...")
    out = synth.synthesize(envs, (kind,), synth.outdir(root))
    result = adopt(out / "stacks" / stack, source, root / BACKUP_DIR)
    for address in result.removed:
        print(f"removed from the adopted state (delete it by hand afterwards): {address}")
    if result.already_done:
        print(f"already adopted: {stack} holds {result.after}")
    else:
        print(f"adopted {source} into {stack}: {result.after} (the old file: {result.source})")
    print(f"adopted copy kept at {result.adopted_copy.relative_to(root)}; next: make plan ENV={env_name}")
    return 0


# --- unlock -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unlock:
    holder: LockInfo | None
    before: StateInfo | None
    after: StateInfo | None
    # What Terraform said when it released the lock but still failed (see force_unlock).
    terraform_error: str | None = None


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
    lock is somebody else's, when it is still held afterwards, or when the state afterwards differs
    from the state before. A failed ``terraform force-unlock`` that did release the lock (both lock
    stores configured, the lock in one of them only) is a success, with Terraform's error kept.
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
        failed: CommandError | None = None
        try:
            tf.run("force-unlock", "-force", "-no-color", lock_id)
        except CommandError as err:
            # With both lock stores configured (use_lockfile and dynamodb_table), Terraform 1.11
            # releases the lock in each and fails when either held none: the case when a lock
            # write's answer was lost and the lock was left in one store only. What matters is
            # whether the lock is gone now (checked below); if it is not, this error stands.
            failed = err
        after = tf.pull()
        still = tf.lock_holder()
        if still is not None and failed is not None:
            raise failed
        if before != after:
            raise CommandError(f"the state changed while unlocking: before {before}, after {after}")
        if still is not None:
            raise CommandError(f"the state of {stack_dir.name} is still locked: {still}")
        return Unlock(holder, before, after, None if failed is None else str(failed))


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
        if result.terraform_error is not None:
            print(
                "Terraform's force-unlock failed, yet the lock is gone: with both lock stores configured, "
                "Terraform fails when one of them held no lock, as after a lock write whose answer was "
                f"lost. Terraform said: {result.terraform_error.splitlines()[-1].strip()}"
            )
        print(f"state intact: {result.after or 'empty'}; the lock is free")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "state", help="state operations: migrate, unlock, adopt", description=__doc__
    )
    commands = parser.add_subparsers(dest="state_command", required=True, metavar="<state command>")
    move = commands.add_parser(
        "migrate", help="move bootstrap-ENV's state between its local file and its S3 bucket, lineage checked"
    )
    synth.add_env_option(move)
    move.add_argument(
        "--to",
        choices=("s3", "local"),
        default="s3",
        help="s3: phase 2 of the bootstrap (default); local: back to the local file, to retire the environment",
    )
    unlock = commands.add_parser(
        "unlock", help="show (or, with --lock-id, release) the state lock of one stack; state checked after"
    )
    synth.add_env_option(unlock)
    synth.add_stack_option(unlock, required=True, many=False)
    unlock.add_argument("--lock-id", help="the lock to release: exactly the one held now")
    take = commands.add_parser(
        "adopt",
        help="push an existing state file under a stack's key, lineage kept, after a destroy-free plan",
    )
    synth.add_env_option(take)
    synth.add_stack_option(take, required=True, many=False)
    take.add_argument(
        "--from", dest="source", type=Path, required=True, metavar="FILE", help="the old state file"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.state_command == "migrate":
        return run_migrate(args.root, args.env, args.to)
    if args.state_command == "adopt":
        return run_adopt(args.root, args.env, args.stack, args.source.resolve())
    return run_unlock(args.root, args.env, args.stack, args.lock_id)

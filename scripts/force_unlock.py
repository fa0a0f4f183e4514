"""The stuck-lock runbook, scripted: release a dead run's state lock and prove the state is intact.

Usage: ``make force-unlock ENV=<env> STACK=<kind> [LOCK_ID=<id>]``, or
``python scripts/force_unlock.py prd mlflow 43e6508b-e807-797a-e12e-e4b74a20e51a``.

Without LOCK_ID it only shows who holds the lock (exit 0 either way). With it, it releases the
lock only if that is the lock held now, with ``terraform force-unlock -force``, then checks that
the state's lineage and serial did not change and that the lock is free. It works in a scratch directory holding
only the stack's backend block, so it needs no provider plugins and leaves the stack directory
alone. Exit 0 when the lock is released (or was free), 1 when a step fails, 2 on a usage error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from platform_config import naming
from scripts.terraform_cli import LockInfo, StateError, StateInfo, Terraform, synthesized_backend

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Unlock:
    holder: LockInfo | None
    before: StateInfo | None
    after: StateInfo | None


def lock_holder(
    stack_dir: Path, env: Mapping[str, str] | None = None, binary: str | None = None
) -> LockInfo | None:
    with _backend_only(stack_dir, env, binary) as tf:
        return tf.lock_holder()


def force_unlock(
    stack_dir: Path, lock_id: str, env: Mapping[str, str] | None = None, binary: str | None = None
) -> Unlock:
    """Release ``lock_id`` on the state of the stack synthesized in ``stack_dir``.

    Returns the released holder (None if the state was not locked). Raises StateError when the
    lock is somebody else's, or when the state afterwards differs from the state before.
    """
    with _backend_only(stack_dir, env, binary) as tf:
        holder = tf.lock_holder()
        before = tf.pull()
        if holder is None:
            return Unlock(None, before, before)
        if holder.id != lock_id:
            raise StateError(
                f"the lock on {stack_dir.name} is held by {holder}, not {lock_id}. Make sure that run "
                "is dead, then pass its ID"
            )
        tf.run("force-unlock", "-force", "-no-color", lock_id)
        after = tf.pull()
        if before != after:
            raise StateError(f"the state changed while unlocking: before {before}, after {after}")
        still = tf.lock_holder()
        if still is not None:
            raise StateError(f"the state of {stack_dir.name} is still locked: {still}")
        return Unlock(holder, before, after)


@contextmanager
def _backend_only(stack_dir: Path, env: Mapping[str, str] | None, binary: str | None) -> Iterator[Terraform]:
    """A scratch directory with just the stack's backend block, initialised."""
    backend = synthesized_backend(stack_dir)
    with tempfile.TemporaryDirectory(prefix="force-unlock-") as scratch:
        work = Path(scratch)
        (work / "backend.tf.json").write_text(json.dumps({"terraform": {"backend": backend}}))
        tf = Terraform(work, env, binary)
        tf.init()
        yield tf


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3) or any(a.startswith("-") for a in args):
        print(
            "usage: force_unlock.py <env> <stack kind: bootstrap|mlflow|databricks> [LOCK_ID]",
            file=sys.stderr,
        )
        return 2
    env_name, kind = args[0], args[1].removesuffix(f"-{args[0]}")
    if kind not in naming.STACK_KINDS:
        print(f"error: unknown stack kind {kind!r} (known: {', '.join(naming.STACK_KINDS)})", file=sys.stderr)
        return 2
    stack = naming.stack_id(kind, env_name)
    stack_dir = root / os.environ.get("CDKTF_OUTDIR", "cdktf.out") / "stacks" / stack
    try:
        with tempfile.TemporaryDirectory(prefix="force-unlock-synth-") as scratch:
            if not (stack_dir / "cdk.tf.json").is_file():
                # Synthesized aside: the user's cdktf.out (and its .terraform dirs) stays as it is.
                stack_dir = _synthesize(env_name, kind, root, Path(scratch)) / "stacks" / stack
            if len(args) == 2:
                holder = lock_holder(stack_dir)
                if holder is None:
                    print(f"{stack}: the state is not locked")
                else:
                    print(f"{stack}: locked by {holder}")
                    print("If that run is dead (its CI job cancelled, its machine gone), release it with:")
                    print(f"  make force-unlock ENV={env_name} STACK={kind} LOCK_ID={holder.id}")
                return 0
            result = force_unlock(stack_dir, args[2])
    except StateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.holder is None:
        print(f"{stack}: the state is not locked; nothing done")
    else:
        print(f"{stack}: released the lock {result.holder}")
        print(f"state intact: {result.after or 'empty'}; the lock is free")
    return 0


def _synthesize(env_name: str, kind: str, root: Path, outdir: Path) -> Path:
    run_env = {
        **os.environ,
        "MLOPS_ENVS": env_name,
        "MLOPS_STACKS": kind,
        "MLOPS_QUIET": "1",
        "CDKTF_OUTDIR": str(outdir / "cdktf.out"),
    }
    proc = subprocess.run(
        [sys.executable, str(root / "main.py")],
        cwd=root,
        env=run_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StateError(f"synthesizing {naming.stack_id(kind, env_name)} failed:\n{proc.stderr.strip()}")
    return outdir / "cdktf.out"


if __name__ == "__main__":
    sys.exit(main())

"""``ops provider-locks [--check]``: the committed Terraform provider lock files, one per stack kind.

Every environment of a stack kind needs the same providers, so ``provider_locks/<kind>.terraform.lock.hcl``
holds the checksums of all of them. ``ops plan`` and ``ops deploy`` copy it into each stack
directory before ``terraform init -lockfile=readonly`` (``stacks.app.synthesize`` then carries it
over on every re-synthesis, so the direct ``npx cdktf deploy`` path uses it too).

Without ``--check``: ``terraform providers lock`` for the platforms in ``PLATFORMS`` in one
synthesized stack directory per kind, copied to ``provider_locks/`` (needs the provider registry:
run it where providers can be downloaded, then commit the files). With ``--check``: exit 1 if a
kind's lock file is missing or does not lock exactly the providers and versions its stacks require,
then ``terraform init -backend=false -lockfile=readonly`` per kind proves the recorded checksums
match what the registry serves (CI).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

from ops import synth
from ops.runner import CommandError, Console, Terraform, UsageError, automation_env
from ops.synth import Target
from platform_config import naming
from platform_config.loader import load

LOCK_DIR = "provider_locks"
LOCK_FILE = ".terraform.lock.hcl"
# Where the team and CI run Terraform: the lock file must hold a checksum for each.
PLATFORMS = ("linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64")
DEFAULT_REGISTRY = "registry.terraform.io"
_HCL = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=True)


def lock_path(root: Path, kind: str) -> Path:
    return root / LOCK_DIR / f"{kind}{LOCK_FILE}"


def install(root: Path, target: Target) -> bool:
    """Copy the kind's committed lock file into the stack directory; False if none is committed."""
    source = lock_path(root, target.kind)
    if not source.is_file():
        return False
    shutil.copyfile(source, target.directory / LOCK_FILE)
    return True


@dataclass(frozen=True, order=True)
class Provider:
    address: str  # registry.terraform.io/hashicorp/aws
    constraint: str


def provider_address(source: str) -> str:
    """Terraform's full provider address for a ``required_providers`` source."""
    parts = source.lower().split("/")
    if len(parts) == 1:
        parts = ["hashicorp", *parts]
    if len(parts) == 2:
        parts = [DEFAULT_REGISTRY, *parts]
    return "/".join(parts)


def required_providers(stack_doc: dict[str, Any]) -> list[Provider]:
    required = stack_doc.get("terraform", {}).get("required_providers", {})
    return sorted(
        Provider(provider_address(spec.get("source", name)), str(spec.get("version", "")))
        for name, spec in required.items()
    )


def locked_providers(text: str) -> dict[str, dict[str, Any]]:
    """The ``provider`` blocks of a lock file: address -> {version, constraints, hashes}."""
    doc = hcl2.loads(text, serialization_options=_HCL)
    return {str(address): body for block in doc.get("provider", []) for address, body in block.items()}


def lock_problems(kind: str, required: list[Provider], lock_text: str | None) -> list[str]:
    """Why the lock file of ``kind`` does not fit what its stacks require (empty: it does)."""
    where = f"{LOCK_DIR}/{kind}{LOCK_FILE}"
    if lock_text is None:
        return [f"{where}: missing (generate it with `make provider-locks` and commit it)"]
    try:
        locked = locked_providers(lock_text)
    except Exception as exc:  # python-hcl2 raises lark errors and ValueError alike
        return [f"{where}: not a lock file ({str(exc).splitlines()[0]})"]
    problems = []
    for provider in required:
        block = locked.pop(provider.address, None)
        if block is None:
            problems.append(f"{where}: {provider.address} is required but not locked")
        elif block.get("constraints", "") != provider.constraint:
            problems.append(
                f"{where}: {provider.address} is locked for {block.get('constraints')!r}, "
                f"the stacks require {provider.constraint!r}"
            )
        elif not block.get("hashes"):
            problems.append(f"{where}: {provider.address} has no checksums")
    problems += [f"{where}: {address} is locked but no stack requires it" for address in sorted(locked)]
    if problems:
        problems.append(f"{where}: regenerate it with `make provider-locks` and commit it")
    return problems


def _stack_doc(target: Target) -> dict[str, Any]:
    path = target.directory / "cdk.tf.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"{path}: cannot read the synthesized stack ({exc})") from None
    return doc


def _provider_only_copy(target: Target, scratch: Path) -> Path:
    """The stack's ``terraform`` block alone (no backend, no resources): enough for Terraform to
    resolve and lock its providers without touching any state."""
    doc = _stack_doc(target)
    block = {k: v for k, v in doc.get("terraform", {}).items() if k != "backend"}
    workdir = scratch / target.kind
    workdir.mkdir(parents=True)
    (workdir / "main.tf.json").write_text(json.dumps({"terraform": block}))
    return workdir


def generate(root: Path, targets: list[Target], console: Console) -> None:
    with tempfile.TemporaryDirectory(prefix="provider-locks-") as scratch:
        for target in targets:
            workdir = _provider_only_copy(target, Path(scratch))
            console.progress(target.kind, "", f"terraform providers lock ({', '.join(PLATFORMS)}) ...")
            tf = Terraform(workdir, env=automation_env())
            tf.run("providers", "lock", "-no-color", *(f"-platform={p}" for p in PLATFORMS))
            destination = lock_path(root, target.kind)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(workdir / LOCK_FILE, destination)
            console.line(f"{destination.relative_to(root)}: written")


def check(root: Path, targets: list[Target], console: Console) -> bool:
    problems: list[str] = []
    for target in targets:
        path = lock_path(root, target.kind)
        text = path.read_text() if path.is_file() else None
        problems += lock_problems(target.kind, required_providers(_stack_doc(target)), text)
    for problem in problems:
        console.error(f"error: {problem}")
    if problems:
        return False
    with tempfile.TemporaryDirectory(prefix="provider-locks-") as scratch:
        for target in targets:
            workdir = _provider_only_copy(target, Path(scratch))
            shutil.copyfile(lock_path(root, target.kind), workdir / LOCK_FILE)
            result = Terraform(workdir, env=automation_env()).run(
                "init", "-backend=false", "-input=false", "-no-color", "-lockfile=readonly", check=False
            )
            if not result.ok:
                console.error(f"error: {LOCK_DIR}/{target.kind}{LOCK_FILE}: terraform init refused it:")
                console.error(result.stderr or result.stdout)
                return False
            console.line(f"{LOCK_DIR}/{target.kind}{LOCK_FILE}: ok")
    return True


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "provider-locks",
        help="write (or --check) the committed provider lock file of each stack kind",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument(
        "--env", default="dev", metavar="ENV", help="environment whose stacks are synthesized (default: dev)"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a lock file is stale")
    parser.add_argument("--no-synth", action="store_true", help="use what is already in cdktf.out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    if not naming.ENV_NAME_RE.match(args.env):
        raise UsageError(f"bad environment name {args.env!r}")
    out = synth.outdir(args.root)
    if not args.no_synth:
        synth.synthesize(load(args.root, [args.env], "--env"), naming.STACK_KINDS, out, console)
    targets = [Target(kind, args.env, out) for kind in naming.STACK_KINDS]
    if args.check:
        return 0 if check(args.root, targets, console) else 1
    generate(args.root, targets, console)
    return 0

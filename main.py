"""CDKTF entry point: read the environment files, build every stack, synthesize, summarize.

This is the only module that reads files or environment variables. Configuration problems are
reported one per line as ``file: key: problem`` with exit code 2 and no traceback, before any
output directory is touched; the new output replaces the old one only once synthesis succeeded.

Environment variables (all optional):
  MLOPS_ENVS    comma-separated environments to synthesize (default: every environment)
  MLOPS_STACKS  comma-separated stack kinds: bootstrap, mlflow, databricks (default: all)
  CDKTF_OUTDIR  output directory (set by the cdktf CLI; default: cdktf.out)
  MLOPS_QUIET   set to 1 to skip the summary
  MLOPS_GC_PAUSE set to 0 to import provider packages with the garbage collector running
                 (only for `make bench`, which measures what pausing it saves)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from constructs_lib import naming
from platform_config.errors import ConfigError, Problem
from platform_config.loader import (
    BACKEND_DIR,
    TFVARS_DIR,
    Environment,
    load_environments,
    select,
)

# Per-stack files that belong to Terraform, not to synthesis: kept across re-synthesis.
KEEP_IN_STACK_DIR = (".terraform", ".terraform.lock.hcl")


def read_config_dir(root: Path, directory: str) -> dict[str, str]:
    """Map ``<directory>/<file>`` to its text, for every non-hidden file of the directory."""
    path = root / directory
    if not path.is_dir():
        return {}
    files: dict[str, str] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or entry.name == "README.md" or not entry.is_file():
            continue
        try:
            files[f"{directory}/{entry.name}"] = entry.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [Problem(f"{directory}/{entry.name}", "", f"cannot read file: {exc}")]
            ) from None
    return files


def selection(name: str, allowed: tuple[str, ...] | None = None) -> list[str] | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ConfigError(
                [
                    Problem(f"${name}", "", f"unknown stack kind {b!r} (known: {', '.join(allowed)})")
                    for b in bad
                ]
            )
    return values


def load(root: Path) -> tuple[list[Environment], tuple[str, ...]]:
    envs = load_environments(read_config_dir(root, TFVARS_DIR), read_config_dir(root, BACKEND_DIR))
    env_names = selection("MLOPS_ENVS")
    if env_names is not None:
        envs = select(envs, env_names, "$MLOPS_ENVS")
    kinds = selection("MLOPS_STACKS", naming.STACK_KINDS)
    return envs, tuple(kinds) if kinds is not None else naming.STACK_KINDS


def synthesize(envs: list[Environment], kinds: tuple[str, ...], outdir: Path, pause_gc: bool = True) -> None:
    """Synthesize into a fresh directory next to ``outdir``, then swap it in."""
    from cdktf import App  # imported late: configuration errors must not pay for jsii start-up

    from stacks.app import build

    outdir = outdir.resolve()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.new-", dir=outdir.parent))
    try:
        app = App(outdir=str(staging))
        build(app, envs, kinds, pause_gc)
        app.synth()
        _carry_over_terraform_files(outdir, staging)
        if outdir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.old-", dir=outdir.parent))
            outdir.rename(old / "out")
            staging.rename(outdir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(outdir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _carry_over_terraform_files(old_out: Path, new_out: Path) -> None:
    old_stacks = old_out / "stacks"
    if not old_stacks.is_dir():
        return
    for stack_dir in old_stacks.iterdir():
        target = new_out / "stacks" / stack_dir.name
        if not target.is_dir():
            continue
        for name in KEEP_IN_STACK_DIR:
            if (stack_dir / name).exists():
                (stack_dir / name).rename(target / name)


def summary(outdir: Path) -> str:
    manifest = json.loads((outdir / "manifest.json").read_text())
    rows = []
    for name, stack in sorted(manifest["stacks"].items(), key=lambda kv: _order(kv[0])):
        doc = json.loads((outdir / stack["synthesizedStackPath"]).read_text())
        resources = sum(len(v) for v in doc.get("resource", {}).values())
        backend_type, backend = next(iter(doc["terraform"]["backend"].items()))
        where = backend.get("key") or backend.get("path")
        _kind, env = naming.parse_stack_id(name)
        rows.append((name, env, str(resources), backend_type, where))
    header = ("stack", "env", "resources", "backend", "state")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.append(f"{len(rows)} stacks synthesized to {outdir}")
    return "\n".join(lines)


def _order(stack_name: str) -> tuple[int, str]:
    kind, env = naming.parse_stack_id(stack_name)
    return naming.STACK_KINDS.index(kind), env


def main() -> int:
    root = Path.cwd()
    outdir = Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out"))
    try:
        envs, kinds = load(root)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} configuration problem(s); nothing was synthesized.", file=sys.stderr)
        return 2
    synthesize(envs, kinds, outdir, pause_gc=os.environ.get("MLOPS_GC_PAUSE") != "0")
    if os.environ.get("MLOPS_QUIET") != "1":
        print(summary(outdir.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

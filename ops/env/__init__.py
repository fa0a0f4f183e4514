"""``ops env add NEW --from OLD``: everything a new environment needs but its real values.

1. its two files, derived from ``OLD``'s (``files``: own names, target, free VPC range);
2. its place in CI, written into the workflows (``workflows``);
3. what the repository generates from the set of environments: the new environment's snapshots,
   the diagrams and stack tables (``artifacts``; ``--no-artifacts`` prints the commands instead).

Any failure puts every file back as it was (new files removed), so a second try starts clean.
After it, ``make check`` passes: every test over the shipped environments covers the new one.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ops.env import artifacts, files, workflows
from platform_config.loader import BACKEND_DIR, BACKEND_SUFFIX, TFVARS_DIR, TFVARS_SUFFIX, load


@contextmanager
def restored_on_failure(root: Path) -> Iterator[dict[Path, str | None]]:
    """Files registered in the yielded map (path -> text before, None if new) are put back if the
    block raises (written files with their old text, new ones removed)."""
    before: dict[Path, str | None] = {}
    try:
        yield before
    except BaseException:
        for path, text in before.items():
            if text is None:
                (root / path).unlink(missing_ok=True)
            else:
                (root / path).write_text(text, encoding="utf-8")
        raise


def _keep(before: dict[Path, str | None], root: Path, paths: list[Path]) -> None:
    for path in paths:
        if path not in before:
            before[path] = (root / path).read_text(encoding="utf-8") if (root / path).exists() else None


def add(root: Path, new: str, source: str, with_artifacts: bool) -> list[str]:
    """Do everything; what was written, for the report."""
    generated = [Path("docs/architecture"), Path("docs/stacks")]
    with restored_on_failure(root) as before:
        tfvars, backend = (
            Path(TFVARS_DIR) / f"{new}{TFVARS_SUFFIX}",
            Path(BACKEND_DIR) / f"{new}{BACKEND_SUFFIX}",
        )
        _keep(before, root, [tfvars, backend])
        files.add(root, new, source)
        ci = workflows.edits(root, new, source)
        _keep(before, root, [e.path for e in ci])
        for edit in ci:
            (root / edit.path).write_text(edit.text, encoding="utf-8")
        written = [str(tfvars), str(backend), *(str(e.path) for e in ci)]
        if with_artifacts:
            _keep(
                before, root, [p.relative_to(root) for d in generated for p in sorted((root / d).glob("*"))]
            )
            snapshots = [
                Path(path).parent / "__snapshots__" / Path(path).stem / f"test_snapshot[{new}].json"
                for path in artifacts.SNAPSHOT_TESTS
            ]
            _keep(before, root, snapshots)
            artifacts.snapshots(root, new)
            artifacts.diagrams(root)
            written += [str(p) for p in snapshots]
    return written


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("env", help="environments: add", description=__doc__)
    commands = parser.add_subparsers(dest="env_command", required=True, metavar="<env command>")
    new = commands.add_parser(
        "add",
        help="a new environment: its two files, its CI entries, its snapshots and the diagrams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    new.add_argument("name", help="the new environment: 2-8 lowercase letters or digits")
    new.add_argument(
        "--from", dest="source", required=True, metavar="ENV", help="environment to copy, e.g. dev"
    )
    new.add_argument(
        "--no-artifacts",
        action="store_true",
        help="write the files and CI entries only; print the commands that make the snapshots and diagrams",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    written = add(args.root, args.name, args.source, with_artifacts=not args.no_artifacts)
    [env] = load(args.root, [args.name])
    names = env.names
    print("wrote " + "\n      ".join(written))
    print(
        f"  state bucket {names.bootstrap.state_bucket}, lock table {names.bootstrap.lock_table}, "
        f"key {names.bootstrap.kms_alias}"
    )
    print(
        f"  VPC {env.settings.network.vpc_cidr}; Databricks target {names.databricks.target}, "
        f"catalog {names.databricks.catalog}, job prefix {names.databricks.job_prefix!r}"
    )
    if args.no_artifacts:
        print("Then make the generated files (or run env add without --no-artifacts):")
        for command in artifacts.commands(args.name):
            print(f"  {command}")
    print(
        f"Next: review the files (sizes, addresses, ranges are {args.source}'s), create the GitHub "
        f"Environments {args.name}-plan and {args.name} (docs/runbooks/ci-cd.md), then the first-time "
        f"bootstrap (docs/runbooks/bootstrap.md, ENV={args.name})."
    )
    return 0

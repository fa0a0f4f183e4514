"""What the repository generates from the set of environments, made for a new one (``ops env add``):
its stacks' snapshots (``tests/stacks/__snapshots__``), written by the snapshot tests themselves
for that environment only, and the architecture diagrams and stack tables of ``docs/`` (``ops
diagram``), which read every environment. ``commands`` says how to make them by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ops import diagram
from ops.runner import CommandError, execute
from platform_config import naming

SNAPSHOT_TESTS = tuple(f"tests/stacks/test_{kind}_stack.py" for kind in naming.STACK_KINDS)


def snapshot_ids(env: str) -> list[str]:
    return [f"{path}::test_snapshot[{env}]" for path in SNAPSHOT_TESTS]


def commands(env: str) -> list[str]:
    """The same, as a person would run it."""
    return [
        f".venv/bin/python -m pytest -q -p no:cacheprovider --snapshot-update {' '.join(snapshot_ids(env))}",
        "python -m ops diagram",
    ]


def snapshots(root: Path, env: str) -> None:
    """Write the new environment's snapshots (the tests synthesize it and record the JSON)."""
    if not all((root / path).is_file() for path in SNAPSHOT_TESTS):
        raise CommandError(f"{root}: no snapshot tests ({', '.join(SNAPSHOT_TESTS)})")
    result = execute(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--snapshot-update",
            *snapshot_ids(env),
        ],
        cwd=root,
    )
    if not result.ok:
        tail = "\n".join(result.stdout.splitlines()[-15:])
        raise CommandError(f"the snapshot tests of {env} failed:\n{tail}")


def diagrams(root: Path) -> None:
    if diagram.run(argparse.Namespace(check=False, outdir=None, root=root)) != 0:
        raise CommandError("could not redraw the diagrams and stack tables (see above)")

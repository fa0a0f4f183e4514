"""``ops docs [--check]``: docs/configuration.md, generated from the configuration models."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import cast

DOC = "docs/configuration.md"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "docs", help=f"write {DOC} from the configuration models", description=(__doc__ or "").strip()
    )
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {DOC} is stale")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Looked up by name: platform_config.reference is written in parallel with this command.
    reference = importlib.import_module("platform_config.reference")
    render = cast(Callable[[], str], reference.render_markdown)
    text = render()
    path = args.root / DOC
    if args.check:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"error: {DOC} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0

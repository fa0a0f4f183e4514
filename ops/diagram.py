"""``ops diagram [--check]``: placeholder until the DOCS helper's ops/diagram.py replaces it; runs
scripts/diagram.py's command unchanged."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("diagram", help="architecture diagrams from the synthesized stacks")
    parser.add_argument("--check", action="store_true", help="exit 1 if the diagrams are stale")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from scripts import diagram

    return diagram.main(["--check"] if args.check else [])

"""The ``ci`` command group (today ``python -m ops ci check``): the GitHub side of CI (``ops/ci/``)."""

from __future__ import annotations

import argparse

from ops.ci import check


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "ci", help="check the GitHub side of CI (Environments, branch rules, variables)"
    )
    ci = p.add_subparsers(dest="ci_command", required=True, metavar="<subcommand>")
    check.add_parser(ci)

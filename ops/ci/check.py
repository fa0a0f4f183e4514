"""``python -m ops ci check [--env E ...]``: read the repository's GitHub Environments and
variables through the REST API and report every difference from what the workflows assume
(``ops.ci.expected``). Exit 0: none; 1: differences (one line each) or the API failed; 2: no token,
or a configuration problem."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from ops.ci.expected import ROLE_VARIABLES, Expected, expectations
from ops.ci.github import GitHub, LiveRepository
from ops.runner import UsageError
from platform_config.loader import load


def differences(expected: Sequence[Expected], live: LiveRepository) -> list[str]:
    out: list[str] = []
    for want in expected:
        env = live.environments.get(want.name)
        if env is None:
            out.append(f"{want.name}: missing: the workflows run {want.purpose} jobs of {want.env} in it")
            continue
        if want.branches is None and env.branch_rule != "none":
            out.append(
                f"{want.name}: deployment branches: expected no rule (pull-request jobs run on "
                f"refs/pull/<n>/merge), found {_rule(env.branch_rule, env.branches)}"
            )
        if want.branches is not None:
            if not want.branches:
                out.append(f"{want.name}: no workflow deploys {want.env} on push: nothing to compare")
            elif env.branch_rule != "custom" or env.branches != want.branches or env.tag_patterns:
                found = _rule(env.branch_rule, env.branches) + (
                    f", tags {list(env.tag_patterns)}" if env.tag_patterns else ""
                )
                out.append(
                    f"{want.name}: deployment branches: expected exactly {list(want.branches)}, found {found}"
                )
        if want.reviewers_required is True and env.reviewers == 0:
            out.append(f"{want.name}: required reviewers: expected at least one (production), found none")
        if want.reviewers_required is False and env.reviewers > 0:
            out.append(
                f"{want.name}: required reviewers: expected none (its jobs run unattended), found {env.reviewers}"
            )
        for name in want.variables:
            role_variable = name == ROLE_VARIABLES[want.purpose]
            if name in env.variables:
                value = env.variables[name]
            elif name in live.variables and not role_variable:
                continue
            else:
                where = "" if role_variable else " (nor in the repository)"
                out.append(f"{want.name}: variable {name}: missing{where}")
                continue
            if role_variable and not _role_matches(want, value):
                shown = (
                    f"a role named {want.role_arn.rsplit('/', 1)[-1].replace(chr(92), '')}"
                    if want.role_arn_is_pattern
                    else want.role_arn
                )
                out.append(
                    f"{want.name}: variable {name}: expected {shown} (bootstrap-{want.env}'s output), found {value!r}"
                )
    return out


def _role_matches(want: Expected, value: str) -> bool:
    if want.role_arn_is_pattern:
        return re.fullmatch(want.role_arn, value) is not None
    return value == want.role_arn


def _rule(rule: str, branches: tuple[str, ...]) -> str:
    if rule == "none":
        return "no rule (any branch)"
    if rule == "protected":
        return "protected branches"
    return f"custom branches {list(branches)}"


def add_parser(ci: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = ci.add_parser(
        "check",
        help="compare the repository's GitHub Environments and variables with what the workflows assume",
        description=__doc__,
    )
    p.add_argument("--env", nargs="+", metavar="E", help="only these environments (default: every one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    envs = load(args.root, args.env or None)
    expected = expectations(args.root, envs)
    repositories = sorted({e.settings.ci.github_repository for e in envs if e.settings.ci is not None})
    if not repositories:
        raise UsageError("no environment has a ci block (ci.github_repository): nothing to check")
    github = GitHub.from_environment()
    found: list[str] = []
    for repository in repositories:
        mine = [
            x
            for x in expected
            if next(e for e in envs if e.name == x.env).settings.ci.github_repository == repository  # type: ignore[union-attr]
        ]
        live = github.read(repository)
        lines = differences(mine, live)
        print(f"{repository}: {len(mine)} GitHub Environments checked, {len(lines)} difference(s)")
        found += lines
    for line in found:
        print(f"difference: {line}")
    return 1 if found else 0

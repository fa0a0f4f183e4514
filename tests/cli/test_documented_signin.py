"""Every `python -m ops mlflow ...` command is documented where people look for it: a row of the
README's command table and an example in docs/stacks/mlflow.md (the sign-in commands in its
Sign-in section). A new command fails here until both exist (test_documented_commands.py checks the
other way: that every command the docs name exists)."""

from __future__ import annotations

import argparse
import re

from ops import cli
from tests.cli.test_documented_commands import OPS, TABLE_ROW, command_path, subcommands
from tests.conftest import ROOT

README = ROOT / "README.md"
PAGE = ROOT / "docs" / "stacks" / "mlflow.md"
# The commands about who may sign in and what they may do: shown in the page's Sign-in section.
SIGN_IN = (
    ("mlflow", "user", "create"),
    ("mlflow", "user", "reset-password"),
    ("mlflow", "grant"),
    ("mlflow", "revoke"),
    ("mlflow", "admin", "rotate"),
)


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The runnable command paths under ``parser`` (those without subcommands of their own)."""
    children = subcommands(parser)
    if not children:
        return [path]
    return [leaf for name, child in children.items() for leaf in leaves(child, (*path, name))]


def mlflow_commands() -> list[tuple[str, ...]]:
    return leaves(subcommands(cli.parser())["mlflow"], ("mlflow",))


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def readme_rows(text: str) -> set[tuple[str, ...]]:
    found = (command_path(phrase.split()) for phrase in TABLE_ROW.findall(text))
    return {path for path in found if isinstance(path, tuple)}


def examples(text: str) -> set[tuple[str, ...]]:
    phrases = (phrase for span in re.findall(r"`([^`\n]+)`", text) for phrase in OPS.findall(span))
    found = (command_path(phrase.split()) for phrase in phrases)
    return {path for path in found if isinstance(path, tuple)}


def test_the_mlflow_commands_are_found() -> None:
    commands = mlflow_commands()
    assert set(SIGN_IN) <= set(commands), commands


def test_every_mlflow_command_has_a_readme_row() -> None:
    missing = sorted(set(mlflow_commands()) - readme_rows(README.read_text(encoding="utf-8")))
    assert not missing, f"README.md's command table lacks: {missing}"


def test_every_mlflow_command_has_an_example_in_the_page() -> None:
    missing = sorted(set(mlflow_commands()) - examples(PAGE.read_text(encoding="utf-8")))
    assert not missing, f"docs/stacks/mlflow.md has no example of: {missing}"


def test_every_sign_in_command_has_an_example_in_the_sign_in_section() -> None:
    signin = section(PAGE.read_text(encoding="utf-8"), "Sign-in")
    missing = sorted(set(SIGN_IN) - examples(signin))
    assert not missing, f"docs/stacks/mlflow.md, Sign-in, has no example of: {missing}"


def test_a_missing_command_is_found() -> None:
    """The checks above can fail: a table and a section without the commands name none of them."""
    assert readme_rows("| make | python -m ops | what |\n| - | `synth --env E` | x |\n") == {("synth",)}
    assert examples("run `python -m ops mlflow grant --env dev --user a`") == {("mlflow", "grant")}
    assert examples("`python -m ops mlflow` alone names no command") == set()


def test_the_docs_give_the_cache_times_launch_py_sets() -> None:
    launch = (ROOT / "constructs_lib" / "instance" / "launch.py").read_text()
    page = (ROOT / "docs" / "stacks" / "mlflow.md").read_text()
    grants = re.search(r"(?m)^GRANT_CACHE_SECONDS = (\d+)$", launch)
    passwords = re.search(r"(?m)^AUTH_CACHE_SECONDS = (\d+)$", launch)
    assert grants is not None and passwords is not None
    assert f"`GRANT_CACHE_SECONDS = {grants[1]}`" in page
    assert f"`auth_cache_ttl_seconds = {passwords[1]}`" in page
    # Every time the page gives for a revocation or a password change is one of the two.
    said = set(re.findall(r"within (?:the cache's )?(\d+) s\b", page))
    assert said == {grants[1], passwords[1]}, said

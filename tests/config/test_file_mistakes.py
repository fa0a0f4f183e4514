"""Mistakes python-hcl2 and the models let through, caught with the place to look: a key set twice,
an unbalanced bracket (at the line where it opens, which Terraform's own diagnostic shows too), and
two environments on overlapping VPC ranges (unless the files say their networks never meet)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from platform_config import hcl
from platform_config.loader import TFVARS_DIR
from tests.fixtures.envs import FIXTURES, ConfigFiles

DEV = f"{TFVARS_DIR}/dev.tfvars"
PRD = f"{TFVARS_DIR}/prd.tfvars"
TEXT = (FIXTURES / DEV).read_text()


def problems(text: str) -> list[str]:
    return [str(p) for p in hcl.parse(text, "f.tfvars")[1]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1\nb = 2\na = 3\n", "f.tfvars: a: set twice (lines 1 and 3); Terraform refuses an attribute set twice"),
        ("m = {\n  x = 1\n  y = { z = 1 }\n  x = 2\n}\n", "f.tfvars: m.x: set twice (lines 2 and 4); only the last value would count"),
        ('m = {\n  "x" = 1\n  x = 2\n}\n', "f.tfvars: m.x: set twice (lines 2 and 3)"),
        ("m = { n = { q = 1, q = 2 } }\n", "f.tfvars: m.n.q: set twice (lines 1 and 1)"),
        ('t = [{ k = "a" }, { k = "b", k = "c" }]\n', "f.tfvars: t[1].k: set twice (lines 1 and 1)"),
        ("mlflow = {}\nother = 1\nmlflow = { a = 1 }\n", "f.tfvars: mlflow: set twice (lines 1 and 3)"),
    ],
)  # fmt: skip
def test_a_key_set_twice_is_named_with_both_lines(text: str, expected: str) -> None:
    [problem] = problems(text)
    assert problem.startswith(expected), problem


def test_the_same_key_in_different_objects_is_fine() -> None:
    assert problems('a = { x = 1 }\nb = { x = 2 }\nt = [{ k = "a" }, { k = "b" }]\n') == []


def broken(line: int, old: str, new: str) -> str:
    lines = TEXT.split("\n")
    assert old in lines[line - 1], (line, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return "\n".join(lines)


def without_line(line: int) -> str:
    lines = TEXT.split("\n")
    del lines[line - 1]
    return "\n".join(lines)


# (the broken text, the line of the mistake, what is said)
BRACKETS = [
    (broken(17, "network = {", "network = { {"), 17, "'{' at column 11 is never closed"),
    (without_line(24), 17, "'{' at column 11 is never closed"),  # network's closing brace deleted
    (broken(19, '["us-east-1a", "us-east-1b"]', '["us-east-1a", "us-east-1b"}'), 19, "'[' at column 27 is closed by '}'"),
    (broken(11, "}", "}}"), 11, "'}' at column 2 closes nothing"),
    (broken(4, '"us-east-1"', '"us-east-1'), 4, "the string opened at column 17 is not closed on its line"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "says"),
    BRACKETS,
    ids=["extra-{", "missing-}", "[-closed-by-}", "extra-}", "open-string"],
)
def test_an_unbalanced_bracket_is_reported_where_it_is(text: str, line: int, says: str) -> None:
    [problem] = problems(text)
    assert problem.startswith(f"f.tfvars: line {line}: HCL syntax error: {says}"), problem


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
@pytest.mark.parametrize(("text", "line", "says"), BRACKETS[:1] + BRACKETS[2:])
def test_terraform_fmt_shows_the_same_line_in_its_diagnostic(
    tmp_path: Path, text: str, line: int, says: str
) -> None:
    """`terraform fmt` names the line where its parser gave up (for the extra `{`, the closing brace
    7 lines later) and quotes the source from the offending construct on: our line is among the
    lines it quotes, and is the one to fix."""
    path = tmp_path / "f.tfvars"
    path.write_text(text)
    done = subprocess.run(
        ["terraform", "fmt", "-no-color", "-check", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    quoted = {int(n) for n in re.findall(r"^\s*│?\s*(\d+):", done.stderr, re.MULTILINE)}
    assert line in quoted, done.stderr


def test_brackets_in_strings_comments_and_heredocs_do_not_count() -> None:
    text = 'a = "x { y ["\n# {\n// [\n/* { */\nb = <<EOF\n  { [\nEOF\nc = { d = 1 }\n'
    assert problems(text) == []


# --- overlapping VPC ranges ------------------------------------------------------------------------


def overlapping() -> ConfigFiles:
    return ConfigFiles(FIXTURES).set(DEV, "network.vpc_cidr", "10.0.0.0/8")


def test_overlapping_vpc_ranges_are_refused_naming_both_environments() -> None:
    [problem] = overlapping().problems()
    assert str(problem) == (
        f"{PRD}: network.vpc_cidr: 10.30.0.0/16 overlaps 10.0.0.0/8 of environment 'dev' ({DEV}); pick "
        "another range (`python -m ops env add` picks a free one), or list 'dev' in "
        "network.overlap_allowed_with if the two networks are never connected"
    )


def test_overlap_is_allowed_between_named_environments_in_different_accounts() -> None:
    files = (
        overlapping()
        .set(DEV, "network.overlap_allowed_with", ["prd"])
        .set(DEV, "aws_account_id", "210987654321")
        .set(PRD, "aws_account_id", "111122223333")  # the fixture certificate's account
    )
    assert [e.name for e in files.load()] == ["dev", "prd"]


@pytest.mark.parametrize(
    ("accounts", "says"),
    [
        ((None, None), "'prd' may overlap only when both environments set aws_account_id, to different accounts (here: None and None)"),
        (("210987654321", None), "(here: 210987654321 and None)"),
        (("111122223333", "111122223333"), "(here: 111122223333 and 111122223333)"),
    ],
)  # fmt: skip
def test_the_exception_needs_two_different_accounts(
    accounts: tuple[str | None, str | None], says: str
) -> None:
    files = overlapping().set(DEV, "network.overlap_allowed_with", ["prd"])
    for path, account in zip((DEV, PRD), accounts, strict=True):
        if account is not None:
            files.set(path, "aws_account_id", account)
    found = [str(p) for p in files.problems()]
    assert any(p.startswith(f"{DEV}: network.overlap_allowed_with[0]: ") and says in p for p in found), found


def test_the_exception_names_an_existing_other_environment() -> None:
    files = ConfigFiles(FIXTURES).set(DEV, "network.overlap_allowed_with", ["dev", "nosuch"])
    assert [str(p) for p in files.problems()] == [
        f"{DEV}: network.overlap_allowed_with[0]: 'dev' is not another environment (known: prd)",
        f"{DEV}: network.overlap_allowed_with[1]: 'nosuch' is not another environment (known: prd)",
    ]

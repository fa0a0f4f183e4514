"""Every command a shipped file or doc tells someone to run exists and runs: each `make <target>`
named in the README, the docs, the environment files, the workflows and the code's own messages is
a target of the Makefile, and each `python -m ops <command>` answers `--help` without a traceback,
started from the Python the project's virtualenv was made from (not the venv: `python -m ops`
must work from whatever Python is on the PATH)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ops import cli
from tests.conftest import ROOT

SOURCES = (
    "README.md",
    "Makefile",
    "docs/**/*.md",
    "env_specific_vars/*",
    "backend_configs/*",
    ".github/**/*.yml",
    ".ci/run",
    "ops/**/*.py",
    "platform_config/**/*.py",
    "constructs_lib/**/*.py",
    "stacks/**/*.py",
    "rehearsal/**/*.py",
    "main.py",
)
MAKE = re.compile(r"(?:^|[`\s(\"'])make ([a-z][a-z-]*)\b")
OPS = re.compile(r"python -m ops ((?:--root \S+ )?(?:[a-z][a-z-]*)(?: [a-z][a-z-]*)*)")
# The README's command table: | `make ...` | `<ops command> ...` | what it does |
TABLE_ROW = re.compile(r"^\| [^|]* \| `([a-z][a-z -]*)[^|]*\|", re.MULTILINE)
# Words after `make` that are English, not targets ("make sure", ...), in prose outside code.
PROSE = {"sure", "it", "the", "a", "them", "one", "that", "this"}


def shipped_files() -> list[Path]:
    return sorted({p for pattern in SOURCES for p in ROOT.glob(pattern) if p.is_file()})


def code_spans(path: Path, text: str) -> Iterator[str]:
    """Where a command is written to be run: backtick spans everywhere (docs, comments, messages),
    fenced blocks of Markdown, and the command lines of workflows, the Makefile and CI."""
    if path.suffix == ".md":
        yield from re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL)
        text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    elif path.suffix == ".yml" or path.name in {"Makefile", "run"}:
        yield from (line.strip().removeprefix("run: ") for line in text.splitlines())
    yield from re.findall(r"`([^`\n]+)`", text)


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def named_make_targets() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in shipped_files():
        for span in code_spans(path, path.read_text(encoding="utf-8")):
            for target in MAKE.findall(span):
                if target not in PROSE:
                    found.setdefault(target, set()).add(str(path.relative_to(ROOT)))
    return found


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_path(words: list[str]) -> tuple[str, ...] | str:
    """The subcommand path ``words`` start with, or what is wrong with it."""
    parser, path = cli.parser(), list[str]()
    for word in words:
        choices = subcommands(parser)
        if not choices:
            break
        if word not in choices:
            return f"no command {' '.join([*path, word])!r} (known: {', '.join(choices)})"
        parser, path = choices[word], [*path, word]
    if subcommands(parser):
        return f"{' '.join(path)!r} needs one of: {', '.join(subcommands(parser))}"
    return tuple(path)


def named_ops_commands() -> dict[tuple[str, ...] | str, set[str]]:
    found: dict[tuple[str, ...] | str, set[str]] = {}
    for path in shipped_files():
        text = path.read_text(encoding="utf-8")
        spans = list(code_spans(path, text))
        phrases = [m for span in spans for m in OPS.findall(span)]
        if path.name == "README.md":
            phrases += [m.strip() for m in TABLE_ROW.findall(text)]
        for phrase in phrases:
            words = phrase.split()
            if words[:1] == ["--root"]:
                words = words[2:]
            found.setdefault(command_path(words), set()).add(str(path.relative_to(ROOT)))
    return found


COMMANDS = named_ops_commands()


def test_every_make_target_named_exists() -> None:
    named, targets = named_make_targets(), make_targets()
    assert {"test", "synth", "plan", "deploy", "env-add"} <= set(named), "the scan finds nothing"
    missing = {target: sorted(where) for target, where in named.items() if target not in targets}
    assert not missing, f"make targets named but not in the Makefile: {missing}"


def test_every_ops_command_named_exists() -> None:
    assert len([c for c in COMMANDS if isinstance(c, tuple)]) >= 10, "the scan finds nothing"
    wrong = {c: sorted(where) for c, where in COMMANDS.items() if isinstance(c, str)}
    assert not wrong, wrong


def test_a_wrong_command_is_found() -> None:
    """The checks above can fail."""
    assert str(command_path(["state", "migrat"])).startswith("no command 'state migrat' (known: ")
    assert command_path(["env"]) == "'env' needs one of: add"
    assert "migrate-bootstrap" in MAKE.findall("run `make migrate-bootstrap` then")
    assert "migrate-bootstrap" not in make_targets()


def help_of(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    # The interpreter the venv was made from: `python -m ops` hands over to the project's venv.
    python = Path(sys.base_prefix) / "bin" / "python3"
    return subprocess.run(
        [str(python), "-m", "ops", *path, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_ops_command_named_answers_help_from_any_python() -> None:
    paths = sorted({c for c in COMMANDS if isinstance(c, tuple)} | {()})
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(paths, pool.map(help_of, paths), strict=True))
    for path, done in results.items():
        assert done.returncode == 0 and "Traceback" not in done.stderr, (path, done.stderr[-500:])
        assert done.stdout.startswith(f"usage: python -m ops {' '.join(path)}".rstrip()), (
            path,
            done.stdout[:200],
        )


def test_python_without_the_venv_says_what_to_run(tmp_path: Path) -> None:
    """A copy of the commands without the project's virtualenv, under a Python without its packages."""
    copy = tmp_path / "repo"
    (copy / "ops").mkdir(parents=True)
    (copy / "ops" / "__init__.py").write_text("")
    (copy / "ops" / "__main__.py").write_text((ROOT / "ops" / "__main__.py").read_text())
    done = subprocess.run(
        [str(Path(sys.base_prefix) / "bin" / "python3"), "-s", "-m", "ops", "synth"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and "run `make setup` first" in line and "Traceback" not in line


@pytest.mark.skipif(
    subprocess.run(["make", "--version"], capture_output=True, check=False).returncode != 0, reason="no make"
)
def test_make_help_fits_100_columns() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    assert len(lines) > 30
    too_wide = [line for line in lines if len(line) > 100]
    assert not too_wide, too_wide
    listed = {line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")}
    assert make_targets() - {"help"} <= listed | {"help"}


# A file of this repository named in prose or comments: docs/runbooks/ci-cd.md, platform_config/x.py.
REPO_PATH = re.compile(
    r"\b((?:docs|ops|platform_config|constructs_lib|stacks|rehearsal|tests|tools)/[\w./-]*\w)"
)


def test_every_file_a_shipped_environment_file_points_to_exists() -> None:
    """The environment files' comments (copied by `ops env add`) point only at files that exist, and
    at the page the keys are documented on (docs/configuration.md, not a README section)."""
    missing: dict[str, set[str]] = {}
    for path in sorted([*ROOT.glob("env_specific_vars/*"), *ROOT.glob("backend_configs/*")]):
        text = path.read_text(encoding="utf-8")
        for found in REPO_PATH.findall(text):
            name = found.split("#", 1)[0].rstrip(".")
            if not (ROOT / name).exists():
                missing.setdefault(name, set()).add(path.name)
        assert "Configuration reference" not in text, path.name
    assert not missing, missing


def test_the_readme_says_what_make_policy_checks_by_default() -> None:
    """`make policy` without STACK= checks every kind (ops.synth.kinds of no selection); the
    README's row says so and names no narrower default."""
    from ops import synth
    from platform_config import naming

    assert synth.kinds(None) == naming.STACK_KINDS
    (row,) = [
        line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `make policy")
    ]
    assert "default: every stack of every environment" in row, row
    assert not re.search(r"default[^|;)]*mlflow", row), row

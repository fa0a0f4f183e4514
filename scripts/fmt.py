"""``make fmt`` / ``make lint``: format Python with ruff and the environment files with ``terraform fmt``.

Usage: ``python scripts/fmt.py [--check]``

``terraform fmt`` accepts only ``.tf``/``.tfvars`` files by name, so the partial backend configs
(``backend_configs/*.config``, the same HCL attribute syntax) go through ``terraform fmt -`` on
standard input. With ``--check`` nothing is written; the exit code is 1 if anything would change.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.stack_runner import ROOT, terraform_binary

HCL_DIRS = ("env_specific_vars", "backend_configs")


def hcl_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for d in HCL_DIRS for p in (root / d).glob("*") if p.suffix in (".tfvars", ".config"))


def terraform_fmt(text: str, binary: str | None = None) -> str:
    """``text`` as ``terraform fmt`` formats it; ValueError with Terraform's message if it cannot."""
    proc = subprocess.run(
        [binary or terraform_binary(), "fmt", "-no-color", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ValueError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def format_hcl(check: bool, root: Path = ROOT, binary: str | None = None) -> list[str]:
    """Problems (check mode) or the files rewritten."""
    notes = []
    for path in hcl_files(root):
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8")
        try:
            formatted = terraform_fmt(text, binary)
        except FileNotFoundError:
            return [f"{binary or terraform_binary()} not found: install Terraform >= 1.11"]
        except ValueError as exc:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    ruff = [sys.executable, "-m", "ruff"]
    failed = False
    if args.check:
        failed |= subprocess.run([*ruff, "format", "--check", "."], cwd=ROOT, check=False).returncode != 0
    else:
        subprocess.run([*ruff, "check", "--select", "I", "--fix", "--quiet", "."], cwd=ROOT, check=False)
        subprocess.run([*ruff, "format", "."], cwd=ROOT, check=False)
    notes = format_hcl(args.check)
    for note in notes:
        print(note)
    if args.check and notes:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

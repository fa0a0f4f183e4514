"""``ops policy``: checkov over the synthesized stacks; every finding needs a recorded reason. Then
parliament over every IAM policy document (same rule, ``ops/iam_policies.py``) and cloudsplaining's
least-privilege report (actions granted on ``Resource: "*"``, by risk).

checkov 3.3.30's terraform_json runner reads no skip annotations (it passes an empty skip list to
every check), so the skips recorded on each resource (``"//": {"checkov": {"skip": [{"id",
"comment"}]}}``, written by ``constructs_lib.policy.skip_checks``) are applied here: a finding
passes only if its resource carries a skip for that check with a reason, and every recorded skip
must still match a finding (no stale suppressions).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import iam_policies, synth
from ops.runner import ROOT, CommandError, Console, execute
from platform_config.loader import load

CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
_RESOURCE_LINE = re.compile(r'^    "([a-z0-9_]+)": \{$')
_NAME_LINE = re.compile(r'^      "([A-Za-z0-9_-]+)": \{$')


@dataclass(frozen=True)
class PolicyReport:
    """What checkov found in the stacks, against the skips recorded in them."""

    stacks: tuple[str, ...]
    passed: int
    parsing_errors: int
    unexplained: tuple[str, ...]  # "stack: address: check id check name"
    stale: tuple[str, ...]  # "stack: address: check id" (a recorded skip that matches nothing)

    @property
    def ok(self) -> bool:
        return not (self.parsing_errors or self.unexplained or self.stale)

    def lines(self) -> list[str]:
        out = [f"checkov: {self.passed} passed checks in {len(self.stacks)} stack(s)"]
        if self.parsing_errors:
            out.append(f"{self.parsing_errors} file(s) checkov could not parse")
        if self.unexplained:
            out += ["checkov findings without a recorded reason:", *(f"  {u}" for u in self.unexplained)]
        if self.stale:
            out += [
                "recorded checkov skips that match no finding (remove them):",
                *(f"  {s}" for s in self.stale),
            ]
        return out


def address_by_line(text: str) -> dict[int, str]:
    """1-based line of each resource's opening brace -> its address (cdktf writes 2-space JSON)."""
    out: dict[int, str] = {}
    in_resource, rtype = False, ""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith('  "') and not line.startswith("   "):
            in_resource = line == '  "resource": {'
            continue
        if not in_resource:
            continue
        if m := _RESOURCE_LINE.match(line):
            rtype = m.group(1)
        elif m := _NAME_LINE.match(line):
            out[number] = f"{rtype}.{m.group(1)}"
    return out


def recorded_skips(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """``(address, check id) -> reason`` for every skip recorded in a stack."""
    skips: dict[tuple[str, str], str] = {}
    for rtype, resources in doc.get("resource", {}).items():
        for name, body in resources.items():
            for skip in body.get("//", {}).get("checkov", {}).get("skip", []):
                skips[(f"{rtype}.{name}", skip["id"])] = skip["comment"]
    return skips


def run_checkov(files: Sequence[Path], checkov: Path = CHECKOV) -> dict[str, Any]:
    """checkov's JSON report of the ``terraform_json`` framework over ``files``."""
    if not checkov.exists():
        raise CommandError(f"checkov is missing ({checkov}): run `make test`, which installs .venv-tools")
    args = [str(checkov), "--framework", "terraform_json", "--skip-download", "--quiet", "--compact"]
    for f in files:
        args += ["-f", str(f)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    try:
        result = execute([*args, "-o", "json"], cwd=ROOT, env=env, timeout=900)
    except subprocess.TimeoutExpired:
        raise CommandError("checkov did not finish within 900 s") from None
    if not result.stdout.strip():
        raise CommandError(f"checkov printed nothing (exit {result.returncode}): {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == "terraform_json"]
    if not isinstance(report, dict) or "results" not in report:
        raise CommandError(f"checkov's report has no results: {result.stdout[:2000]}")
    return report


def findings(outdir: Path, stacks: Sequence[str], checkov: Path = CHECKOV) -> PolicyReport:
    """Run checkov on the named stacks of ``outdir`` and apply the skips recorded in them."""
    files = {name: (outdir / "stacks" / name / "cdk.tf.json").resolve() for name in stacks}
    stack_of = {str(path): name for name, path in files.items()}
    lines = {name: address_by_line(path.read_text()) for name, path in files.items()}
    skips = {name: recorded_skips(json.loads(path.read_text())) for name, path in files.items()}
    report = run_checkov(list(files.values()), checkov)

    unexplained: list[str] = []
    used: set[tuple[str, tuple[str, str]]] = set()
    for finding in report["results"]["failed_checks"]:
        stack = stack_of[str(Path(finding["file_abs_path"]).resolve())]
        address = finding["resource"]
        if address.startswith("resource."):  # resource checks name only the block: use its line
            address = lines[stack].get(finding["file_line_range"][0], address)
        address = re.sub(r"\[\d+\]$", "", address)
        key = (address, finding["check_id"])
        if skips[stack].get(key, "").strip():
            used.add((stack, key))
        else:
            unexplained.append(f"{stack}: {address}: {finding['check_id']} {finding['check_name']}")
    stale = [
        f"{stack}: {address}: {check_id}"
        for stack, stack_skips in skips.items()
        for (address, check_id) in stack_skips
        if (stack, (address, check_id)) not in used
    ]
    summary = report["summary"]
    return PolicyReport(
        tuple(stacks),
        int(summary["passed"]),
        int(summary["parsing_errors"]),
        tuple(unexplained),
        tuple(stale),
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="checkov on the synthesized stacks: no finding without a recorded reason",
        description=__doc__,
    )
    synth.add_env_option(parser, many=True)
    synth.add_stack_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    envs = load(args.root, args.env, "--env")
    kinds = synth.kinds(args.stack)
    out = synth.synthesize(envs, kinds, synth.outdir(args.root), console)
    names = [synth.Target(k, e.name, out).name for k in kinds for e in envs]
    report = findings(out, names)
    for line in report.lines():
        console.line(line, console.out if report.ok else console.err)
    iam_ok = _iam(out, names, console)
    return 0 if report.ok and iam_ok else 1


def _iam(out: Path, names: Sequence[str], console: Console) -> bool:
    """parliament on every IAM policy document (the gate), cloudsplaining's report beside it."""
    docs = [
        d
        for name in names
        for d in iam_policies.documents(name, json.loads((out / "stacks" / name / "cdk.tf.json").read_text()))
    ]
    unexplained, stale = iam_policies.judge(iam_policies.lint(docs))
    console.line(f"parliament: {len(docs)} IAM policy documents")
    for finding in unexplained:
        console.line(f"  without a recorded reason: {finding}", console.err)
    for sid, issue in stale:
        console.line(f"  recorded exception that matches nothing (remove it): {sid} {issue}", console.err)
    for document, risks in sorted(iam_policies.least_privilege_report(docs).items()):
        for risk, actions in sorted(risks.items()):
            console.line(f"cloudsplaining: {document}: {risk}: {', '.join(actions)}")
    return not unexplained and not stale

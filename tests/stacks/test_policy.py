"""checkov on every synthesized ``mlflow-<env>``: zero findings without a recorded reason.

checkov 3.3.30's terraform_json runner reads no skip annotations (it passes an empty skip list to
every check), so this test applies the ones recorded on each resource (``"//": {"checkov":
{"skip": [{"id", "comment"}]}}``): a finding passes only if its resource carries a skip for that
check with a reason, and every recorded skip must still match a finding (no stale suppressions).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Synthesized, shipped_env_names

CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
_RESOURCE_LINE = re.compile(r'^    "([a-z0-9_]+)": \{$')
_NAME_LINE = re.compile(r'^      "([A-Za-z0-9_-]+)": \{$')


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


def run_checkov(files: list[Path]) -> dict[str, Any]:
    args = [str(CHECKOV), "--framework", "terraform_json", "--skip-download", "--quiet", "--compact"]
    for f in files:
        args += ["-f", str(f)]
    proc = subprocess.run(
        [*args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == "terraform_json"]
    assert isinstance(report, dict) and "results" in report, proc.stdout[:2000]
    return report


@pytest.mark.policy
def test_checkov_finds_nothing_unexplained_in_any_mlflow_stack(synth: Synthesized) -> None:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is missing ({CHECKOV}): run `make test`, which installs .venv-tools")
    files = {f"mlflow-{env}": synth.stack_dir(f"mlflow-{env}") / "cdk.tf.json" for env in shipped_env_names()}
    lines = {str(path.resolve()): address_by_line(path.read_text()) for path in files.values()}
    skips = {str(path.resolve()): recorded_skips(synth.stack(name)) for name, path in files.items()}

    report = run_checkov(list(files.values()))
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 300, report["summary"]

    unexplained, used = [], set()
    for finding in report["results"]["failed_checks"]:
        path = str(Path(finding["file_abs_path"]).resolve())
        address = finding["resource"]
        if address.startswith("resource."):  # resource checks name only the block: use its line
            address = lines[path].get(finding["file_line_range"][0], address)
        address = re.sub(r"\[\d+\]$", "", address)
        key = (address, finding["check_id"])
        if skips[path].get(key, "").strip():
            used.add((path, key))
        else:
            stack = next(n for n, p in files.items() if str(p.resolve()) == path)
            unexplained.append(f"{stack}: {address}: {finding['check_id']} {finding['check_name']}")
    assert not unexplained, "checkov findings without a recorded reason:\n" + "\n".join(unexplained)

    stale = [
        f"{Path(path).parent.name}: {address}: {check_id}"
        for path, stack_skips in skips.items()
        for (address, check_id) in stack_skips
        if (path, (address, check_id)) not in used
    ]
    assert not stale, "recorded checkov skips that match no finding (remove them):\n" + "\n".join(stale)


def test_a_missing_tool_venv_fails_and_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synth: Synthesized
) -> None:
    monkeypatch.setattr(
        "tests.stacks.test_mlflow_policy.CHECKOV", tmp_path / "no-such-venv" / "bin" / "checkov", raising=True
    )
    with pytest.raises(pytest.fail.Exception, match="run `make test`"):
        test_checkov_finds_nothing_unexplained_in_any_mlflow_stack(synth)


def test_skips_are_recorded_with_reasons_and_merged(tmp_path: Path) -> None:
    from cdktf import App, TerraformResource, TerraformStack

    from constructs_lib.policy import skip_checks

    app = App(outdir=str(tmp_path))
    stack = TerraformStack(app, "policy-unit")
    resource = TerraformResource(stack, "thing", terraform_resource_type="null_resource")
    skip_checks(resource, {"CKV_X_1": "first reason"})
    skip_checks(resource, {"CKV_X_2": "second reason"})
    with pytest.raises(ValueError, match="needs a reason"):
        skip_checks(resource, {"CKV_X_3": "  "})
    app.synth()
    doc = json.loads((tmp_path / "stacks" / "policy-unit" / "cdk.tf.json").read_text())
    (body,) = doc["resource"]["null_resource"].values()
    assert body["//"]["checkov"]["skip"] == [
        {"id": "CKV_X_1", "comment": "first reason"},
        {"id": "CKV_X_2", "comment": "second reason"},
    ]

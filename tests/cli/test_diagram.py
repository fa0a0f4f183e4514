"""``ops diagram``: pictures and tables from the synthesized stacks, and the committed copies."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ops import diagram
from tests.conftest import ROOT, Synthesized

MAX_NODES = 40
MAX_WIDTH_PT = 1000
MIN_FONT_PT = 10


def backend(env: str, kind: str, **extra: Any) -> dict[str, Any]:
    key = f"mlopspltf_infra/{kind}/terraform.tfstate"
    return {"backend": {"s3": {"bucket": f"mlopspltf-{env}-s3-tf-backend", "key": key, **extra}}}


def mlflow_doc(env: str, zones: list[str], cache: bool) -> dict[str, Any]:
    """A small ``mlflow-<env>`` stack: subnets per zone, a load balancer, a database in a subnet
    group, a key used by a log group and named by an IAM policy."""
    subnet = {"availability_zone": f"${{element({json.dumps(zones)}, count.index)}}", "count": len(zones)}
    resources: dict[str, dict[str, Any]] = {
        "aws_subnet": {"public": dict(subnet), "database": dict(subnet)},
        "aws_lb": {"mlflow": {"subnets": "${aws_subnet.public[*].id}"}},
        "aws_lb_listener": {"http": {"port": 80, "protocol": "HTTP"}},
        "aws_db_subnet_group": {"database": {"subnet_ids": "${aws_subnet.database[*].id}"}},
        "aws_db_instance": {
            "mlflow": {"db_subnet_group_name": "${aws_db_subnet_group.database.name}", "engine": "mysql"}
        },
        "aws_kms_key": {"mlflow": {}},
        "aws_cloudwatch_log_group": {"server": {"kms_key_id": "${aws_kms_key.mlflow.arn}"}},
        "aws_iam_policy": {"kms": {"policy": "${aws_kms_key.mlflow.arn}"}},
        "aws_security_group": {"alb": {}, "app": {}},
    }
    if cache:
        resources["aws_elasticache_replication_group"] = {"mlflow": {"engine": "redis"}}
    return {"resource": resources, "terraform": backend(env, "mlflow", use_lockfile=True)}


def fake_outdir(root: Path, docs: dict[str, dict[str, Any]]) -> Path:
    """A synthesized output as cdktf writes it: manifest.json and one cdk.tf.json per stack."""
    stacks = {}
    for name, doc in docs.items():
        path = root / "stacks" / name / "cdk.tf.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(doc))
        stacks[name] = {"synthesizedStackPath": f"stacks/{name}/cdk.tf.json"}
    (root / "manifest.json").write_text(json.dumps({"stacks": stacks}))
    return root


@pytest.fixture
def mlflow_kind(tmp_path: Path) -> diagram.Kind:
    outdir = fake_outdir(
        tmp_path,
        {
            "mlflow-dev": mlflow_doc("dev", ["eu-west-1a", "eu-west-1b"], cache=False),
            "mlflow-prd": mlflow_doc("prd", ["eu-west-1a", "eu-west-1b", "eu-west-1c"], cache=True),
        },
    )
    return diagram.kinds_of(diagram.load_stacks(outdir))["mlflow"]


def node_lines(dot: str) -> list[str]:
    return [line for line in dot.splitlines() if re.match(r'\s*"[^"]+" \[label=', line)]


def test_a_node_stands_for_a_role_and_says_where_it_exists(mlflow_kind: diagram.Kind) -> None:
    dot = diagram.mlflow_dot(mlflow_kind)
    assert 'label="security groups (2)\\nrules (0)"' in dot
    assert "ElastiCache redis" in dot and "\\nprd only" in dot
    # One node per zone and tier; a zone of one environment only says so.
    assert '"public.eu-west-1a" [label="eu-west-1a"' in dot
    assert '"database.eu-west-1c" [label="eu-west-1c\\nprd only"' in dot
    # Names of one environment are written with <env>, so both share one label.
    assert "mlopspltf-<env>-s3-tf-backend" in dot and "mlopspltf-dev" not in dot


def test_resources_sit_in_the_tier_of_the_subnets_they_name(mlflow_kind: diagram.Kind) -> None:
    assert diagram._tier_of(mlflow_kind, "alb") == "public"
    assert diagram._tier_of(mlflow_kind, "database") == "database"  # through its subnet group
    assert diagram._tier_of(mlflow_kind, "security_groups") is None


def test_the_key_points_at_what_it_encrypts_not_at_who_may_use_it(mlflow_kind: diagram.Kind) -> None:
    dot = diagram.mlflow_dot(mlflow_kind)
    dashed = [line for line in dot.splitlines() if '"key" ->' in line and "dashed" in line]
    assert any('-> "log_groups"' in line for line in dashed)
    assert not any('-> "iam"' in line for line in dashed)


def test_tasks_are_drawn_in_dependency_order() -> None:
    tasks: list[dict[str, Any]] = [
        {"task_key": "deploy", "depends_on": [{"task_key": "train"}]},
        {"task_key": "train"},
        {"task_key": "report"},
    ]
    assert [t["task_key"] for t in diagram.task_order(tasks)] == ["train", "deploy", "report"]
    with pytest.raises(ValueError, match="cycle"):
        diagram.task_order([{"task_key": "a", "depends_on": [{"task_key": "a"}]}])


def test_inventory_counts_instances_per_environment(mlflow_kind: diagram.Kind) -> None:
    table = diagram.inventory_markdown(mlflow_kind)
    assert "| `aws_subnet.public` | `aws_subnet` | 2 | 3 |" in table
    assert (
        "| `aws_elasticache_replication_group.mlflow` | `aws_elasticache_replication_group` | - | 1 |"
        in table
    )


def test_suppressions_come_from_the_resources_metadata(tmp_path: Path) -> None:
    doc = mlflow_doc("dev", ["eu-west-1a"], cache=False)
    skip = {"id": "CKV_AWS_1", "comment": "because"}
    doc["resource"]["aws_lb"]["mlflow"]["//"] = {"checkov": {"skip": [skip]}}
    kind = diagram.kinds_of(diagram.load_stacks(fake_outdir(tmp_path, {"mlflow-dev": doc})))["mlflow"]
    assert "| CKV_AWS_1 | `aws_lb.mlflow` | dev | because |" in diagram.suppressions_markdown(kind)


def test_a_stack_page_without_markers_is_an_error() -> None:
    with pytest.raises(diagram.DiagramError, match="markers"):
        diagram.splice("# no markers\n", "block", Path("docs/stacks/x.md"))
    text = f"intro\n{diagram.BEGIN_MARKER}\nold\n{diagram.END_MARKER}\nafter\n"
    assert diagram.splice(text, "new", Path("x.md")) == "intro\nnew\nafter\n"


def test_check_fails_on_a_stale_file_and_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outdir = fake_outdir(tmp_path / "out", {"mlflow-dev": mlflow_doc("dev", ["eu-west-1a"], cache=False)})
    root = tmp_path / "repo"
    page = root / "docs/stacks/mlflow.md"
    page.parent.mkdir(parents=True)
    page.write_text(f"# mlflow\n{diagram.BEGIN_MARKER}\n{diagram.END_MARKER}\n")
    files = diagram.generate(diagram.load_stacks(outdir), root)
    dot = shutil.which("dot")
    assert dot is not None, "Graphviz `dot` is not installed (apt-get install graphviz)"
    diagram.write(files, root, dot)
    args = argparse.Namespace(check=True, outdir=outdir, root=root)
    assert diagram.run(args) == 0
    (root / "docs/architecture/mlflow.dot").write_text("digraph {}\n")
    assert diagram.run(args) == 1
    assert "error: docs/architecture/mlflow.dot is stale" in capsys.readouterr().err


def test_check_without_graphviz_says_it_could_not_check_the_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    args = argparse.Namespace(check=True, outdir=tmp_path, root=tmp_path)
    assert diagram.run(args) == 1
    assert "could not check the pictures" in capsys.readouterr().err


def test_a_stale_picture_is_found(tmp_path: Path) -> None:
    dot = shutil.which("dot")
    assert dot is not None, "Graphviz `dot` is not installed (apt-get install graphviz)"
    root = tmp_path / "repo"
    (root / diagram.ARCHITECTURE_DIR).mkdir(parents=True)
    files = {diagram.ARCHITECTURE_DIR / "x.dot": 'digraph { "a" -> "b" }\n'}
    (root / diagram.ARCHITECTURE_DIR / "x.svg").write_text("<svg/>")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert diagram.stale_pictures(files, root, dot, scratch) == [diagram.ARCHITECTURE_DIR / "x.svg"]
    (root / diagram.ARCHITECTURE_DIR / "x.svg").write_text(diagram.render(dot, scratch / "x.dot"))
    assert diagram.stale_pictures(files, root, dot, scratch) == []


def test_committed_diagrams_and_tables_are_current(synth: Synthesized, tmp_path: Path) -> None:
    """The .dot files and tables, and the pictures as Graphviz draws them now (`make test` needs
    `dot`: README, Requirements)."""
    files = diagram.generate(diagram.load_stacks(synth.outdir), ROOT)
    assert diagram.stale(files, ROOT) == [], "stale: run `python -m ops diagram` and commit the result"
    dot = shutil.which("dot")
    assert dot is not None, (
        "Graphviz `dot` is not installed: the pictures cannot be checked (apt-get install graphviz)"
    )
    assert diagram.stale_pictures(files, ROOT, dot, tmp_path) == [], "stale: run `python -m ops diagram`"
    for path, text in files.items():
        if path.suffix == ".dot":
            assert len(node_lines(text)) <= MAX_NODES, f"{path}: more than {MAX_NODES} nodes"


@pytest.mark.parametrize("kind", ["bootstrap", "mlflow", "databricks"])
def test_rendered_diagram_fits_a_page_and_is_legible(kind: str) -> None:
    source = ROOT / diagram.ARCHITECTURE_DIR / f"{kind}.dot"
    dot = shutil.which("dot")
    assert dot is not None, "Graphviz `dot` is not installed (apt-get install graphviz)"
    svg = diagram.render(dot, source)
    size = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    assert size is not None
    assert float(size.group(1)) <= MAX_WIDTH_PT
    scale = re.search(r'<g id="graph0" class="graph" transform="scale\(([\d.]+) ([\d.]+)\)', svg)
    assert scale is not None
    fonts = [float(f) * float(scale.group(1)) for f in re.findall(r'font-size="([\d.]+)"', svg)]
    assert fonts and min(fonts) >= MIN_FONT_PT

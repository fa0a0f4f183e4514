"""``make diagram`` (scripts/diagram.py): graphs from the synthesized JSON, and the checked-in docs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from scripts import diagram
from tests.conftest import Synthesized

STACK: dict[str, Any] = {
    "data": {
        "aws_iam_policy_document": {
            "read": {"statement": [{"resources": ["${aws_s3_bucket.artifacts.arn}/*"]}]}
        },
        "aws_caller_identity": {"me": {}},
    },
    "resource": {
        "aws_s3_bucket": {"artifacts": {"bucket": "b", "//": {"metadata": {"path": "${aws_kms_key.k.arn}"}}}},
        "aws_kms_key": {"k": {"policy": "${data.aws_caller_identity.me.account_id}"}},
        "aws_iam_policy": {"read": {"policy": "${data.aws_iam_policy_document.read.json}"}},
        "aws_subnet": {"private": {"count": 2, "cidr_block": "${cidrsubnet(var.x, 8, count.index)}"}},
        "aws_instance": {
            "app": {
                "subnet_id": "${element(aws_subnet.private.*.id, 0)}",
                "depends_on": ["aws_iam_policy.read"],
                "tags": {"Name": "${aws_s3_bucket.artifacts.bucket}-app"},
            }
        },
        "databricks_job": {"train": {"name": "train"}},
    },
}


def test_edges_follow_references_through_data_sources_and_depends_on() -> None:
    graph = diagram.build_graph(STACK)
    assert set(graph.nodes) == {
        "aws_s3_bucket.artifacts",
        "aws_kms_key.k",
        "aws_iam_policy.read",
        "aws_subnet.private",
        "aws_instance.app",
        "databricks_job.train",
    }
    assert graph.edges == {
        ("aws_iam_policy.read", "aws_s3_bucket.artifacts"),  # through the policy document
        ("aws_instance.app", "aws_subnet.private"),
        ("aws_instance.app", "aws_iam_policy.read"),  # depends_on
        ("aws_instance.app", "aws_s3_bucket.artifacts"),
    }
    # Metadata under "//" is not a reference; a data source leading nowhere adds no edge.
    assert not any(a == "aws_s3_bucket.artifacts" for a, _ in graph.edges)
    assert graph.nodes["aws_subnet.private"].label == "aws_subnet.private [count]"


def test_resources_are_grouped_by_tier_and_service() -> None:
    assert diagram.service_of("aws_s3_bucket_policy") == "S3"
    assert diagram.service_of("aws_vpc_security_group_ingress_rule") == "security groups"
    assert diagram.service_of("aws_vpc_endpoint") == "VPC endpoints"
    assert diagram.service_of("aws_lb_listener") == "load balancer"
    assert diagram.service_of("databricks_permissions") == "access control"
    assert diagram.service_of("aws_glue_job") == "aws glue"
    assert diagram.tier_of("RDS") == "data"
    assert diagram.tier_of("aws glue") == "other"
    tiers = [tier for tier, _ in diagram.build_graph(STACK).grouped()]
    assert tiers == ["edge and network", "compute", "data", "security", "Databricks workspace"]


def test_mermaid_and_dot_text() -> None:
    graph = diagram.build_graph(STACK)
    text = diagram.mermaid(graph)
    assert text.startswith("flowchart LR\n")
    assert '  subgraph t_data["data"]' in text
    assert '      n_aws_s3_bucket__artifacts["aws_s3_bucket.artifacts"]' in text
    assert "  n_aws_instance__app --> n_aws_subnet__private" in text
    assert text.count(" --> ") == len(graph.edges)
    dot = diagram.dot(graph, "demo")
    assert '"aws_instance.app" -> "aws_subnet.private";' in dot
    assert "subgraph cluster_t_data {" in dot


def test_identical_stacks_share_a_diagram() -> None:
    other: dict[str, Any] = {"resource": {"aws_s3_bucket": {"artifacts": {}}}}
    items = diagram.diagrams(
        {"mlflow-dev": STACK, "mlflow-tst": STACK, "mlflow-prd": other, "bootstrap-dev": other}
    )
    assert [(d.slug, d.stacks) for d in items] == [
        ("bootstrap", ("bootstrap-dev",)),
        ("mlflow-dev-tst", ("mlflow-dev", "mlflow-tst")),
        ("mlflow-prd", ("mlflow-prd",)),
    ]
    markdown = diagram.render_markdown(items)
    assert "## mlflow-dev-tst" in markdown and markdown.count("```mermaid") == 3


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")
def test_svgs_carry_the_hash_of_their_graph(tmp_path: Path) -> None:
    items = diagram.diagrams({"bootstrap-dev": STACK})
    (path,) = diagram.write_svgs(items, tmp_path, str(shutil.which("dot")))
    assert path.name == "bootstrap.svg" and "<svg" in path.read_text()
    assert diagram.stale_svgs(items, tmp_path) == []
    changed = diagram.diagrams({"bootstrap-dev": {"resource": {"aws_s3_bucket": {"x": {}}}}})
    assert diagram.stale_svgs(changed, tmp_path) == ["bootstrap.svg: drawn from an older graph"]
    (tmp_path / "gone.svg").write_text("<svg/>")
    assert "gone.svg: no such diagram any more" in diagram.stale_svgs(items, tmp_path)


def test_checked_in_architecture_doc_is_current(synth: Synthesized) -> None:
    items = diagram.diagrams(diagram.load_stacks(synth.outdir))
    expected = diagram.render_markdown(items)
    current = diagram.DOC.read_text() if diagram.DOC.exists() else ""
    assert current == expected, "docs/architecture.md is stale: run `make diagram` and commit it"
    assert diagram.stale_svgs(items, diagram.SVG_DIR) == [], "stale SVGs: run `make diagram`"
    assert {s for d in items for s in d.stacks} == set(synth.stack_names())

"""Issue 24 (6): plans by the plan principal are empty after the deploy principal applied.

Provider 1.99.0's ``databricks_permissions`` apply and Read, ported line by line (no provider binary
runs here), over recorded ``GET /api/2.0/permissions/<type>/<id>`` answers:

* apply (``permissions/permission_definitions.go`` ``addOwnerPermissionIfNeeded``): for an object
  type that has ``IS_OWNER`` (jobs), an ACL without one gets ``{user_name: <applier>, IS_OWNER}``
  appended; the PUT replaces every direct entry.
* Read (``prepareResponse``): drops the caller's own entry unless the prior state holds it, the
  ``admins`` group, and every inherited permission; keeps everything else as it comes.
* ``access_control`` is a set hashed on its non-empty fields, so state and configuration compare
  as sets.

A plan shows a change when what the plan principal reads differs from the configuration.
"""

from __future__ import annotations

from typing import Any

import pytest

from platform_config.loader import Environment
from tests.conftest import Synthesized, shipped_env_names

KINDS = ("user_name", "service_principal_name", "group_name")
Entry = frozenset[tuple[str, str]]


def entry(acl: dict[str, str]) -> Entry:
    return frozenset((k, v) for k, v in acl.items() if v)


def applied_acl(config: list[dict[str, str]], applier: str, has_owner_level: bool) -> list[dict[str, str]]:
    """The direct ACL after the applier's PUT (``addOwnerPermissionIfNeeded``)."""
    acl = list(config)
    if has_owner_level and not any(a["permission_level"] == "IS_OWNER" for a in acl):
        acl.append({"user_name": applier, "permission_level": "IS_OWNER"})
    return acl


def recorded_answer(direct: list[dict[str, str]], object_type: str) -> dict[str, Any]:
    """What the permissions API answers: the direct entries, plus admins' inherited CAN_MANAGE."""
    entries = [
        {
            **{k: a[k] for k in KINDS if k in a},
            "all_permissions": [{"permission_level": a["permission_level"], "inherited": False}],
        }
        for a in direct
    ]
    entries.append({"group_name": "admins", "all_permissions": [
        {"permission_level": "CAN_MANAGE", "inherited": True, "inherited_from_object": [f"/{object_type}s/"]}]})  # fmt: skip
    return {"object_type": object_type, "access_control_list": entries}


def provider_read(answer: dict[str, Any], prior: set[Entry], me: str) -> set[Entry]:
    """``prepareResponse`` of provider 1.99.0."""
    prior_has_me = any(("user_name", me) in e or ("service_principal_name", me) in e for e in prior)
    read: set[Entry] = set()
    for acl in answer["access_control_list"]:
        if me in (acl.get("user_name"), acl.get("service_principal_name")) and not prior_has_me:
            continue
        if acl.get("group_name") == "admins":
            continue
        for permission in acl["all_permissions"]:
            if permission["inherited"]:
                continue
            read.add(
                entry(
                    {
                        **{k: acl[k] for k in KINDS if k in acl},
                        "permission_level": permission["permission_level"],
                    }
                )
            )
    return read


def after_apply_and_plan(
    config: list[dict[str, str]], deploy: str, plan: str, object_type: str
) -> set[Entry]:
    """Apply by the deploy principal (its Read stores the state), then what the plan principal reads."""
    direct = applied_acl(config, deploy, object_type == "job")
    answer = recorded_answer(direct, object_type)
    state = provider_read(answer, {entry(a) for a in config}, deploy)  # Read after Create: prior = planned
    return provider_read(answer, state, plan)


def resources(synth: Synthesized, e: Environment) -> list[tuple[str, str, list[dict[str, str]]]]:
    permissions = synth.resources(f"databricks-{e.name}", "databricks_permissions")
    out = []
    for name, resource in permissions.items():
        object_type = (
            "job" if "job_id" in resource else "experiment" if "experiment_id" in resource else "directory"
        )
        out.append((name, object_type, resource["access_control"]))
    return out


@pytest.mark.parametrize("env", shipped_env_names())
def test_the_plan_principal_reads_back_exactly_what_is_declared(synth: Synthesized, env: str) -> None:
    e = synth.env(env)
    names = e.names.databricks
    found = resources(synth, e)
    assert {name for name, _, _ in found} >= {"job_model_training_job", "job_batch_inference_job"}
    for name, object_type, config in found:
        declared = {entry(a) for a in config}
        read_by_plan = after_apply_and_plan(config, names.deploy_principal, names.plan_principal, object_type)
        assert read_by_plan == declared, f"{name}: a plan by {names.plan_principal} shows a change"
        # The deploy principal's own plan too.
        direct = applied_acl(config, names.deploy_principal, object_type == "job")
        assert (
            provider_read(recorded_answer(direct, object_type), declared, names.deploy_principal) == declared
        )


def test_the_recorded_read_holds_the_deploy_principals_is_owner(synth: Synthesized) -> None:
    """dev: the deploy principal owns the jobs, declared; the plan principal reads it back."""
    names = synth.env("dev").names.databricks
    config = synth.resources("databricks-dev", "databricks_permissions")["job_model_training_job"][
        "access_control"
    ]
    answer = recorded_answer(applied_acl(config, names.deploy_principal, True), "job")
    owner = {
        "service_principal_name": names.deploy_principal,
        "all_permissions": [{"permission_level": "IS_OWNER", "inherited": False}],
    }
    assert owner in answer["access_control_list"]
    assert entry(
        {"service_principal_name": names.deploy_principal, "permission_level": "IS_OWNER"}
    ) in provider_read(answer, {entry(a) for a in config}, names.plan_principal)


def test_finding_6_todays_acl_shows_a_change_in_every_plan(synth: Synthesized) -> None:
    """Today's job ACL (CAN_VIEW for the groups only): the deploy principal's apply makes it the
    owner, its own Read drops that entry, and the plan principal reads it back: a change in every
    PR plan and drift check."""
    names = synth.env("tst").names.databricks
    today = [{"group_name": "users", "permission_level": "CAN_VIEW"}]
    read = after_apply_and_plan(today, names.deploy_principal, names.plan_principal, "job")
    assert read - {entry(a) for a in today} == {
        entry({"user_name": names.deploy_principal, "permission_level": "IS_OWNER"})
    }

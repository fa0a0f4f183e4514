"""Acknowledged policy findings: a checkov skip with its reason, recorded on the resource itself."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from cdktf import TerraformResource

# Skips collected per resource object (add_override on the same key replaces, not merges). Keyed by
# the object, not its construct path: another App may build a different resource at the same path.
_SKIPS: WeakKeyDictionary[TerraformResource, dict[str, str]] = WeakKeyDictionary()


def skip_checks(resource: TerraformResource, reasons: dict[str, str]) -> None:
    """Add checkov skips (``check id -> reason``) to the resource's ``//`` metadata.

    checkov's terraform_json parser reads ``"//": {"checkov": {"skip": [...]}}`` on a resource.
    """
    for check_id, reason in reasons.items():
        if not reason.strip():
            raise ValueError(f"checkov skip {check_id} needs a reason")
    skips = _SKIPS.setdefault(resource, {})
    skips.update(reasons)
    resource.add_override(
        "//.checkov.skip",
        [{"id": check_id, "comment": reason} for check_id, reason in sorted(skips.items())],
    )

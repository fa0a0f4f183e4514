"""Terraform expressions built from resource objects, for what cdktf's tokens cannot express.

cdktf has no token for a splat over a counted resource (``aws_subnet.public[*].id``), and wrapping
a reference in ``Fn`` nests ``${}``. These helpers write the expression from the resource's own
type and logical id, so an ``override_logical_id`` change can never leave a stale address behind.
"""

from __future__ import annotations

from cdktf import TerraformResource, Token


def address(resource: TerraformResource) -> str:
    """``<type>.<logical id>`` of ``resource`` (e.g. ``aws_subnet.public``), as written inside HCL."""
    return f"{resource.terraform_resource_type}.{resource.friendly_unique_id}"


def splat(resource: TerraformResource, attribute: str) -> str:
    """``<address>[*].<attribute>``: the attribute of every instance of a counted resource (HCL)."""
    return f"{address(resource)}[*].{attribute}"


def all_of(resource: TerraformResource, attribute: str) -> list[str]:
    """Every instance's ``attribute`` of a counted resource, as a list token."""
    return Token.as_list(f"${{{splat(resource, attribute)}}}")


def per_index(resource: TerraformResource, attribute: str) -> str:
    """The counted ``resource``'s ``attribute`` picked by the referencing resource's ``count.index``,
    wrapping around (``element``) so that one NAT gateway can serve every zone."""
    return f"${{element({splat(resource, attribute)}, count.index)}}"

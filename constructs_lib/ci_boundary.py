"""Every IAM role of a stack that the CI deploy role applies carries the environment's permissions
boundary (``aws_iam_policy.workload_boundary`` of ``bootstrap-<env>``): the deploy role may only
create roles that do (``iam:PermissionsBoundary``), so a role it creates can never do more than the
boundary allows, whatever policy it is given."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.iam_role import IamRole
from constructs import Construct

from constructs_lib.account import Account
from platform_config import naming


def workload_boundary_arn(account: Account, env: str) -> str:
    """Known by name: the boundary exists once ``bootstrap-<env>`` is applied."""
    return f"arn:{account.partition}:iam::{account.account_id}:policy/{naming.workload_boundary(env)}"


def bound_roles(scope: Construct, boundary_arn: str) -> int:
    """Set ``permissions_boundary`` on every role under ``scope``; returns how many."""
    roles = [c for c in scope.node.find_all() if isinstance(c, IamRole)]
    for role in roles:
        role.permissions_boundary = boundary_arn
    return len(roles)

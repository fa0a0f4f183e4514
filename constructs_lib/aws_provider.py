"""The AWS provider of a stack, with the platform's default tags on every resource."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct


def aws_provider(
    scope: Construct, region: str, tags: dict[str, str], alias: str | None = None
) -> AwsProvider:
    """The stack's default provider, or with ``alias`` (``aws.<alias>``) one for another region."""
    return AwsProvider(
        scope,
        "aws" if alias is None else f"aws_{alias}",
        alias=alias,
        region=region,
        default_tags=[AwsProviderDefaultTags(tags=tags)],
    )

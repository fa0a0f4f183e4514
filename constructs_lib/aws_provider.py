"""The AWS provider of a stack, with the platform's default tags on every resource."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct


def aws_provider(scope: Construct, region: str, tags: dict[str, str]) -> AwsProvider:
    return AwsProvider(
        scope,
        "aws",
        region=region,
        default_tags=[AwsProviderDefaultTags(tags=tags)],
    )

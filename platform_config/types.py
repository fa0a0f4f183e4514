"""Shared field types and the base model of every config object (frozen, unknown keys rejected)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictInt,
    StrictStr,
)

AWS_REGIONS = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
        "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
        "ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ca-central-1", "ca-west-1",
        "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1",
        "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1", "mx-central-1",
        "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
        "us-gov-east-1", "us-gov-west-1",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Kind:
    """What the configuration reference calls a constrained type (pydantic ignores this marker)."""

    name: str


class Frozen(BaseModel):
    """Base of every config model: immutable, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _region(value: str) -> str:
    if value not in AWS_REGIONS:
        raise ValueError(f"{value!r} is not an AWS region (e.g. eu-west-1, us-east-1)")
    return value


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid CIDR block ({exc})") from None
    if net.version != 4:
        raise ValueError(f"{value!r}: only IPv4 CIDR blocks are supported")
    return value


Region = Annotated[StrictStr, AfterValidator(_region), Kind("AWS region")]
Cidr = Annotated[StrictStr, AfterValidator(_cidr), Kind("IPv4 CIDR")]
Str = StrictStr
Bool = StrictBool
Int = StrictInt

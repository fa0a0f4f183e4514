"""The MLflow instances' run-time settings: one list that creates the SSM parameters and tells the
boot script (``user_data.render``) which parameters to read, so the two cannot drift apart.

None of them is a secret (hosts, ports, names, ARNs; the secrets themselves are in Secrets Manager,
read at start): plain ``String`` parameters, which anyone planning the stack may read without a
key (the provider reads every parameter with decryption)."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from constructs_lib.policy import skip_checks


@dataclass(frozen=True)
class Setting:
    name: str  # parameter <path>/<name>, address aws_ssm_parameter.<name>
    value: str


@dataclass(frozen=True)
class InstanceSettingsProps:
    parameter_path: str
    settings: tuple[Setting, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.settings]
        if len(set(names)) != len(names):
            raise ValueError(f"instance settings: duplicate names in {names}")


@dataclass(frozen=True)
class InstanceSettings:
    """The created parameters (to depend on) and their names, in the order the script reads them."""

    names: tuple[str, ...]
    parameters: tuple[SsmParameter, ...]


def instance_settings(scope: Construct, props: InstanceSettingsProps) -> InstanceSettings:
    """One ``aws_ssm_parameter.<name>`` (``String``) per setting.

    Created directly in ``scope`` (not in a construct of their own), so their construct paths stay
    ``<stack>/param_<name>``.
    """
    parameters = tuple(_parameter(scope, props, s) for s in props.settings)
    return InstanceSettings(tuple(s.name for s in props.settings), parameters)


def _parameter(scope: Construct, props: InstanceSettingsProps, setting: Setting) -> SsmParameter:
    param = SsmParameter(
        scope,
        f"param_{setting.name}",
        name=f"{props.parameter_path}/{setting.name}",
        type="String",
        value=setting.value,
        description=f"MLflow setting {setting.name}, read by the instances at start",
    )
    param.override_logical_id(setting.name)
    skip_checks(
        param,
        {
            "CKV2_AWS_34": "holds no secret (a host, port, name or ARN; the secrets themselves are in Secrets "
            "Manager under the stack's key): a plain String, which a plan reads without decrypting"
        },
    )
    return param

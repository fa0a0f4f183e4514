"""The MLflow instances' run-time settings: one list that creates the SSM parameters and tells the
boot script (``user_data.render``) which parameters to read, so the two cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct


@dataclass(frozen=True)
class Setting:
    name: str  # parameter <path>/<name>, address aws_ssm_parameter.<name>
    value: str


@dataclass(frozen=True)
class InstanceSettingsProps:
    parameter_path: str
    kms_key_arn: str
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
    """One ``aws_ssm_parameter.<name>`` (SecureString under the stack's key) per setting.

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
        type="SecureString",
        key_id=props.kms_key_arn,
        value=setting.value,
        description=f"MLflow setting {setting.name}, read by the instances at start",
    )
    param.override_logical_id(setting.name)
    return param

"""The MLflow host's certificate and DNS name, created in a public Route 53 zone: no manual step for
a new environment's HTTPS.

``aws_acm_certificate.mlflow`` (DNS validation), its validation record
``aws_route53_record.mlflow_validation`` and ``aws_acm_certificate_validation.mlflow``, which the
HTTPS listener names, so the listener is created only once the certificate is issued (ACM gives up
after 72 hours; with Route 53 it takes minutes). ``alias_record`` adds ``aws_route53_record.mlflow``,
the host's A record pointing at the load balancer.

One name, no SANs: ``domain_validation_options`` is a set with one element, read as
``tolist(...)[0]`` (with several names the set's order would not be the names' order). The zone
must be public (ACM validates through public DNS): the zone's data source fails the plan otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.acm_certificate import AcmCertificate
from cdktf_cdktf_provider_aws.acm_certificate_validation import AcmCertificateValidation
from cdktf_cdktf_provider_aws.data_aws_route53_zone import DataAwsRoute53Zone
from cdktf_cdktf_provider_aws.route53_record import Route53Record, Route53RecordAlias
from constructs import Construct


@dataclass(frozen=True)
class DnsCertificateProps:
    hosted_zone_id: str
    host_name: str


class DnsCertificate(Construct):
    """Handles: ``certificate_arn`` (of the validation: issued), ``zone_id``."""

    def __init__(self, scope: Construct, construct_id: str, props: DnsCertificateProps) -> None:
        super().__init__(scope, construct_id)
        self._zone = DataAwsRoute53Zone(self, "zone", zone_id=props.hosted_zone_id)
        self._zone.override_logical_id("mlflow")
        # A private zone's records are invisible to ACM: the certificate would wait 72 hours.
        self._zone.add_override(
            "lifecycle.postcondition",
            [
                {
                    "condition": "${!self.private_zone}",
                    "error_message": f"mlflow.load_balancer.hosted_zone_id: {props.hosted_zone_id} is a "
                    "private zone; ACM validates certificates through public DNS",
                }
            ],
        )
        certificate = AcmCertificate(
            self,
            "certificate",
            domain_name=props.host_name,
            validation_method="DNS",
            key_algorithm="RSA_2048",
            # A new name gets a new certificate before the listener lets go of the old one.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        certificate.override_logical_id("mlflow")
        option = certificate.domain_validation_options.get(0)
        record = Route53Record(
            self,
            "validation",
            zone_id=self._zone.zone_id,  # after the zone's check that it is public
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=60,
            # ACM gives a re-created certificate of the same name the same record.
            allow_overwrite=True,
        )
        record.override_logical_id("mlflow_validation")
        self._validation = AcmCertificateValidation(
            self,
            "validation_done",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
        )
        self._validation.override_logical_id("mlflow")

    @property
    def certificate_arn(self) -> str:
        return self._validation.certificate_arn

    @property
    def zone_id(self) -> str:
        return self._zone.zone_id


def alias_record(
    scope: Construct, zone_id: str, host_name: str, lb_dns_name: str, lb_zone_id: str
) -> Route53Record:
    """``aws_route53_record.mlflow``: ``host_name`` -> the load balancer (an alias A record)."""
    record = Route53Record(
        scope,
        "host_record",
        zone_id=zone_id,
        name=host_name,
        type="A",
        alias=Route53RecordAlias(name=lb_dns_name, zone_id=lb_zone_id, evaluate_target_health=True),
    )
    record.override_logical_id("mlflow")
    return record

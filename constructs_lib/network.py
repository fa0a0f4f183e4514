"""The MLflow platform's VPC: public, private and database subnets per zone, NAT, flow logs,
VPC endpoints. Per-zone resources use ``count`` so addresses read ``aws_subnet.public[0]``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import Fn, TerraformCount, TerraformResource, Token
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route_table import RouteTable, RouteTableRoute
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from constructs import Construct

from constructs_lib.policy import skip_checks
from constructs_lib.references import address, all_of, per_index

# Interface endpoints: Session Manager (ssm, ssmmessages, ec2messages), the EC2 API, CloudWatch
# Logs and Secrets Manager are reached without the NAT gateway.
INTERFACE_ENDPOINTS = ("ssm", "ssmmessages", "ec2messages", "ec2", "logs", "secretsmanager")


def assume_role_policy(service: str, condition: dict[str, Any] | None = None) -> str:
    """A trust policy for ``service``; ``condition`` narrows it (e.g. to this account's resources)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class NetworkProps:
    name: str
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    public_subnet_cidrs: tuple[str, ...]
    private_subnet_cidrs: tuple[str, ...]
    database_subnet_cidrs: tuple[str, ...]
    single_nat_gateway: bool
    flow_log_group_arn: str
    # For the flow-log role's trust: only this account's flow logs may assume it.
    partition: str
    region: str
    account_id: str


class Network(Construct):
    """VPC ``aws_vpc.main`` and everything routing-related in it."""

    def __init__(self, scope: Construct, construct_id: str, props: NetworkProps) -> None:
        super().__init__(scope, construct_id)
        name = props.name
        zones = list(props.availability_zones)
        n = len(zones)
        nat_count = 1 if props.single_nat_gateway else n
        self.zone_count = n

        self._vpc = Vpc(
            self,
            "vpc",
            cidr_block=props.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": name},
        )
        self._vpc.override_logical_id("main")

        # Managed with no rules: nothing can use the default group by accident.
        DefaultSecurityGroup(
            self, "default_sg", vpc_id=self._vpc.id, tags={"Name": f"{name}-default"}
        ).override_logical_id("default")

        igw = InternetGateway(self, "igw", vpc_id=self._vpc.id, tags={"Name": name})
        igw.override_logical_id("main")

        def subnets(tier: str, cidrs: tuple[str, ...]) -> Subnet:
            count = TerraformCount.of(n)
            subnet = Subnet(
                self,
                f"{tier}_subnet",
                count=count,
                vpc_id=self._vpc.id,
                cidr_block=Fn.element(list(cidrs), Token.as_number(count.index)),
                availability_zone=Fn.element(zones, Token.as_number(count.index)),
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-{tier}-${{count.index + 1}}", "Tier": tier},
            )
            subnet.override_logical_id(tier)
            return subnet

        tiers = {
            "public": subnets("public", props.public_subnet_cidrs),
            "private": subnets("private", props.private_subnet_cidrs),
            "database": subnets("database", props.database_subnet_cidrs),
        }
        self.public_subnet_ids = all_of(tiers["public"], "id")
        self.private_subnet_ids = all_of(tiers["private"], "id")
        self.database_subnet_ids = all_of(tiers["database"], "id")

        nat_n = TerraformCount.of(nat_count)
        eip = Eip(
            self, "nat_eip", count=nat_n, domain="vpc", tags={"Name": f"{name}-nat-${{count.index + 1}}"}
        )
        eip.override_logical_id("nat")
        if nat_count > 1:
            # checkov links only nat[0] to its gateway through the count expression.
            skip_checks(
                eip,
                {
                    "CKV2_AWS_19": "these addresses belong to the NAT gateways (aws_nat_gateway.main), not to instances"
                },
            )
        nat_n2 = TerraformCount.of(nat_count)
        nat = NatGateway(
            self,
            "nat",
            count=nat_n2,
            allocation_id=per_index(eip, "id"),
            subnet_id=per_index(tiers["public"], "id"),
            tags={"Name": f"{name}-nat-${{count.index + 1}}"},
            depends_on=[igw],
        )
        nat.override_logical_id("main")
        self.nat_gateway_count = nat_count

        public_rt = RouteTable(
            self,
            "public_rt",
            vpc_id=self._vpc.id,
            route=[RouteTableRoute(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{name}-public"},
        )
        public_rt.override_logical_id("public")
        private_n = TerraformCount.of(n)
        private_rt = RouteTable(
            self,
            "private_rt",
            count=private_n,
            vpc_id=self._vpc.id,
            # element() wraps around: with a single NAT gateway every zone uses nat[0].
            route=[
                RouteTableRoute(
                    cidr_block="0.0.0.0/0",
                    nat_gateway_id=per_index(nat, "id"),
                )
            ],
            tags={"Name": f"{name}-private-${{count.index + 1}}"},
        )
        private_rt.override_logical_id("private")
        # No route out: the database tier only talks inside the VPC.
        database_rt = RouteTable(self, "database_rt", vpc_id=self._vpc.id, tags={"Name": f"{name}-database"})
        database_rt.override_logical_id("database")

        associations = {}
        for tier, table_id in (
            ("public", public_rt.id),
            ("private", per_index(private_rt, "id")),
            ("database", database_rt.id),
        ):
            assoc = RouteTableAssociation(
                self,
                f"{tier}_rta",
                count=TerraformCount.of(n),
                subnet_id=per_index(tiers[tier], "id"),
                route_table_id=table_id,
            )
            assoc.override_logical_id(tier)
            associations[tier] = assoc
        self._private_rt = private_rt
        self._private_egress: tuple[TerraformResource, ...] = (nat, private_rt, associations["private"])
        self._database_rt = database_rt

        flow_role = IamRole(
            self,
            "flow_log_role",
            name=f"{name}-flow-logs",
            assume_role_policy=assume_role_policy(
                "vpc-flow-logs.amazonaws.com",
                {
                    "StringEquals": {"aws:SourceAccount": props.account_id},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{props.partition}:ec2:{props.region}:{props.account_id}:vpc-flow-log/*"
                    },
                },
            ),
        )
        flow_role.override_logical_id("vpc_flow_logs")
        IamRolePolicy(
            self,
            "flow_log_policy",
            role=flow_role.id,
            name="write-flow-logs",
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "logs:CreateLogStream",
                                "logs:PutLogEvents",
                                "logs:DescribeLogStreams",
                            ],
                            "Resource": f"{props.flow_log_group_arn}:*",
                        }
                    ],
                }
            ),
        ).override_logical_id("vpc_flow_logs")
        flow = FlowLog(
            self,
            "flow_log",
            vpc_id=self._vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=props.flow_log_group_arn,
            iam_role_arn=flow_role.arn,
            max_aggregation_interval=60,
        )
        flow.override_logical_id("main")

    def add_endpoints(self, region: str, security_group_id: str) -> dict[str, VpcEndpoint]:
        """S3 gateway endpoint on the private and database route tables; interface endpoints in
        the private subnets, reachable from ``security_group_id``'s members. By service name."""
        s3 = VpcEndpoint(
            self,
            "s3_endpoint",
            vpc_id=self._vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=Token.as_list(
                f"${{concat({address(self._private_rt)}[*].id, [{address(self._database_rt)}.id])}}"
            ),
            tags={"Name": "s3"},
        )
        s3.override_logical_id("s3")
        endpoints = {"s3": s3}
        for service in INTERFACE_ENDPOINTS:
            ep = VpcEndpoint(
                self,
                f"{service}_endpoint",
                vpc_id=self._vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[security_group_id],
                private_dns_enabled=True,
                tags={"Name": service},
            )
            ep.override_logical_id(service)
            endpoints[service] = ep
        return endpoints

    @property
    def vpc_id(self) -> str:
        return self._vpc.id

    @property
    def private_egress(self) -> tuple[TerraformResource, ...]:
        """The private subnets' way out (NAT gateways, route tables, their associations): to
        depend on where something in those subnets must reach the internet as soon as it exists."""
        return self._private_egress

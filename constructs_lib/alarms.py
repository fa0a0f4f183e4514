"""The MLflow platform's alarms, as one table of specs built from the handles of the load
balancer, the database and the cache (``Alerts.add_alarms`` creates them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarmMetricQuery

from constructs_lib.observability import AlarmSpec

GIB = 1024**3


@dataclass(frozen=True)
class CacheMembers:
    """A replication group's members, one alarm each: ``dimensions`` uses ``count.index``."""

    count: int
    dimensions: Mapping[str, str]


@dataclass(frozen=True)
class MlflowAlarmsProps:
    prefix: str  # alarm names are <prefix>-<what>
    http_5xx_rate_percent: int
    db_cpu_percent: int
    db_free_storage_gb: int
    cache_memory_percent: int
    target_dimensions: Mapping[str, str]  # load balancer and target group
    load_balancer_dimensions: Mapping[str, str]
    database_dimensions: Mapping[str, str]
    cache: CacheMembers | None = None


def _alb_sum(query_id: str, metric: str, dimensions: Mapping[str, str]) -> CloudwatchMetricAlarmMetricQuery:
    return CloudwatchMetricAlarmMetricQuery(
        id=query_id,
        return_data=False,
        metric={
            "namespace": "AWS/ApplicationELB",
            "metric_name": metric,
            "dimensions": dict(dimensions),
            "period": 300,
            "stat": "Sum",
        },
    )


def mlflow_alarms(p: MlflowAlarmsProps) -> tuple[AlarmSpec, ...]:
    lb = dict(p.load_balancer_dimensions)
    specs = [
        AlarmSpec(
            "alb_unhealthy_hosts",
            "MLflow: at least one instance fails the /health check",
            f"{p.prefix}-unhealthy-hosts",
            evaluation_periods=5,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            namespace="AWS/ApplicationELB",
            metric_name="UnHealthyHostCount",
            dimensions=p.target_dimensions,
            statistic="Maximum",
            period=60,
        ),
        AlarmSpec(
            "alb_no_healthy_hosts",
            "MLflow is down: no instance passes the /health check",
            f"{p.prefix}-no-healthy-hosts",
            evaluation_periods=3,
            threshold=1,
            comparison_operator="LessThanThreshold",
            treat_missing_data="breaching",
            namespace="AWS/ApplicationELB",
            metric_name="HealthyHostCount",
            dimensions=p.target_dimensions,
            statistic="Minimum",
            period=60,
        ),
        AlarmSpec(
            "alb_5xx_rate",
            f"MLflow: more than {p.http_5xx_rate_percent}% of requests answered with 5xx",
            f"{p.prefix}-5xx-rate",
            evaluation_periods=3,
            threshold=p.http_5xx_rate_percent,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            metric_query=(
                _alb_sum("target_5xx", "HTTPCode_Target_5XX_Count", lb),
                _alb_sum("elb_5xx", "HTTPCode_ELB_5XX_Count", lb),
                _alb_sum("requests", "RequestCount", lb),
                CloudwatchMetricAlarmMetricQuery(
                    id="rate",
                    expression="100 * (FILL(target_5xx, 0) + FILL(elb_5xx, 0)) / requests",
                    label="5xx responses (% of requests)",
                    return_data=True,
                ),
            ),
        ),
        AlarmSpec(
            "rds_cpu",
            f"MLflow database CPU above {p.db_cpu_percent}%",
            f"{p.prefix}-db-cpu",
            evaluation_periods=3,
            threshold=p.db_cpu_percent,
            comparison_operator="GreaterThanThreshold",
            namespace="AWS/RDS",
            metric_name="CPUUtilization",
            dimensions=p.database_dimensions,
            statistic="Average",
            period=300,
        ),
        AlarmSpec(
            "rds_free_storage",
            f"MLflow database has less than {p.db_free_storage_gb} GiB free storage",
            f"{p.prefix}-db-free-storage",
            evaluation_periods=1,
            threshold=p.db_free_storage_gb * GIB,
            comparison_operator="LessThanThreshold",
            namespace="AWS/RDS",
            metric_name="FreeStorageSpace",
            dimensions=p.database_dimensions,
            statistic="Minimum",
            period=300,
        ),
    ]
    if p.cache is not None:
        specs.append(
            AlarmSpec(
                "redis_memory",
                f"MLflow Redis node above {p.cache_memory_percent}% memory",
                f"{p.prefix}-redis-memory-${{count.index + 1}}",
                evaluation_periods=2,
                threshold=p.cache_memory_percent,
                comparison_operator="GreaterThanThreshold",
                namespace="AWS/ElastiCache",
                metric_name="DatabaseMemoryUsagePercentage",
                dimensions=p.cache.dimensions,
                statistic="Maximum",
                period=300,
                count=p.cache.count,
            )
        )
    return tuple(specs)

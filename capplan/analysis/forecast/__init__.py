"""Capacity forecast: the growth trend of daily demand and the days until it crosses capacity.

Scopes: the cluster, each node pool (a node label, default `node.kubernetes.io/instance-type`)
and each namespace; resources cpu (cores) and memory (bytes); two bases:

- `requests`: what the scheduler sees. A day's value is the largest sum of effective pod
  requests (capplan.analysis.pods.pod_resources: sidecars, init containers, overhead) of pods
  alive at the same moment that day, from the pods/containers interval history. Pods in a
  terminal phase (Succeeded, Failed) hold nothing. Taking the peak moment rather than summing
  every pod seen that day keeps a replaced pod (a rollout, a rescheduled pod) from counting
  twice. Cluster and pool scopes count pods bound to a node; namespaces count all their pods
  (a ResourceQuota counts unscheduled pods too).
- `usage`: the day's 95th percentile of the scope's summed usage (CPU cores averaged over a
  step, memory working set), sample time by sample time.

Trend: Theil-Sen (scipy.stats.theilslopes), the median of all pairwise slopes, which one-off
spikes barely move. With two weeks or more of days, a weekly cycle is taken out first (the
median residual per weekday, centred) so that weekends do not tilt the slope. The slope's
confidence interval (default 90%) gives the low/high interval of days to exhaustion: the
fastest plausible growth gives `days_low`, the slowest `days_high`.

Projection: from the trend's level on the last day, `(limit - level) / slope` days. The limit
(`allocatable` column) is the sum of allocatable of the scope's nodes at the window's end; for a
namespace, the ResourceQuota hard value that bounds the basis (requests: `requests.cpu`/`cpu`,
`requests.memory`/`memory`; usage: `limits.cpu`, `limits.memory`; a request quota never bounds
usage), the tightest if several, when it has one, else its share of the cluster: allocatable minus
what the other namespaces take now on the same basis (the room the namespace could grow into if
the others stayed as they are). A flat or falling trend, or a crossing beyond the horizon, is
"never" (days empty); a trend already at or over the limit is 0 days ("exhausted"). Fewer days
of history than `min_days` give no projection ("too_short"), with the reason.

The package, one idea per module: model (defaults, schemas), series (daily series per scope),
limits (what each scope runs into), projection (trend and days to exhaustion; the statistics
live in capplan.analysis.stats.trend), pipeline (store -> table).
"""

from capplan.analysis.forecast.limits import scope_limits
from capplan.analysis.forecast.model import (
    BASES,
    DAILY_SCHEMA,
    DEFAULT_CONFIDENCE,
    DEFAULT_HORIZON,
    DEFAULT_MIN_DAYS,
    DEFAULT_POOL_LABEL,
    FORECAST_SCHEMA,
    LIMIT_SCHEMA,
    NO_POOL,
    RESOURCES,
    UNITS,
)
from capplan.analysis.forecast.pipeline import (
    ForecastInputs,
    daily_series,
    forecast,
    forecast_report,
    forecast_with_daily,
    in_report_order,
    load_forecast_inputs,
    only_namespaces,
)
from capplan.analysis.forecast.projection import (
    days_until,
    forecast_series,
    project,
    scope_label,
)
from capplan.analysis.forecast.series import (
    USAGE_DAILY_SCHEMA,
    USAGE_SUMS_SCHEMA,
    daily_requests,
    daily_requests_from_peaks,
    daily_usage,
    daily_usage_from_quantiles,
    day_slices,
    full_days,
    load_request_peaks,
    load_usage_daily,
    load_usage_sums,
    node_pools,
    pod_day_requests,
    request_peaks,
    scope_usage_sums,
    usage_day_quantiles,
    usage_full_days,
)
from capplan.analysis.stats.trend import Trend, robust_trend, weekday_effects

__all__ = [
    "BASES", "DAILY_SCHEMA", "DEFAULT_CONFIDENCE", "DEFAULT_HORIZON", "DEFAULT_MIN_DAYS", "DEFAULT_POOL_LABEL",
    "FORECAST_SCHEMA", "LIMIT_SCHEMA", "NO_POOL", "RESOURCES", "UNITS", "USAGE_DAILY_SCHEMA", "USAGE_SUMS_SCHEMA",
    "ForecastInputs",
    "Trend", "daily_requests", "daily_requests_from_peaks", "daily_series", "daily_usage", "daily_usage_from_quantiles", "day_slices", "days_until", "forecast", "forecast_report",
    "forecast_with_daily", "in_report_order", "only_namespaces",
    "forecast_series", "full_days", "load_forecast_inputs", "load_request_peaks", "load_usage_daily", "load_usage_sums", "node_pools", "pod_day_requests", "request_peaks",
    "project", "robust_trend", "scope_label", "scope_limits", "scope_usage_sums", "usage_day_quantiles", "usage_full_days",
    "weekday_effects",
]

"""`capplan report`: sections composed from the analyses' results.

model (ReportOptions, Section), one module per group of sections (cluster, capacity, eviction,
recommendations, forecast, rollout), compose (the one list of sections, in report order).
Nothing here draws: capplan.render writes sections as text, JSON or HTML.
"""

from capplan.report.model import ReportOptions, Section

__all__ = ["ReportOptions", "Section"]

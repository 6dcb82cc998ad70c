"""capplan: capacity planning and overcommit analysis for Kubernetes clusters.

The library is the product; the `capplan` CLI is a thin layer over it. Flow runs one way:
collect (capplan.collect) -> store (capplan.store) -> analyse (capplan.analysis.*) -> report
(capplan.report, capplan.render).
"""

__version__ = "0.1.0"

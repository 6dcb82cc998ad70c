"""The sample folder format shared by the generator (capplan.sample) and the importer: one
Parquet file per table below, plus `usage.parquet` and `meta.json` (data/samples/README.md)."""

SAMPLE_TABLES = ("nodes", "pods", "containers", "owners", "workloads", "hpas", "resource_quotas", "restarts")

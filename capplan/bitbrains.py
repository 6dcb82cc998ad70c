"""Convert the GWA-T-12 Bitbrains trace into capplan's long-format usage frame (CONTRACT.md).

Mapping (tests/data/realdata/README.md): each VM is one Guaranteed pod `vm-<id>` with one
container `vm` in namespace `bitbrains`, a bare pod (no owner). Its CPU request = limit = the
provisioned cores, its memory request = limit = the provisioned memory.

Choices, each for a reason:
- Rows with zero provisioned CPU are dropped: the VM was switched off (its CPU usage is 0 and
  cores used cannot be derived), so no pod ran at that moment.
- A few (vm, timestamp) pairs appear twice: CPU is averaged, memory takes the larger value
  (memory is a peak working set in capplan).
- Provisioned memory jitters from sample to sample for some VMs (a monitoring average, not a
  resize), so the request/limit is one value per VM: the most frequent non-zero capacity.
  Provisioned cores take the most frequent value too. This keeps the spec one interval per VM.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from capplan.errors import BadInputError

NAMESPACE = "bitbrains"
CONTAINER = "vm"

_SQL = """
WITH raw AS (
    SELECT vm, ts, cpu_cores AS cores, cpu_capacity_mhz, cpu_usage_mhz,
           mem_capacity_kb * 1024 AS mem_capacity_bytes, mem_usage_kb * 1024 AS mem_usage_bytes
    FROM read_parquet($path)
    WHERE cpu_capacity_mhz > 0 AND cpu_cores > 0 AND ($vms IS NULL OR vm <= $vms)
),
per_ts AS (
    SELECT vm, ts,
           avg(cpu_usage_mhz / (cpu_capacity_mhz / cores)) AS cpu_cores,
           max(mem_usage_bytes) AS memory_bytes
    FROM raw GROUP BY vm, ts
),
spec AS (
    SELECT vm, mode(cores) AS cores, mode(mem_capacity_bytes) FILTER (WHERE mem_capacity_bytes > 0) AS mem_bytes
    FROM raw GROUP BY vm
)
SELECT $namespace AS namespace, 'vm-' || CAST(p.vm AS VARCHAR) AS pod, $container AS container,
       p.ts AS timestamp, p.cpu_cores, round(p.memory_bytes) AS memory_bytes,
       CAST(s.cores AS DOUBLE) AS cpu_request_cores, CAST(s.cores AS DOUBLE) AS cpu_limit_cores,
       round(s.mem_bytes) AS memory_request_bytes, round(s.mem_bytes) AS memory_limit_bytes
FROM per_ts AS p JOIN spec AS s USING (vm)
ORDER BY p.vm, p.ts
"""


def bitbrains_frame(path: str | Path, vms: int | None = None) -> pl.DataFrame:
    """The Bitbrains parquet as a long-format frame (namespace, pod, container, timestamp,
    cpu_cores, memory_bytes, cpu/memory request and limit). `vms` keeps VMs 1..vms only
    (a cheap subset for tests)."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"no such file: {path}")
    con = duckdb.connect()
    try:
        frame = con.execute(_SQL, {"path": str(path), "vms": vms, "namespace": NAMESPACE,
                                   "container": CONTAINER}).pl()
    except duckdb.Error as exc:
        raise BadInputError(f"{path} is not the Bitbrains trace: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()
    return frame


def write_long_format(path: str | Path, out: str | Path, vms: int | None = None) -> int:
    """Write the converted trace to `out` (.parquet) for `capplan import`; returns rows written."""
    frame = bitbrains_frame(path, vms)
    frame.write_parquet(out)
    return frame.height


if __name__ == "__main__":  # python -m capplan.bitbrains SRC.parquet OUT.parquet [VMS]
    import sys

    rows = write_long_format(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
    print(f"wrote {rows:,} rows to {sys.argv[2]}")

"""Derive bitbrains_rnd_2013-07_subset.parquet from the full Bitbrains Rnd month.

    python tests/data/realdata/derive_bitbrains_subset.py FULL.parquet [OUT.parquet]

FULL.parquet is the whole 2013-07 month of GWA-T-12 "Bitbrains Rnd" (500 VMs, 3,890,450 rows,
columns vm, ts, cpu_cores, cpu_capacity_mhz, cpu_usage_mhz, mem_capacity_kb, mem_usage_kb; see
README.md). The subset keeps VMs 1..200 (the first 200 VM ids), every row of the month, the
same columns and types, sorted by (vm, ts): the same bytes each time for the same input.
200 VMs keep the file under the repository's 5 MiB limit (about 4.1 MiB).
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

VMS = 200
COLUMNS = ["vm", "ts", "cpu_cores", "cpu_capacity_mhz", "cpu_usage_mhz", "mem_capacity_kb", "mem_usage_kb"]
DEFAULT_OUT = Path(__file__).resolve().parent / "bitbrains_rnd_2013-07_subset.parquet"


def derive(full: Path, out: Path) -> int:
    """Write the subset of `full` to `out`; returns its row count."""
    subset = pl.read_parquet(full, columns=COLUMNS).filter(pl.col("vm") <= VMS).sort("vm", "ts")
    subset.write_parquet(out, compression="zstd", compression_level=22, statistics=True)
    return subset.height


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(argv[2]) if len(argv) == 3 else DEFAULT_OUT
    rows = derive(Path(argv[1]), out)
    print(f"{out}: {rows} rows, VMs 1..{VMS}, {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

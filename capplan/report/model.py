"""What a report is made of: the options every section takes, and a titled table with a note."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl


@dataclass
class ReportOptions:
    """Options every report section may use."""

    window: timedelta = timedelta(days=14)
    namespaces: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    top: int = 10


@dataclass
class Section:
    """One titled table of the report, with an optional explanation under it."""

    key: str
    title: str
    frame: pl.DataFrame
    note: str = ""

"""The report computes its analyses up front, in the order that keeps the peak memory lowest
(ReportResults.compute_all): the same sections as computing each when a section first asks, and
a failing analysis still fails where its section reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from capplan import store
from capplan.errors import NoDataError
from capplan.report import ReportOptions
from capplan.report import results as results_module
from capplan.report.compose import SECTION_BUILDERS, build_report_results
from capplan.report.results import COMPUTE_ORDER, ReportResults


def _lazily(con, options: ReportOptions):
    """The sections as before compute_all: each analysis runs when a section first reads it."""
    results = ReportResults(con, options)
    return [section for builder in SECTION_BUILDERS for section in builder(results)]


@pytest.mark.parametrize("options", [ReportOptions(), ReportOptions(namespaces=["web", "data"], top=3)])
def test_the_sections_are_the_same_as_computed_on_demand(sample_db_readonly: Path, options: ReportOptions) -> None:
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        sections, results = build_report_results(con, options)
        assert all(name in vars(results) for name in COMPUTE_ORDER)  # every analysis ran up front
        expected = _lazily(con, options)
    finally:
        con.close()
    assert [(s.key, s.title, s.note) for s in sections] == [(s.key, s.title, s.note) for s in expected]
    for got, want in zip(sections, expected, strict=True):
        assert got.frame.equals(want.frame), got.key


def test_a_failing_analysis_fails_where_its_section_reads_it(sample_db_readonly: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def no_usage(*args, **kwargs):
        calls.append("recommend")
        raise NoDataError("no usage samples here")

    monkeypatch.setattr(results_module, "recommend", no_usage)
    con = store.open_db(sample_db_readonly, read_only=True)
    try:
        with pytest.raises(NoDataError, match="no usage samples here"):
            build_report_results(con, ReportOptions())
        with pytest.raises(NoDataError, match="no usage samples here"):
            _lazily(con, ReportOptions())
    finally:
        con.close()
    # tried up front (nothing cached of a failure), then again by the sections that read it
    assert len(calls) >= 2

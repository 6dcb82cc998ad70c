"""capplan.analysis.batches: whole groups in batches of bounded rows, worked by hand."""

from __future__ import annotations

from capplan.analysis.batches import batches


def test_groups_are_kept_whole_and_batches_stay_under_the_bound() -> None:
    # rows per group: 3 | 4 | 2 2 | 9 (over the bound: alone) | 1 1 1
    assert batches([3, 4, 2, 2, 9, 1, 1, 1], 5) == [(0, 1), (1, 2), (2, 4), (4, 5), (5, 8)]
    assert batches([3, 4, 2], 100) == [(0, 3)]
    assert batches([7], 5) == [(0, 1)]
    assert batches([], 5) == []


def test_every_group_is_in_exactly_one_batch() -> None:
    counts = [5, 1, 8, 3, 3, 3, 12, 2, 6]
    ranges = batches(counts, 7)
    covered = [i for lo, hi in ranges for i in range(lo, hi)]
    assert covered == list(range(len(counts)))
    for lo, hi in ranges:
        assert sum(counts[lo:hi]) <= 7 or hi - lo == 1

"""rows_by groups rows as polars' group_by(maintain_order=True) does, one dict per row."""

import random

import polars as pl

from capplan.analysis.row_groups import rows_by


def test_rows_by_small_by_hand() -> None:
    frame = pl.DataFrame({"ns": ["a", "b", "a", None, "b", None], "pod": ["p", "q", "p", "r", "x", "r"],
                          "v": [1, 2, 3, 4, 5, None]})
    groups = rows_by(frame, ["ns", "pod"])
    assert list(groups) == [("a", "p"), ("b", "q"), (None, "r"), ("b", "x")]
    assert groups[("a", "p")] == [{"ns": "a", "pod": "p", "v": 1}, {"ns": "a", "pod": "p", "v": 3}]
    assert groups[(None, "r")] == [{"ns": None, "pod": "r", "v": 4}, {"ns": None, "pod": "r", "v": None}]
    assert groups[("b", "x")] == [{"ns": "b", "pod": "x", "v": 5}]


def test_rows_by_matches_polars_group_by_on_random_frames() -> None:
    rng = random.Random(14)
    for _ in range(50):
        n = rng.randint(0, 200)
        frame = pl.DataFrame({
            "namespace": [rng.choice(["a", "b", "c", None]) for _ in range(n)],
            "pod": [rng.choice(["p1", "p2", "p3"]) for _ in range(n)],
            "value": [rng.choice([None, rng.random()]) for _ in range(n)],
        }, schema={"namespace": pl.Utf8, "pod": pl.Utf8, "value": pl.Float64})
        expected = {key: group.to_dicts()
                    for key, group in frame.group_by(["namespace", "pod"], maintain_order=True)}
        got = rows_by(frame, ["namespace", "pod"])
        assert list(got) == list(expected)
        assert got == expected

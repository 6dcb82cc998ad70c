"""The service's result cache: one computation at a time (memory = the largest analysis, not the
sum of those in flight), cached answers never wait, one computation per key and data version."""

from __future__ import annotations

import threading

from capplan.serve.cache import VersionedCache


def test_computations_of_different_keys_never_overlap() -> None:
    cache = VersionedCache()
    in_flight = 0
    most = 0
    guard = threading.Lock()
    started = threading.Barrier(4)

    def compute(value: int) -> int:
        nonlocal in_flight, most
        with guard:
            in_flight += 1
            most = max(most, in_flight)
        # long enough for the other threads to try to start theirs meanwhile
        threading.Event().wait(0.05)
        with guard:
            in_flight -= 1
        return value

    results: dict[int, int] = {}

    def ask(key: int) -> None:
        started.wait()
        results[key] = cache.get(("api", key), "v1", lambda: compute(key * 10))

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {0: 0, 1: 10, 2: 20, 3: 30}
    assert cache.computations == 4
    assert most == 1


def test_a_cached_answer_does_not_wait_for_a_running_computation() -> None:
    cache = VersionedCache()
    assert cache.get("ready", "v1", lambda: "cached") == "cached"
    running = threading.Event()
    release = threading.Event()

    def slow() -> str:
        running.set()
        release.wait(timeout=30)
        return "slow"

    worker = threading.Thread(target=lambda: cache.get("slow", "v1", slow))
    worker.start()
    try:
        assert running.wait(timeout=30)
        # the slow computation holds the computation lock; a hit is answered from memory at once
        assert cache.get("ready", "v1", lambda: "recomputed") == "cached"
        # a stale entry is a computation: it would wait, so ask for it only after the release
    finally:
        release.set()
        worker.join(timeout=30)
    assert cache.get("ready", "v2", lambda: "recomputed") == "recomputed"
    assert cache.computations == 3


def test_a_computation_may_ask_for_other_answers_while_another_thread_waits_for_one() -> None:
    # /metrics computes from the endpoints' cached answers: the nested request must not deadlock
    # with a thread asking for the same inner answer meanwhile
    cache = VersionedCache()
    inner_asked = threading.Event()
    outer_inside = threading.Event()

    def outer() -> str:
        outer_inside.set()
        inner_asked.wait(timeout=5)  # the other thread is asking for "inner" by now
        return "outer:" + cache.get("inner", "v1", lambda: "inner")

    results: dict[str, str] = {}
    first = threading.Thread(target=lambda: results.update(outer=cache.get("outer", "v1", outer)))
    first.start()
    assert outer_inside.wait(timeout=30)

    def ask_inner() -> None:
        inner_asked.set()
        results["inner"] = cache.get("inner", "v1", lambda: "inner-again")

    second = threading.Thread(target=ask_inner)
    second.start()
    first.join(timeout=30)
    second.join(timeout=30)
    assert not first.is_alive() and not second.is_alive()
    assert results == {"outer": "outer:inner", "inner": "inner"}
    assert cache.computations == 2

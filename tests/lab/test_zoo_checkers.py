"""The checker additions the bug zoo needs: a count answered SESSION_NOT_FOUND (R10)."""

from __future__ import annotations

from kato.lab.checkers import counts, failed_count_cases
from kato.lab.history import History, Op


def test_a_count_failing_with_session_not_found_is_an_anomaly() -> None:
    history = History(
        [
            Op(0, "c0", "count", None, {}, 0, 10, "ok", {"count": 0}),
            Op(1, "c0", "count", None, {"trailing_slash": True}, 20, 30, "fail", {},
               "SESSION_NOT_FOUND", 404),
            Op(2, "c1", "count", None, {}, 20, 30, "unknown", {}, "STORE_UNAVAILABLE", 503),
        ]
    )  # fmt: skip
    assert failed_count_cases(history) == [
        {
            "kind": "count-failed",
            "op": 1,
            "trailing_slash": True,
            "expected": "a count",
            "seen": "SESSION_NOT_FOUND",
        }
    ]
    verdict = counts(history)
    assert (verdict.valid, verdict.anomalies, verdict.counts["count_failed"]) == (False, 1, 1)

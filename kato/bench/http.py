"""``kato bench``'s service rows: KATO routes beside a trivial endpoint, and one hot session.

For each worker count, the trivial server (:mod:`kato.bench.trivial`) and ``kato serve`` (Redis
store, embedded Redis, SQLite LTM) are started with the same uvicorn settings, one after the
other, and driven by the same load tool with the same connections. Every KATO session is created
with ``max_pattern_length`` 5, so its STM stays at a typical 1–5 events (the fifth observe learns
a pattern and clears it) and the node's LTM grows as a real one does; 200 patterns are learned
before the first measurement so predictions have candidates to rank. ``observe_bare`` observes
into sessions of a node that has learned nothing: the session layer without the engine's work.

The store's own counters (``/metrics``) give round trips and bytes per observe. Contention rows
drive every connection into ONE session and compare with the same load spread over many: the
rate drops (every write to one session is serialised), but every request must still complete.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kato.bench.load import Load, Request, load_tool, run_load
from kato.bench.rows import Goal, Row
from kato.lab.targets import ServerProcess, serve

__all__ = ["contention_rows", "http_rows"]

SESSIONS = 256
PATTERNS = 200
VOCABULARY = [f"w{i}" for i in range(40)]
SESSION_CONFIG = {"max_pattern_length": 5}
OBSERVATION = {"strings": ["w1", "w2"]}
OBSERVE_ROUTE = "/sessions/{session_id}/observe"


def _metric(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


class _Kato:
    """A running ``kato serve`` with sessions and learned patterns, read through ``/metrics``."""

    def __init__(self, server: ServerProcess, sessions: int) -> None:
        self.url = server.url
        self._http = httpx.Client(base_url=server.url, timeout=30)
        self.sessions = [self._create() for _ in range(sessions)]
        rng = random.Random(5)
        teacher = self._create(config={})  # no auto-learn: it learns each sequence whole
        for _ in range(PATTERNS):
            events = [{"strings": rng.sample(VOCABULARY, 2)} for _ in range(rng.randint(2, 5))]
            self._post(f"/sessions/{teacher}/observe-sequence", {"observations": events})
            self._post(f"/sessions/{teacher}/learn", None)

    def _post(self, path: str, body: object) -> dict[str, object]:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def _create(self, config: Mapping[str, object] = SESSION_CONFIG, node: str = "bench") -> str:
        return str(self._post("/sessions", {"node_id": node, "config": config})["session_id"])

    def bare_sessions(self, count: int) -> list[str]:
        """Sessions of a node that learns nothing: an observe is the session layer alone."""
        return [self._create(config={}, node="bare") for _ in range(count)]

    def metrics(self) -> str:
        return self._http.get("/metrics", headers={"Accept": "text/plain"}).text

    def paths(self, suffix: str, sessions: Sequence[str] | None = None) -> list[str]:
        return [f"/sessions/{sid}/{suffix}" for sid in (sessions or self.sessions)]

    def close(self) -> None:
        self._http.close()


@contextmanager
def _kato(workers: int, sessions: int = SESSIONS) -> Iterator[_Kato]:
    args = (
        "--workers",
        str(workers),
        "--store",
        "redis",
        "--ltm",
        "sqlite",
        "--log-level",
        "warning",
    )
    with serve(*args) as server:
        kato = _Kato(server, sessions)
        try:
            yield kato
        finally:
            kato.close()


def _trivial(workers: int, seconds: float, connections: int) -> Load:
    with serve("--workers", str(workers), program=("kato.bench.trivial",)) as server:
        return run_load(
            server.url, Request("GET", ["/constant"]), seconds=seconds, connections=connections
        )


def _row(
    section: str, name: str, ours: Load, reference: Load, reference_is: str, **kw: object
) -> Row:
    note = kw.pop("note", "")
    errors = f"{ours.errors} failed of {ours.requests}" if ours.errors else ""
    return Row(
        section=section,
        name=name,
        ours=ours.requests_per_s,
        reference=reference.requests_per_s,
        unit="req/s",
        reference_is=reference_is,
        note="; ".join(part for part in (str(note), errors, f"load: {ours.tool}") if part),
        extra={
            "p50_ms": ours.p50_ms,
            "p99_ms": ours.p99_ms,
            "reference_p50_ms": reference.p50_ms,
            "reference_p99_ms": reference.p99_ms,
            "errors": ours.errors,
        },
        **kw,  # type: ignore[arg-type]
    )


def http_rows(workers: Sequence[int], *, seconds: float, connections: int = 64) -> list[Row]:
    """Observe, get-STM and predictions beside ``GET /constant``, at each worker count; and
    the session store's round trips and bytes per observe (from its counters)."""
    rows: list[Row] = []
    for w in workers:
        trivial = _trivial(w, seconds, connections)
        with _kato(w) as kato:

            def load(method: str, paths: list[str], body: Mapping[str, object] | None) -> Load:
                request = Request(method, paths, body)
                return run_load(kato.url, request, seconds=seconds, connections=connections)

            learning = [kato.metrics(), kato.metrics()]
            observe = load("POST", kato.paths("observe"), OBSERVATION)
            learning.append(kato.metrics())
            stm = load("GET", kato.paths("stm"), None)
            predictions = load("GET", kato.paths("predictions"), None)
            bare_paths = kato.paths("observe", kato.bare_sessions(SESSIONS))
            plain = [kato.metrics(), kato.metrics()]
            bare = load("POST", bare_paths, OBSERVATION)
            plain.append(kato.metrics())
        reference = f"GET /constant, {w} worker{'s' * (w > 1)}"
        rows += [
            _row(
                "http",
                f"http.observe.w{w}",
                observe,
                trivial,
                reference,
                goal=Goal("ratio", ">=", 0.5),
                note="200 learned patterns; every 5th observe learns",
            ),
            _row(
                "http",
                f"http.observe_bare.w{w}",
                bare,
                trivial,
                reference,
                goal=Goal("ratio", ">=", 0.5),
                note="a node with nothing learned: the session layer alone",
            ),
            _row("http", f"http.stm.w{w}", stm, trivial, reference),
            _row("http", f"http.predictions.w{w}", predictions, trivial, reference),
        ]
        if w == workers[0]:
            rows += _store_rows(plain, learning)
    return rows


def _per_observe(metrics: list[str]) -> tuple[float, float, float, float]:
    """Round trips, bytes sent, bytes received and compare-and-set conflicts per observe, between
    the last two of three ``/metrics`` readings; the first two, back to back, measure what a
    reading itself costs the store (it counts the live sessions), which is taken off."""
    idle, before, after = metrics

    def delta(name: str, **labels: str) -> float:
        run = _metric(after, name, **labels) - _metric(before, name, **labels)
        return run - (_metric(before, name, **labels) - _metric(idle, name, **labels))

    observes = delta("kato_http_requests_total", route=OBSERVE_ROUTE) or math.nan
    return (
        delta("kato_store_round_trips_total") / observes,
        delta("kato_store_bytes_total", direction="sent") / observes,
        delta("kato_store_bytes_total", direction="received") / observes,
        delta("kato_store_conflicts_total") / observes,
    )


def _store_rows(plain: list[str], learning: list[str]) -> list[Row]:
    """Round trips per observe in the common case (a node learning nothing, sessions of their
    own), and with every 5th observe learning into a shared node (a learn elsewhere changes the
    LTM snapshot an observe computed on: it reads the session again, one more round trip)."""
    trips, sent, received, conflicts = _per_observe(plain)
    learning_trips, *_, learning_conflicts = _per_observe(learning)
    return [
        Row(
            section="store",
            name="store.round_trips_per_observe",
            ours=trips,
            reference=2.0,
            unit="round trips",
            reference_is="GET + SET: the fewest for any read-modify-write",
            goal=Goal("ours", "<=", 2.0),
            note=f"from the store's counters ({conflicts:.3f} conflicts per observe); "
            f"{learning_trips:.3f} while learning ({learning_conflicts:.3f} conflicts)",
            extra={"bytes_sent_per_observe": sent, "bytes_received_per_observe": received},
        )
    ]


def contention_rows(workers: int, *, seconds: float, connections: int = 64) -> list[Row]:
    """Observes into ONE session beside the same load over many sessions, at ``workers``."""
    with _kato(workers) as kato:

        def load(paths: list[str]) -> Load:
            request = Request("POST", paths, OBSERVATION)
            return run_load(kato.url, request, seconds=seconds, connections=connections)

        many = load(kato.paths("observe"))
        hot = [kato.metrics(), kato.metrics()]
        one = load(kato.paths("observe", kato.sessions[:1]))
        hot.append(kato.metrics())
    *_, per_observe = _per_observe(hot)
    reference = f"the same load over {SESSIONS} sessions"
    return [
        _row(
            "contention",
            f"contention.one_session.w{workers}",
            one,
            many,
            reference,
            note=f"{per_observe:.2f} compare-and-set conflicts per observe",
        ),
        Row(
            section="contention",
            name=f"contention.failed.w{workers}",
            ours=float(one.errors),
            reference=float(one.requests),
            unit="requests",
            reference_is="requests sent into the one session",
            goal=Goal("ours", "<=", 0),
            note=f"non-2xx answers and timeouts (wrk --timeout 10s); load: {load_tool()}",
        ),
    ]

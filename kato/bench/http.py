"""``kato bench``'s service rows: KATO routes beside a trivial endpoint, and one hot session.

For each worker count, the trivial server (:mod:`kato.bench.trivial`) and ``kato serve`` (Redis
store, embedded Redis, SQLite LTM) are started with the same uvicorn settings, one after the
other, and driven by the same load tool with the same connections. The rows are issue #17's:

* ``http.observe_bare`` — observes into sessions of a node that has learned nothing: the session
  layer without the engine's work;
* ``http.observe`` — observes into a learning node: :data:`PATTERNS` patterns learned first, and
  every session created with ``max_pattern_length`` 5, so its STM stays at a typical 1–5 events
  (the fifth observe learns a pattern and clears it), and observed 0–4 times before the load so
  that one observe in five learns from the start (:func:`_stagger`);
* ``http.observe.engine_bound.w1`` — ``http.observe``'s observes computed in the bench's own
  process and nothing else (:func:`engine_bound`), per CPU second beside the same ``GET
  /constant``: the ratio ``http.observe.w1`` could reach if HTTP, the store and the load tool
  cost nothing;
* ``http.stm`` and ``http.predictions`` — reads of sessions that each store
  :data:`STORED_PREDICTIONS` predictions (``max_predictions`` caps what their last observe kept;
  the note says the counts the bench read back).

The patterns (2–5 events of two symbols from 40) are learned into the SQLite LTM file by the
engine's own learn step before the server opens it, and the bench reads their count back from
``GET /patterns``: the same node a client's learns would leave, in a second rather than a
minute. The store's own counters (``/metrics``) give round trips and bytes per observe.
Contention rows drive every connection into ONE session of a learning node
(:data:`CONTENTION_PATTERNS` patterns) and compare with the same load spread over many: the rate
drops (every write to one session is serialised), but every request must still complete.
Each server first gets a second of unmeasured load, the trivial one alike.

Only ``wrk`` measures a server's ceiling; with any other load tool each ratio row says it is not
comparable and its goal is missed.
"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kato.bench.load import Load, Request, load_tool, run_load
from kato.bench.rows import Goal, Row
from kato.collector import settled
from kato.engine import EngineConfig, Observation, SessionState, learn, observe
from kato.lab.targets import serve
from kato.ltm.sqlite import SQLiteNodes

__all__ = [
    "CONTENTION_PATTERNS",
    "PATTERNS",
    "STORED_PREDICTIONS",
    "EngineBound",
    "contention_rows",
    "engine_bound",
    "http_rows",
]

SESSIONS = 256
#: Patterns the learning node holds before its observes are measured (issue #17: 1,000).
PATTERNS = 1_000
#: Patterns of the learning node the contention rows observe into (as when issue #17 measured
#: them: its "now" figure is of this size).
CONTENTION_PATTERNS = 200
#: Predictions each session read by ``http.stm`` / ``http.predictions`` stores (issue #17: 60).
STORED_PREDICTIONS = 60
VOCABULARY = [f"w{i}" for i in range(40)]
LEARNING = {"max_pattern_length": 5}
READING = {"max_predictions": STORED_PREDICTIONS}
#: Sessions read by those rows (reads do not contend: a few dozen cost what 256 would, and each
#: takes an observe into the learning node to fill).
READERS = 64
OBSERVATION = {"strings": ["w1", "w2"]}
OBSERVE_ROUTE = "/sessions/{session_id}/observe"
#: Setup requests in flight at once.
SETUP_CONCURRENCY = 8
#: Seconds without requests before a counted load: the outbox drainers' polls meanwhile.
IDLE_S = 1.0
#: Seconds of load, not measured, each server gets first (both alike: the first requests of a
#: fresh worker are slower).
WARM_S = 1.0

_Pattern = tuple[tuple[str, ...], ...]

#: Issue #17's goals, each a ratio to its reference measured in the same run.
BARE_GOAL = Goal("ratio", ">=", 0.3)
LEARNING_GOAL = Goal("ratio", ">=", 0.1)
READ_GOAL = Goal("ratio", ">=", 0.3)
HOT_GOAL = Goal("ratio", ">=", 0.6)


def _metric(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _patterns(count: int) -> list[_Pattern]:
    """``count`` distinct patterns of 2–5 two-symbol events (seeded: every run teaches the same;
    distinct, so the node ends with exactly ``count``)."""
    rng = random.Random(5)
    seen: set[_Pattern] = set()
    patterns: list[_Pattern] = []
    while len(patterns) < count:
        length = 2 + len(patterns) % 4
        events = tuple(tuple(sorted(rng.sample(VOCABULARY, 2))) for _ in range(length))
        if events not in seen:
            seen.add(events)
            patterns.append(events)
    return patterns


@dataclass(frozen=True, slots=True)
class _Setup:
    """The sessions a KATO server was prepared with, and what preparing it took."""

    learning: list[str]
    reading: list[str]
    bare: list[str]
    patterns: int
    stored_predictions: tuple[int, int]
    setup_seconds: float


class _Client:
    """Concurrent setup requests to one server; any failure is an error, never a smaller
    figure."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._slots = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        async with self._slots:
            response = await self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    async def session(self, node: str, config: Mapping[str, object]) -> str:
        body = {"node_id": node, "config": dict(config)}
        return str((await self.call("POST", "/sessions", body))["session_id"])

    async def sessions(self, count: int, node: str, config: Mapping[str, object]) -> list[str]:
        return list(await asyncio.gather(*(self.session(node, config) for _ in range(count))))


def _teach(path: Path, node: str, count: int) -> None:
    """Learn ``count`` patterns into ``node`` of the SQLite LTM file at ``path`` before the
    server opens it: the engine's own learn step and the store the service uses, so the node
    holds what ``count`` client learns would leave, without ~3,500 observes (each ranking
    predictions over the growing node: a minute on 2 cores) to get there."""
    config = EngineConfig()
    effects = [
        effect
        for pattern in _patterns(count)
        for effect in learn(SessionState(stm=pattern), config).effects
    ]
    nodes = SQLiteNodes(path)
    try:
        nodes.ltm(node).apply(effects)
    finally:
        nodes.close()


@dataclass(frozen=True, slots=True)
class EngineBound:
    """``http.observe``'s observes computed in this process and nothing else: what one core
    could serve if HTTP, the session store and the load tool cost nothing."""

    observes: int
    cpu_seconds: float
    learned: int
    predictions: int

    @property
    def rate(self) -> float:
        """Observes per second of CPU."""
        return self.observes / self.cpu_seconds if self.cpu_seconds else math.nan


def engine_bound(
    patterns: int = PATTERNS, *, seconds: float = 3.0, sessions: int = SESSIONS
) -> EngineBound:
    """Time ``http.observe``'s work alone: the same node (``patterns`` taught into a SQLite
    file), sessions and observation, each observe read through one LTM snapshot as the service
    reads it, and every learn applied to the file; for ``seconds``, under the collector a
    serving worker has (:func:`kato.collector.settled`).

    The ratio of its rate to ``GET /constant`` bounds ``http.observe``'s ratio from above with
    this engine, however light the service around it becomes.
    """
    config = EngineConfig().with_overrides(LEARNING)
    observation = Observation.parse(OBSERVATION, config)
    every = config.max_pattern_length
    with tempfile.TemporaryDirectory(prefix="kato-bound-") as folder:
        path = Path(folder) / "ltm.sqlite3"
        _teach(path, "bench", patterns)
        nodes = SQLiteNodes(path)
        try:
            ltm = nodes.ltm("bench")
            count = 0

            def step(state: SessionState) -> tuple[SessionState, int, bool]:
                nonlocal count
                count += 1
                with ltm.snapshot() as view:
                    done = observe(
                        state, observation, config, view, node_id="bench", unique_id=f"b{count}"
                    )
                if done.effects:
                    ltm.apply(done.effects, effect_id=f"e{count}")
                return done.state, len(done.state.predictions), bool(done.effects)

            states = [SessionState()] * sessions
            for index in range(sessions):  # every STM length, as _stagger leaves the service's
                for _ in range(index % every):
                    states[index] = step(states[index])[0]
            observes = learned = predictions = 0
            with settled():
                started = time.process_time()
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    index = observes % sessions
                    states[index], made, learns = step(states[index])
                    observes += 1
                    learned += learns
                    predictions += made
                spent = time.process_time() - started
        finally:
            nodes.close()
    return EngineBound(observes, spent, learned, predictions)


async def _reader(client: _Client, node: str, rng: random.Random) -> tuple[str, int]:
    """A session whose last observe stored up to ``STORED_PREDICTIONS``; how many it stored."""
    session = await client.session(node, READING)
    body = {"strings": rng.sample(VOCABULARY, 2)}
    await client.call("POST", f"/sessions/{session}/observe", body)
    stored = await client.call("GET", f"/sessions/{session}/predictions")
    return session, len(stored["predictions"])


async def _stagger(client: _Client, sessions: Sequence[str]) -> None:
    """Observe the ``i``-th session ``i`` mod 5 times (``max_pattern_length``), so that the
    sessions' STMs start at every length and one observe in five learns from the first measured
    request. Sessions all created empty learned almost nothing in a 6 s load at one worker (~3
    observes each), and so measured an observe that never learns."""
    every = int(LEARNING["max_pattern_length"])
    await asyncio.gather(
        *(
            client.call("POST", f"/sessions/{session}/observe", OBSERVATION)
            for index, session in enumerate(sessions)
            for _ in range(index % every)
        )
    )


async def _prepare(url: str, sessions: int, *, every_kind: bool) -> _Setup:
    """The learning node's sessions; with ``every_kind`` also the reading sessions and the bare
    node's (the contention rows need neither). Checks the node holds what was taught."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        client = _Client(http)
        held = int((await client.call("GET", "/patterns?node_id=bench&limit=1"))["total"])
        learning = await client.sessions(sessions, "bench", LEARNING)
        await _stagger(client, learning)
        readers: list[tuple[str, int]] = []
        bare: list[str] = []
        if every_kind:
            rng = random.Random(60)
            readers = await asyncio.gather(*(_reader(client, "bench", rng) for _ in range(READERS)))
            bare = await client.sessions(sessions, "bare", {})
    counts = [count for _, count in readers] or [0]
    return _Setup(
        learning=learning,
        reading=[session for session, _ in readers],
        bare=bare,
        patterns=held,
        stored_predictions=(min(counts), max(counts)),
        setup_seconds=time.perf_counter() - started,
    )


@dataclass
class _Kato:
    """A running, prepared ``kato serve``, loaded with one tool and read through ``/metrics``."""

    url: str
    setup: _Setup
    http: httpx.Client
    seconds: float
    connections: int
    tool: str

    def load(
        self,
        method: str,
        paths: list[str],
        body: Mapping[str, object] | None,
        seconds: float | None = None,
    ) -> Load:
        """One load, then :meth:`settle` (so the next starts on a quiet server)."""
        load = self._run(method, paths, body, seconds)
        self.settle()
        return load

    def _run(
        self,
        method: str,
        paths: list[str],
        body: Mapping[str, object] | None,
        seconds: float | None = None,
    ) -> Load:
        request = Request(method, paths, body)
        return run_load(
            self.url,
            request,
            seconds=seconds or self.seconds,
            connections=self.connections,
            tool=self.tool,
        )

    def settle(self) -> list[_Reading]:
        """Read ``/metrics`` until the count of answered requests stops changing (those in
        flight when a load stopped have been answered; 10 s at most); the readings taken."""
        readings = [self.reading()]
        while readings[-1].at < readings[0].at + 10:
            time.sleep(0.2)
            readings.append(self.reading())
            if readings[-1].answered == readings[-2].answered:
                break
        return readings

    def reading(self) -> _Reading:
        text = self.http.get("/metrics", headers={"Accept": "text/plain"}).text
        return _Reading(text, time.monotonic())

    def counted(self, paths: list[str]) -> tuple[Load, _PerObserve]:
        """Observes into ``paths`` under load, and what each cost the store (its counters).

        Readings of ``/metrics`` (the server quiet: every load settles): two back to back (what
        a reading itself costs the store: it counts the live sessions), one after
        :data:`IDLE_S` idle seconds (what the workers' outbox drainers poll meanwhile, which no
        request costs), and those of :meth:`settle` after the load; the readings' cost and the
        drainers' polls over the load's time are taken off."""
        first, second = self.reading(), self.reading()
        time.sleep(IDLE_S)
        before = self.reading()
        load = self._run("POST", paths, OBSERVATION)
        after = self.settle()
        return load, _per_observe(first, second, before, after[-1], readings=len(after))


def _paths(suffix: str, sessions: Sequence[str]) -> list[str]:
    return [f"/sessions/{sid}/{suffix}" for sid in sessions]


@contextmanager
def _kato(
    workers: int,
    *,
    seconds: float,
    connections: int,
    tool: str,
    patterns: int,
    every_kind: bool,
    sessions: int = SESSIONS,
) -> Iterator[_Kato]:
    args = ("--workers", str(workers), "--store", "redis", "--ltm", "sqlite")
    with tempfile.TemporaryDirectory(prefix="kato-bench-ltm-") as folder:
        started = time.perf_counter()
        ltm = Path(folder) / "ltm.sqlite3"
        _teach(ltm, "bench", patterns)
        taught = time.perf_counter() - started
        with serve(*args, "--log-level", "warning", env={"KATO_LTM_PATH": str(ltm)}) as server:
            setup = asyncio.run(_prepare(server.url, sessions, every_kind=every_kind))
            setup = replace(setup, setup_seconds=setup.setup_seconds + taught)
            with httpx.Client(base_url=server.url, timeout=30) as http:
                yield _Kato(server.url, setup, http, seconds, connections, tool)


def _trivial(workers: int, seconds: float, connections: int, tool: str) -> Load:
    with serve("--workers", str(workers), program=("kato.bench.trivial",)) as server:
        request = Request("GET", ["/constant"])
        run_load(server.url, request, seconds=WARM_S, connections=connections, tool=tool)
        return run_load(server.url, request, seconds=seconds, connections=connections, tool=tool)


def _not_comparable(tools: set[str], bounded: str) -> str:
    """Why a ratio over loads driven by ``tools`` means nothing ("" when ``wrk`` drove them):
    any other tool bounds ``bounded`` itself."""
    if tools == {"wrk"}:
        return ""
    return (
        f"not comparable: load by {'/'.join(sorted(tools))}, which bounds {bounded} itself "
        "(wrk measures a server's ceiling; make bench installs it)"
    )


def _row(section: str, name: str, ours: Load, reference: Load, reference_is: str, **kw: Any) -> Row:
    """A rate beside its reference rate; not comparable unless ``wrk`` drove both."""
    not_comparable = _not_comparable({ours.tool, reference.tool}, "both rates")
    errors = f"{ours.errors} failed of {ours.requests}" if ours.errors else ""
    slow = (
        f"only {ours.requests} answered in the load (p50 {ours.p50_ms:,.0f} ms): the rate "
        "understates a route this slow"
        if ours.understated
        else ""
    )
    parts = (not_comparable, kw.pop("note", ""), errors, slow, f"load: {ours.tool}")
    note = "; ".join(part for part in parts if part)
    return Row(
        section=section,
        name=name,
        ours=ours.requests_per_s,
        reference=reference.requests_per_s,
        unit="req/s",
        reference_is=reference_is,
        note=note,
        not_comparable=not_comparable,
        extra={
            "p50_ms": ours.p50_ms,
            "p99_ms": ours.p99_ms,
            "reference_p50_ms": reference.p50_ms,
            "reference_p99_ms": reference.p99_ms,
            "errors": ours.errors,
            **kw.pop("extra", {}),
        },
        **kw,
    )


def http_rows(
    workers: Sequence[int],
    *,
    seconds: float,
    connections: int = 64,
    tool: str | None = None,
    patterns: int = PATTERNS,
) -> list[Row]:
    """Bare observe, learning observe, get-STM and predictions beside ``GET /constant``, at each
    worker count; and the session store's round trips and bytes per observe (its counters)."""
    tool = load_tool(tool)
    rows: list[Row] = []
    for w in workers:
        trivial = _trivial(w, seconds, connections, tool)
        with _kato(
            w,
            seconds=seconds,
            connections=connections,
            tool=tool,
            patterns=patterns,
            every_kind=True,
        ) as kato:
            setup = kato.setup
            kato.load("POST", _paths("observe", setup.bare), OBSERVATION, seconds=WARM_S)
            bare, plain = kato.counted(_paths("observe", setup.bare))
            observe, learning = kato.counted(_paths("observe", setup.learning))
            stm = kato.load("GET", _paths("stm", setup.reading), None)
            predictions = kato.load("GET", _paths("predictions", setup.reading), None)
        reference = f"GET /constant, {w} worker{'s' * (w > 1)}"
        low, high = setup.stored_predictions
        stored = f"{low}" if low == high else f"{low}–{high}"
        reads = f"{len(setup.reading)} sessions storing {stored} predictions each"
        prepared = {"setup_s": round(setup.setup_seconds, 1), "patterns": setup.patterns}
        rows += [
            _row(
                "http",
                f"http.observe_bare.w{w}",
                bare,
                trivial,
                reference,
                goal=BARE_GOAL,
                note="a node with nothing learned: the session layer alone; 0.5 is the aim",
            ),
            _row(
                "http",
                f"http.observe.w{w}",
                observe,
                trivial,
                reference,
                goal=LEARNING_GOAL,
                note=f"{setup.patterns:,} learned patterns (taught and sessions made in "
                f"{setup.setup_seconds:.0f} s); every 5th observe learns",
                extra=prepared,
            ),
            _row("http", f"http.stm.w{w}", stm, trivial, reference, goal=READ_GOAL, note=reads),
            _row(
                "http",
                f"http.predictions.w{w}",
                predictions,
                trivial,
                reference,
                goal=READ_GOAL,
                note=reads,
                extra={"stored_predictions_min": low, "stored_predictions_max": high},
            ),
        ]
        if w == workers[0]:
            rows += _store_rows(plain, learning)
        if w == 1:
            rows.append(_bound_row(engine_bound(patterns, seconds=max(1.0, seconds / 2)), trivial))
    return rows


def _bound_row(bound: EngineBound, trivial: Load) -> Row:
    """``http.observe.w1``'s ceiling: the engine's observes per CPU second beside ``GET
    /constant`` at one worker."""
    each = bound.predictions / bound.observes if bound.observes else 0.0
    not_comparable = _not_comparable({trivial.tool}, "GET /constant's rate")
    alone = (
        f"http.observe's observes computed alone in one process ({bound.observes:,}, "
        f"{bound.learned:,} learning, {each:.0f} predictions each; an LTM snapshot per observe, "
        "learns applied; no HTTP, store or load tool): http.observe.w1's ratio stays below this one"
    )
    return Row(
        section="http",
        name="http.observe.engine_bound.w1",
        ours=bound.rate,
        reference=trivial.requests_per_s,
        unit="req/s",
        reference_is="GET /constant, 1 worker",
        note="; ".join(part for part in (not_comparable, alone, f"load: {trivial.tool}") if part),
        extra={
            "observes": bound.observes,
            "cpu_seconds": round(bound.cpu_seconds, 3),
            "learned": bound.learned,
            "predictions_per_observe": each,
        },
        not_comparable=not_comparable,
    )


@dataclass(frozen=True, slots=True)
class _Reading:
    """One reading of ``/metrics`` and when it was taken (``time.monotonic``)."""

    text: str
    at: float

    @property
    def answered(self) -> float:
        """Requests answered, ``/metrics`` readings aside."""
        total = _metric(self.text, "kato_http_requests_total")
        return total - _metric(self.text, "kato_http_requests_total", route="/metrics")


@dataclass(frozen=True, slots=True)
class _PerObserve:
    """The store's round trips, bytes and compare-and-set conflicts per observe."""

    round_trips: float
    sent: float
    received: float
    conflicts: float


def _per_observe(
    first: _Reading, second: _Reading, before: _Reading, after: _Reading, *, readings: int
) -> _PerObserve:
    """Per observe between ``before`` and ``after`` (``readings`` taken since ``before``), less
    what those readings cost (``first`` to ``second``, back to back, is one) and what the idle
    drainers cost per second (``second`` to ``before``) over the time from ``before`` to
    ``after``."""

    def delta(name: str, **labels: str) -> float:
        def value(reading: _Reading) -> float:
            return _metric(reading.text, name, **labels)

        reading_cost = value(second) - value(first)
        idle_rate = (value(before) - value(second) - reading_cost) / (before.at - second.at)
        run = value(after) - value(before)
        return run - readings * reading_cost - max(idle_rate, 0.0) * (after.at - before.at)

    observes = delta("kato_http_requests_total", route=OBSERVE_ROUTE) or math.nan
    return _PerObserve(
        delta("kato_store_round_trips_total") / observes,
        delta("kato_store_bytes_total", direction="sent") / observes,
        delta("kato_store_bytes_total", direction="received") / observes,
        delta("kato_store_conflicts_total") / observes,
    )


def _store_rows(plain: _PerObserve, learning: _PerObserve) -> list[Row]:
    """Round trips per observe in the common case (a node learning nothing, sessions of their
    own), and with every 5th observe learning into a shared node (a learn elsewhere changes the
    LTM snapshot an observe computed on: it reads the session again, one more round trip)."""
    return [
        Row(
            section="store",
            name="store.round_trips_per_observe",
            ours=plain.round_trips,
            reference=2.0,
            unit="round trips",
            reference_is="GET + SET: the fewest for any read-modify-write",
            goal=Goal("ours", "<=", 2.0),
            note=f"from the store's counters, the outbox drainers' idle polls taken off "
            f"({plain.conflicts:.3f} conflicts per observe); {learning.round_trips:.3f} while "
            f"learning ({learning.conflicts:.3f} conflicts)",
            extra={
                "bytes_sent_per_observe": plain.sent,
                "bytes_received_per_observe": plain.received,
            },
        )
    ]


def contention_rows(
    workers: int,
    *,
    seconds: float,
    connections: int = 64,
    tool: str | None = None,
    patterns: int = CONTENTION_PATTERNS,
) -> list[Row]:
    """Observes into ONE session beside the same load over many sessions, at ``workers``, both
    into a learning node (sessions with ``max_pattern_length`` 5) of ``patterns``."""
    tool = load_tool(tool)
    with _kato(
        workers,
        seconds=seconds,
        connections=connections,
        tool=tool,
        patterns=patterns,
        every_kind=False,
    ) as kato:
        sessions = kato.setup.learning
        kato.load("POST", _paths("observe", sessions), OBSERVATION, seconds=WARM_S)
        many = kato.load("POST", _paths("observe", sessions), OBSERVATION)
        one, hot = kato.counted(_paths("observe", sessions[:1]))
    reference = f"the same load over {len(sessions)} sessions"
    return [
        _row(
            "contention",
            f"contention.one_session.w{workers}",
            one,
            many,
            reference,
            goal=HOT_GOAL,
            note=f"{hot.conflicts:.2f} compare-and-set conflicts per observe; "
            f"{kato.setup.patterns:,} learned patterns",
        ),
        Row(
            section="contention",
            name=f"contention.failed.w{workers}",
            ours=float(one.errors),
            reference=float(one.requests),
            unit="requests",
            reference_is="requests sent into the one session",
            goal=Goal("ours", "<=", 0),
            note=f"non-2xx answers and timeouts (10 s); load: {tool}",
        ),
    ]

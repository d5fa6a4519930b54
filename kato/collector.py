"""The garbage collector of a serving worker: settled once its app is built, and timed.

Why (#17, measured with ``wrk`` against one worker observing into ``kato bench``'s learning
node): the cyclic garbage collector took 43–47 % of the worker's time, unseen. Requests in
flight hold their rendered predictions (thousands of lists and dicts each) for hundreds of
milliseconds, so they outlive the young generations, and every few hundred milliseconds a full
collection walked them together with everything the worker made at start: FastAPI's routes,
pydantic's schemas and validators, the modules (~260k objects, ~90 ms a collection). Freezing
what start made takes it out of every collection; a larger young threshold lets most of a
request's objects die before any collection sees them. Seconds collecting per 6 s of load:
2.6–2.9 → 0.5–0.8 (learning observe), 1.0–1.1 → 0.01 (bare observe).

:data:`PAUSES` times every collection of the process, so ``/metrics`` shows what the
collector costs (``kato_gc_seconds_total`` by generation).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["PAUSES", "YOUNG_THRESHOLD", "Pauses", "settle", "settled"]

#: Allocations (net, of objects the collector tracks) between two young collections; CPython's
#: default is 700, which one rendered prediction list exceeds. Older generations keep theirs.
YOUNG_THRESHOLD = 50_000


def settle() -> None:
    """Collect once, freeze every surviving object (``gc.freeze``: full collections no longer
    walk them; they are still freed by reference counting) and raise the young threshold.

    Called by a serving worker once its app is built: what exists then lives as long as the
    worker. Cycles among frozen objects are never collected, so nothing made per request may
    exist yet."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


@contextmanager
def settled() -> Iterator[None]:
    """:func:`settle` for the length of a measurement that should see the collector as a
    serving worker does; on exit the frozen objects are collectable again and the thresholds
    are what they were."""
    thresholds = gc.get_threshold()
    settle()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class Pauses:
    """Collections and the seconds they took, by generation (0–2), since :meth:`install`.

    The callback only adds numbers: it runs inside the collector, where taking a lock that the
    interrupted code may hold (a Prometheus metric's) would deadlock; readers copy the totals
    (:meth:`read`) and count them elsewhere."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        self._installed = False
        self._lock = threading.Lock()

    def install(self) -> None:
        """Start timing (once per process; later calls change nothing)."""
        with self._lock:
            if not self._installed:
                gc.callbacks.append(self._callback)
                self._installed = True

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = min(int(info.get("generation", 2)), 2)
        self.seconds[generation] += time.perf_counter() - self._started
        self.collections[generation] += 1

    def read(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """``(collections, seconds)`` by generation, as of now."""
        return tuple(self.collections), tuple(self.seconds)


#: The process's collections (one collector per process, whatever the number of apps).
PAUSES = Pauses()

"""The concurrency explorer: controls for one experiment, a Run button, live plots.

``notebooks/02-concurrency-explorer`` shows :class:`Explorer`; :class:`LivePlot` draws the
operations of the running experiment as they complete. Contradictory controls (an experiment
that refuses its fields) are reported in the status line, never as a traceback.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from kato.lab.executor import missing
from kato.lab.history import Op
from kato.lab.spec import Experiment, variant_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Explorer", "LivePlot", "live_view_cost"]


class LivePlot:
    """Operations as they complete, drawn as PNG: a Locust-like panel of what happened per second.

    :meth:`add` may be called from any thread (``run``'s ``on_op``) and only appends; drawing
    (:meth:`png`) happens elsewhere — the explorer's painter thread — so the loop that drives
    the clients never waits for matplotlib. Once the run is judged, ``anomalous`` (the op ids
    the checkers' examples name) adds the anomalies per second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (op id, completed at s, latency ms, outcome)
        self._points: list[tuple[int, float, float, str]] = []
        self._start: int | None = None

    def add(self, op: Op) -> None:
        if op.f == "fault" or op.complete_ns is None or op.latency_ns is None:
            return
        with self._lock:
            if self._start is None:
                self._start = op.invoke_ns
            t = (op.complete_ns - self._start) / 1e9
            self._points.append((op.op_id, t, op.latency_ns / 1e6, op.outcome))

    def __len__(self) -> int:
        return len(self._points)

    def elapsed_s(self) -> float:
        """Seconds from the first invocation to the last completion seen."""
        with self._lock:
            return self._points[-1][1] if self._points else 0.0

    def png(self, title: str = "", anomalous: Collection[int] = ()) -> bytes:
        """Ops, failures (and anomalies) per second; p50/p95 latency per second; outcomes."""
        import numpy as np
        from matplotlib.figure import Figure

        with self._lock:
            points = list(self._points)
        figure = Figure(figsize=(11, 3.0), layout="constrained")
        rates, latency, counts = figure.subplots(1, 3, width_ratios=[3, 3, 2])
        seconds = np.array([int(t // _BIN_S) for _, t, _, _ in points], dtype=int)
        bins = np.arange(seconds.max() + 1 if len(points) else 0)
        outcomes = np.array([o for *_, o in points])
        flagged = np.array([i in anomalous for i, *_ in points], dtype=bool)
        per_s = 1 / _BIN_S
        for label, mask, colour in (
            ("ops/s", np.ones(len(points), dtype=bool), "tab:blue"),
            ("failures/s", outcomes != "ok", "tab:orange"),
            ("anomalies/s", flagged, "tab:red"),
        ):
            counted: Any = np.bincount(seconds[mask], minlength=len(bins)) if len(points) else []
            rates.plot(bins * _BIN_S, np.asarray(counted) * per_s, label=label, color=colour)
        rates.set_yscale("symlog", linthresh=1)
        rates.set_xlabel("time (s)")
        rates.set_title(title or "operations per second")
        rates.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        latencies = np.array([ms for _, _, ms, _ in points])
        for q, style in ((50, "-"), (95, "--")):
            values = [
                float(np.percentile(latencies[seconds == b], q)) if (seconds == b).any() else None
                for b in bins
            ]
            latency.plot(bins * _BIN_S, values, style, color="tab:blue", label=f"p{q}")
        latency.set_xlabel("time (s)")
        latency.set_ylabel("latency (ms)")
        latency.set_title("latency per second")
        latency.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        names = ["ok", "fail", "unknown", "anomaly"]
        totals = [int((outcomes == n).sum()) for n in names[:3]] + [int(flagged.sum())]
        counts.bar(names, totals, color=["tab:blue", "tab:orange", "tab:grey", "tab:red"])
        counts.set_title(f"{len(points)} operations")
        return _png(figure)


#: The live panel's time bins (seconds).
_BIN_S = 0.5


class _Painter(threading.Thread):
    """Calls ``paint`` every ``every_s`` seconds until stopped, then once more: the live view
    is drawn here, never in the thread whose event loop drives the clients."""

    def __init__(self, paint: Callable[[], None], every_s: float) -> None:
        super().__init__(name="kato-explorer-painter", daemon=True)
        self.paint, self.every_s, self.done = paint, every_s, threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            self.paint()

    def finish(self) -> None:
        self.done.set()
        self.join()


#: The fields of the experiment the explorer has a control for.
_CONTROLS = (
    "scenario",
    "target",
    "store",
    "variant",
    "fault",
    "workers",
    "concurrency",
    "operations",
)


class Explorer:
    """Controls for one experiment, Run and Stop buttons, a live panel, the verdict and curves.

    The controls start from ``spec`` changed by ``changes`` (a notebook's parameters); if those
    contradict each other (``Experiment`` refuses them: say variant ``r1-read-writeback`` on
    the ``engine`` target) the reason is shown in :attr:`status` and :meth:`run` refuses until
    the controls are fixed. Choosing a target where the variant and fault cannot apply resets
    and greys them out. Each run adds a row to :attr:`rows`; the curves of anomaly rate and
    error rate vs concurrency over all runs so far are redrawn after each, and :attr:`findings`
    shows anomalies per checker with one counter-example each. Display it with
    ``display(explorer.widget)``; the Run button runs in a thread of its own (so Stop can be
    pressed), :meth:`run` runs in the caller's (headless notebooks call it directly).

    The live panel (:class:`LivePlot`, :attr:`phase`: starting / running / checking, n/N and
    an ETA) is drawn every ``refresh_s`` by a painter thread, not by the clients' event loop;
    ``live=False`` turns it off (see :func:`live_view_cost`)."""

    def __init__(
        self, spec: Experiment, *, refresh_s: float = 1.0, live: bool = True, **changes: Any
    ) -> None:
        try:
            import ipywidgets as w
        except ImportError:
            raise missing("ipywidgets") from None
        from kato.lab.spec import FAULTS, SCENARIOS, STORES, TARGETS

        self.base = spec
        self.refresh_s = refresh_s
        self.live_view = live
        self.rows: list[dict[str, Any]] = []
        self.last: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        unknown = sorted(set(changes) - set(_CONTROLS))
        if unknown:
            raise TypeError(f"the explorer has no control(s) {', '.join(unknown)}")
        fields = {**json.loads(spec.to_json()), **changes}

        def choice(name: str, options: Sequence[str]) -> Any:
            values = [*options, *[v for v in [fields[name]] if v not in options]]
            return w.Dropdown(options=values, value=fields[name], description=name)

        self.scenario = choice("scenario", SCENARIOS)
        self.target = choice("target", TARGETS)
        self.store = choice("store", STORES)
        self.variant = choice("variant", variant_names())
        self.fault = choice("fault", FAULTS)
        self.workers = w.BoundedIntText(value=fields["workers"], min=1, max=16,
                                        description="workers")  # fmt: skip
        self.concurrency = w.IntSlider(value=fields["concurrency"], min=1, max=256,
                                       description="concurrency")  # fmt: skip
        self.operations = w.BoundedIntText(value=fields["operations"], min=1, max=100_000,
                                           description="operations")  # fmt: skip
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="0 ops")
        self.phase = w.HTML("phase: idle")
        self.status = w.HTML("")
        hidden = w.Layout(display="none")  # no broken-image icon before the first figure
        self.live = w.Image(format="png", layout=hidden)
        self.curve = w.Image(format="png", layout=w.Layout(display="none"))
        self.findings = w.HTML("")
        self.output = w.Output()
        self.button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.target.observe(lambda _: self._applicable(reset=True), names="value")
        self.store.observe(lambda _: self._applicable(reset=True), names="value")
        controls = w.VBox(
            [
                w.HBox([self.scenario, self.target, self.store]),
                w.HBox([self.variant, self.fault, self.workers]),
                w.HBox([self.concurrency, self.operations, self.button, self.stop_button]),
            ]
        )
        self.widget = w.VBox(
            [
                controls,
                w.HBox([self.progress, self.phase]),
                self.status,
                self.live,
                self.findings,
                self.curve,
                self.output,
            ]
        )
        self._applicable(reset=False)
        self.checked()

    def _applicable(self, *, reset: bool) -> None:
        """Grey out variant and fault where they cannot apply (variants need http + redis,
        faults a target the workbench starts on redis); ``reset`` puts them back to
        production / none first. A contradictory value given at construction stays editable,
        with the refusal in the status line."""
        zoo = self.target.value == "http" and self.store.value == "redis"
        faults = self.target.value == "url" or zoo
        for widget, default, applies in ((self.variant, "production", zoo),
                                         (self.fault, "none", faults)):  # fmt: skip
            if reset and not applies:
                widget.value = default
            widget.disabled = not applies and widget.value == default
        if reset:
            self.checked()

    def spec(self) -> Experiment:
        """The experiment the controls describe (``ValueError`` if they contradict)."""
        return self.base.with_(
            scenario=self.scenario.value,
            target=self.target.value,
            store=self.store.value,
            variant=self.variant.value,
            fault=self.fault.value,
            workers=int(self.workers.value),
            concurrency=int(self.concurrency.value),
            operations=int(self.operations.value),
        )

    def checked(self) -> Experiment | None:
        """:meth:`spec`, or ``None`` with the reason it was refused shown in :attr:`status`."""
        try:
            spec = self.spec()
        except ValueError as exc:
            self.status.value = (
                f"<b style='color:#b00'>cannot run this experiment: {html.escape(str(exc))}</b>"
            )
            return None
        self.status.value = ""
        return spec

    def run(self) -> Any:
        """Run the controls' experiment with live updates; return the :class:`~kato.lab.run.Run`
        (``None`` if the controls are contradictory, with the reason shown)."""
        from kato.lab.scenarios import plan

        spec = self.checked()
        if spec is None:
            return None
        return self._run(spec, int(plan(spec).size))

    def start(self) -> threading.Thread:
        """What the Run button does: :meth:`run` in a thread, so the kernel stays free to hear
        the Stop button. Returns the thread (``join`` it to wait)."""
        self._thread = threading.Thread(target=self.run, name="kato-explorer-run", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """What the Stop button does: end the running experiment early. Its final reads still
        run and the shortened history is judged (ops in flight count as ``unknown``)."""
        self._stop.set()
        self.phase.value = "phase: <b>stopping</b>"

    def _run(self, spec: Experiment, total: int) -> Any:
        from kato.lab.findings import anomalous_ops
        from kato.lab.grid import row
        from kato.lab.run import run

        live = LivePlot()
        title = f"{spec.scenario} ×{spec.concurrency} on {_label(spec)}"
        self.progress.max, self.progress.value = max(total, 1), 0
        self.status.value = f"running {html.escape(title)}…"
        self.live.layout.display = "none"  # not the previous run's figures while starting
        self.findings.value = ""
        self.button.disabled, self.stop_button.disabled = True, False
        self._stop.clear()
        began = time.monotonic()

        def paint() -> None:
            done = len(live)
            self.progress.value = min(done, self.progress.max)
            self.progress.description = f"{done}/{total} ops"
            if self._stop.is_set():
                return
            if not done:
                self.phase.value = f"phase: <b>starting</b> ({time.monotonic() - began:.0f} s)"
                return
            elapsed = live.elapsed_s()
            eta = elapsed * (total - done) / done if done < total else 0.0
            state = "running" if done < total else "checking"
            self.phase.value = f"phase: <b>{state}</b>, {done}/{total} ops, ETA {eta:.0f} s"
            if self.live_view:
                self.live.value = live.png(title)
                self.live.layout.display = None

        painter = _Painter(paint, self.refresh_s)
        painter.start()
        try:
            result = run(spec, on_op=live.add, stop=self._stop)
        finally:
            painter.finish()
            self.button.disabled, self.stop_button.disabled = False, True
        stopped = " (stopped early)" if self._stop.is_set() else ""
        self.phase.value = f"phase: <b>done</b>{stopped}, {len(live)}/{total} ops"
        self.progress.value = self.progress.max
        self.live.value = live.png(title, anomalous_ops(result.verdicts))
        self.live.layout.display = None
        figures = row(result) | {"runs": _label(spec)}
        self.rows.append(figures)
        self.last = result
        self._show(title, result, figures)
        return result

    def _show(self, title: str, result: Any, figures: dict[str, Any]) -> None:
        """The verdict line, anomalies per checker with a counter-example each, the curves."""
        import pandas as pd

        from kato.lab import plots
        from kato.lab.findings import checker_counts, counter_examples, examples_html

        flagged = {k: v for k, v in checker_counts(result.verdicts).items() if v}
        per_checker = ", ".join(f"{k} {v}" for k, v in flagged.items()) or "none"
        colour = "#b00" if result.valid is False else "inherit"
        self.status.value = (
            f"{html.escape(title)}: valid = <b style='color:{colour}'>{result.valid}</b>, "
            f"{figures['ops']} ops, <b>anomalies {figures['anomalies']}</b> "
            f"(rate {figures['anomaly_rate']:.3f}; by checker: {html.escape(per_checker)}), "
            f"error rate {figures['error_rate']:.3f}, p99 {figures['p99_ms'] or 0:.1f} ms"
        )
        examples = counter_examples(result.verdicts)
        self.findings.value = (
            f"<b>counter-examples</b> (one per failing checker){examples_html(examples)}"
            if examples
            else ""
        )
        frame = pd.DataFrame(self.rows)
        self.curve.value = _png(plots.rates_vs_concurrency(frame, by="runs"))
        self.curve.layout.display = None


def _label(spec: Experiment) -> str:
    """What a curve's line is: where it ran, and the variant and fault only where they apply."""
    parts = [spec.target, spec.store, f"{spec.workers}w"]
    parts += [v for v in (spec.variant, spec.fault) if v not in ("production", "none")]
    return "/".join(parts)


def _png(figure: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def live_view_cost(
    spec: Experiment | None = None, *, repeats: int = 5, refresh_s: float = 0.25
) -> dict[str, float]:
    """p99 latency (ms) of the same explorer run with the live view off and on, the median of
    ``repeats`` runs each (alternated, so drift hits both alike), and their ratio. The default
    spec is an engine run at 32 clients; the view redraws every ``refresh_s``."""
    import statistics

    from kato.lab.spec import Experiment as Spec

    spec = spec or Spec(scenario="shared-session", concurrency=32, operations=2000)
    changes = {name: getattr(spec, name) for name in _CONTROLS}
    p99: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for live in (False, True):
            explorer = Explorer(spec, refresh_s=refresh_s, live=live, **changes)
            explorer.run()
            p99[live].append(float(explorer.rows[-1]["p99_ms"] or 0.0))
    off, on = statistics.median(p99[False]), statistics.median(p99[True])
    return {"p99_off_ms": off, "p99_on_ms": on, "ratio": on / off if off else float("inf")}

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
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from kato.lab.executor import missing
from kato.lab.history import Op
from kato.lab.spec import Experiment, variant_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Explorer", "LivePlot", "live_view_cost", "render"]

#: A plot's layout: hidden until there is something to show (an empty image shows as broken),
#: then at its own size (stretched to the page's width it blurs).
_HIDDEN = {"display": "none", "align_self": "flex-start"}


class LivePlot:
    """Operations as they complete, summarised per time bin and drawn as a Locust-like panel.

    :meth:`add` may be called from any thread (``run``'s ``on_op``) and only appends. The
    explorer's painter thread asks for :meth:`summary` — per-bin counts and percentiles, folded
    in incrementally, a few short arrays — and draws it with :func:`render` in another process,
    so the loop that drives the clients never waits for matplotlib (nor for the GIL matplotlib
    would hold). Once the run is judged, ``anomalous`` (the op ids the checkers' examples name)
    adds the anomalies per second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (op id, completed at s, latency ms, outcome)
        self._points: list[tuple[int, float, float, str]] = []
        self._start: int | None = None
        self._seen = 0
        self._latencies: list[list[float]] = []  # per bin
        self._failures: list[int] = []  # per bin
        self._quantiles: dict[int, tuple[float, float]] = {}  # p50, p95 of bins now closed
        self._outcomes: dict[str, int] = dict.fromkeys(("ok", "fail", "unknown"), 0)

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

    def summary(self, anomalous: Collection[int] = ()) -> dict[str, Any]:
        """Per :data:`_BIN_S` bin: ``t``, ``ops_s``, ``failures_s``, ``anomalies_s``, ``p50``,
        ``p95``; and ``outcomes`` so far. Folds in only what arrived since the last call (one
        caller at a time: the painter, then the explorer once the run is over)."""
        import numpy as np

        with self._lock:
            new = self._points[self._seen :]
            self._seen = len(self._points)
        for _, t, ms, outcome in new:
            b = int(t // _BIN_S)
            while len(self._latencies) <= b:
                self._latencies.append([])
                self._failures.append(0)
            self._latencies[b].append(ms)
            self._failures[b] += outcome != "ok"
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        settled = len(self._latencies) - 2  # bins before it receive no more completions
        quantiles: list[tuple[float, float]] = []
        for b, values in enumerate(self._latencies):
            q = self._quantiles.get(b)
            if q is None:
                p50, p95 = np.percentile(values, [50, 95]) if values else (np.nan, np.nan)
                q = (float(p50), float(p95))
                if b < settled:
                    self._quantiles[b] = q
            quantiles.append(q)
        flagged = [0] * len(self._latencies)
        if anomalous:
            with self._lock:
                for op_id, t, _, _ in self._points:
                    if op_id in anomalous:
                        flagged[int(t // _BIN_S)] += 1
        per_s = 1 / _BIN_S
        return {
            "t": [b * _BIN_S for b in range(len(self._latencies))],
            "ops_s": [len(v) * per_s for v in self._latencies],
            "failures_s": [f * per_s for f in self._failures],
            "anomalies_s": [f * per_s for f in flagged],
            "p50": [q[0] for q in quantiles],
            "p95": [q[1] for q in quantiles],
            "outcomes": {**self._outcomes, "anomaly": sum(flagged)},
        }

    def png(self, title: str = "", anomalous: Collection[int] = ()) -> bytes:
        """:func:`render` of the :meth:`summary` so far, in this process."""
        return render(self.summary(anomalous), title)


def render(summary: dict[str, Any], title: str = "") -> bytes:
    """A :meth:`LivePlot.summary` as PNG: ops, failures and anomalies per second (symlog);
    p50/p95 latency per bin; outcomes. A plain function of a few short lists, so the explorer
    draws it in another process."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 3.0), layout="constrained")
    rates, latency, counts = figure.subplots(1, 3, width_ratios=[3, 3, 2])
    for key, colour in (("ops_s", "tab:blue"), ("failures_s", "tab:orange"),
                        ("anomalies_s", "tab:red")):  # fmt: skip
        rates.plot(summary["t"], summary[key], label=key.replace("_s", "/s"), color=colour)
    rates.set_yscale("symlog", linthresh=1)
    rates.set_xlabel("time since the first operation started (s)")
    rates.grid(alpha=0.3)
    rates.set_title(title or "operations per second")
    rates.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for key, style in (("p50", "-"), ("p95", "--")):
        latency.plot(summary["t"], summary[key], style, color="tab:blue", label=key)
    latency.set_xlabel("time since the first operation started (s)")
    latency.set_ylabel("latency (ms)")
    latency.grid(alpha=0.3)
    latency.set_title("latency per bin")
    latency.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    outcomes = summary["outcomes"]
    colours = {"ok": "tab:blue", "fail": "tab:orange", "unknown": "tab:grey", "anomaly": "tab:red"}
    counts.bar(list(colours), [outcomes.get(k, 0) for k in colours], color=list(colours.values()))
    counts.set_ylabel("operations")
    counts.set_title(f"outcomes of {sum(v for k, v in outcomes.items() if k != 'anomaly')} ops")
    return _png(figure)


#: The live panel's time bins (seconds).
_BIN_S = 0.5


_pool: ProcessPoolExecutor | None = None


def _renderer() -> ProcessPoolExecutor:
    """One process that draws live panels for every explorer of this kernel (started on first
    use): matplotlib there holds no lock the clients' event loop needs (the GIL of this one)."""
    global _pool
    if _pool is None:
        import multiprocessing

        _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        _pool.submit(_warm)  # starts the process and imports matplotlib before the first run
    return _pool


def _draw(summary: dict[str, Any], title: str) -> bytes:
    """:func:`render` in the renderer process; in this thread if that process cannot run (a
    script read from stdin cannot be re-imported by a spawned process)."""
    global _pool
    try:
        return _renderer().submit(render, summary, title).result()
    except BrokenProcessPool:
        _pool = None
        return render(summary, title)


def _warm() -> None:
    import matplotlib.figure  # noqa: F401


class _Painter(threading.Thread):
    """Calls ``paint`` every ``every_s`` seconds until stopped: the live view is refreshed
    here, never in the thread whose event loop drives the clients."""

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
    and greys them out. While a run goes, :attr:`progress` counts its operations and the status
    line says how many are planned; after it, :attr:`status` gives the verdict (anomalies first,
    per checker), the run is a new row of :attr:`rows`, the curves of anomaly rate and error
    rate vs concurrency over all runs so far (:attr:`curve`) and the table of those runs headed
    by their count (:attr:`runs`) are redrawn — each Run adds a point a person can see and
    count — and :attr:`findings` shows one counter-example per failing checker. Display it
    with ``display(explorer.widget)``; the Run button runs in a thread of its own (so Stop can
    be pressed; a failure is shown in the status line), :meth:`run` runs in the caller's
    (headless notebooks call it directly). Its parts carry the CSS classes
    ``kato-explorer-<name>`` (``<name>`` the attribute: ``button``, ``stop_button``, ``runs``…).

    The live panel (:class:`LivePlot`, :attr:`phase`: starting / running / checking, n/N and
    an ETA, the last bin's rates and percentiles) is refreshed every ``refresh_s`` by a painter
    thread, never by the clients' event loop; its figure is drawn from the recorded operations
    once the clients are done, or also every ``draw_s`` seconds while they run (in a process
    of its own; on a loaded 2-core machine that still costs an engine run's p99 several times
    its 0.3 ms, so it is off by default). ``live=False`` turns the panel off; see
    :func:`live_view_cost`."""

    def __init__(
        self,
        spec: Experiment,
        *,
        refresh_s: float = 1.0,
        draw_s: float | None = None,
        live: bool = True,
        **changes: Any,
    ) -> None:
        try:
            import ipywidgets as w
        except ImportError:
            raise missing("ipywidgets") from None
        from kato.lab.spec import FAULTS, SCENARIOS, STORES, TARGETS

        self.base = spec
        self.refresh_s = refresh_s
        self.draw_s = draw_s
        self.live_view = live
        self.rows: list[dict[str, Any]] = []
        self.last: Any = None
        #: Live figures drawn while the clients ran, over all runs.
        self.paints = 0
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
        self.button.tooltip = "run this experiment and add a point to the curve"
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.stop_button.tooltip = "end the run early; its final reads still run and are judged"
        self.progress = w.IntProgress(value=0, min=0, max=1, description="0 ops")
        self.phase = w.HTML("phase: idle")
        self.status = w.HTML(_READY)
        self._refused = False
        self.live = w.Image(format="png", layout=_HIDDEN)
        self.curve = w.Image(format="png", layout=_HIDDEN)
        self.runs = w.HTML(_runs_html([]))
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
                self.runs,
                self.output,
            ]
        )
        # Stable names for what a person (and tests/browser) looks for on the page.
        for name in ("widget", "button", "stop_button", "concurrency", "operations", "progress",
                     "phase", "status", "live", "findings", "curve", "runs"):  # fmt: skip
            getattr(self, name).add_class(f"kato-explorer-{name}")
        self._applicable(reset=False)
        self.checked()
        if live and draw_s is not None:
            _renderer()

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
            self.status.value = _alarm(f"cannot run this experiment: {exc}")
            self._refused = True
            return None
        if self._refused:  # fixed: the refusal no longer holds
            self.status.value, self._refused = _READY, False
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
        self._thread = threading.Thread(target=self._clicked, name="kato-explorer-run", daemon=True)
        self._thread.start()
        return self._thread

    def _clicked(self) -> None:
        """:meth:`run` for the Run button: a failure is shown in the status line, where a person
        looks (raised from the button's thread it would reach no one)."""
        try:
            self.run()
        except Exception as exc:
            self.status.value = _alarm(f"the run failed: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """What the Stop button does: end the running experiment early. Its final reads still
        run and the shortened history is judged (ops in flight count as ``unknown``). Nothing
        to do once the run has ended (its phase says ``done`` and stays so)."""
        if self.stop_button.disabled:
            return
        self._stop.set()
        self.phase.value = "phase: <b>stopping</b>"

    def _run(self, spec: Experiment, total: int) -> Any:
        from kato.lab.findings import anomalous_ops
        from kato.lab.grid import row
        from kato.lab.run import run

        live = LivePlot()
        title = f"{spec.scenario} ×{spec.concurrency} on {spec.target}/{spec.store}"
        title += "".join(f" {v}" for v in (spec.variant, spec.fault) if v not in _DEFAULTS)
        self.progress.max, self.progress.value = max(total, 1), 0
        # The plan can hold fewer operations than asked (shared-session stops at the STM budget).
        self.status.value = f"running {html.escape(title)}: {total} operations planned…"
        self.live.layout.display = "none"  # not the previous run's figures while starting
        self.findings.value = ""
        self.button.disabled, self.stop_button.disabled = True, False
        self._stop.clear()
        began = time.monotonic()

        drawn = [time.monotonic()]

        def paint() -> None:
            done = len(live)
            self.progress.value = min(done, self.progress.max)
            self.progress.description = f"{done} ops"
            if self._stop.is_set():
                return
            if not done:
                self.phase.value = f"phase: <b>starting</b> ({time.monotonic() - began:.0f} s)"
                return
            elapsed = live.elapsed_s()
            eta = elapsed * (total - done) / done if done < total else 0.0
            state = "running" if done < total else "checking"
            self.phase.value = f"phase: <b>{state}</b>, {done}/{total} ops, ETA {eta:.0f} s"
            if not self.live_view:
                return
            summary = live.summary()
            last = -2 if len(summary["t"]) > 1 else -1  # the last bin still fills
            self.phase.value += (
                f"; {summary['ops_s'][last]:.0f} ops/s, {summary['failures_s'][last]:.0f} "
                f"failures/s, p50 {summary['p50'][last]:.1f} ms, p95 {summary['p95'][last]:.1f} ms"
            )
            if self.draw_s is not None and time.monotonic() - drawn[0] >= self.draw_s:
                self.live.value = _draw(summary, title)
                self.live.layout.display = None
                self.paints += 1
                drawn[0] = time.monotonic()

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
        self.progress.description = f"{len(live)} ops"
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
        style = " style='color:#b00'" if result.valid is False else ""
        self.status.value = (
            f"{html.escape(title)}: valid = <b{style}>{result.valid}</b>, "
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
        figure = plots.rates_vs_concurrency(frame, by="runs")
        for axes in figure.axes:  # points on zero clear of the axis
            if axes.get_yscale() == "linear":
                axes.set_ylim(bottom=-0.03 * axes.get_ylim()[1])
        self.curve.value = _png(figure)
        self.curve.layout.display = None
        self.runs.value = _runs_html(self.rows)


#: The variant and fault that change nothing (left out of titles and line labels).
_DEFAULTS = ("production", "none")

#: The status line before a run.
_READY = "press <b>Run</b> to run this experiment"

#: The columns of the runs table under the curve.
_RUN_COLUMNS = ("concurrency", "scenario", "store", "variant", "fault", "workers", "ops",
                "anomalies", "anomaly_rate", "error_rate", "valid", "p99_ms")  # fmt: skip


def _label(spec: Experiment) -> str:
    """What a curve's line is: where it ran, and the variant and fault only where they apply."""
    parts = [spec.target, spec.store, f"{spec.workers}w"]
    parts += [v for v in (spec.variant, spec.fault) if v not in _DEFAULTS]
    return "/".join(parts)


def _alarm(text: str) -> str:
    """``text`` as the status line shows what stops a run: bold and red."""
    return f"<b style='color:#b00'>{html.escape(text)}</b>"


def _runs_html(rows: Sequence[dict[str, Any]]) -> str:
    """The runs so far (each a point of the curve) as an HTML table, headed by their count."""
    if not rows:
        return "<p class='kato-explorer-count'>no runs yet: each Run adds a point to the curve</p>"
    import pandas as pd

    table = pd.DataFrame(list(rows), columns=list(_RUN_COLUMNS)).round(3)
    shown = str(table.to_html(index=False, na_rep="", classes="kato-explorer-table"))
    return f"<p class='kato-explorer-count'>{len(rows)} run(s) on the curve</p>{shown}"


def _png(figure: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def live_view_cost(
    spec: Experiment | None = None,
    *,
    repeats: int = 5,
    refresh_s: float = 1.0,
    draw_s: float | None = None,
) -> dict[str, float]:
    """p99 latency (ms) of the same explorer run with the live view off and on, the median of
    ``repeats`` runs each (alternated, so drift hits both alike), their ratio, and how many
    live figures the "on" runs drew while the clients ran (the explorer's defaults: the panel
    every ``refresh_s``, no figure until the clients are done unless ``draw_s`` is given). The
    default spec is an engine run at 32 clients of 40 000 operations (seconds of clients)."""
    import statistics

    from kato.lab.spec import Experiment as Spec

    spec = spec or Spec(scenario="mixed", concurrency=32, operations=40_000)
    changes = {name: getattr(spec, name) for name in _CONTROLS}
    p99: dict[bool, list[float]] = {False: [], True: []}
    paints = 0
    for _ in range(repeats):
        for live in (False, True):
            explorer = Explorer(spec, refresh_s=refresh_s, draw_s=draw_s, live=live, **changes)
            explorer.run()
            p99[live].append(float(explorer.rows[-1]["p99_ms"] or 0.0))
            paints += explorer.paints
    off, on = statistics.median(p99[False]), statistics.median(p99[True])
    ratio = on / off if off else float("inf")
    return {"p99_off_ms": off, "p99_on_ms": on, "ratio": ratio, "paints": paints}

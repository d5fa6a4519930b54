"""The concurrency explorer: controls for one experiment, a Run button, live plots.

``notebooks/02-concurrency-explorer`` shows :class:`Explorer`; :class:`LivePlot` draws the
operations of the running experiment as they complete. Contradictory controls (an experiment
that refuses its fields) are reported in the status line, never as a traceback.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kato.lab.executor import missing
from kato.lab.history import Op
from kato.lab.spec import Experiment, variant_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Explorer", "LivePlot"]

#: A plot's layout: hidden until there is something to show (an empty image shows as broken),
#: then at its own size (stretched to the page's width it blurs).
_HIDDEN = {"display": "none", "align_self": "flex-start"}


class LivePlot:
    """Operations as they complete, drawn as PNG: latency over time and outcomes so far.

    :meth:`add` may be called from any thread (``run``'s ``on_op``); :meth:`png` draws."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: list[tuple[float, float, str]] = []
        self._start: int | None = None

    def add(self, op: Op) -> None:
        if op.f == "fault" or op.complete_ns is None or op.latency_ns is None:
            return
        with self._lock:
            if self._start is None:
                self._start = op.invoke_ns
            self._points.append(
                ((op.complete_ns - self._start) / 1e9, op.latency_ns / 1e6, op.outcome)
            )

    def __len__(self) -> int:
        return len(self._points)

    def png(self, title: str = "") -> bytes:
        from matplotlib.figure import Figure

        with self._lock:
            points = list(self._points)
        figure = Figure(figsize=(9, 3.2), layout="constrained")
        latency, counts = figure.subplots(1, 2)
        colours = {"ok": "tab:blue", "fail": "tab:orange", "unknown": "tab:red"}
        totals = dict.fromkeys(colours, 0)
        for outcome, colour in colours.items():
            mine = [(t, ms) for t, ms, o in points if o == outcome]
            totals[outcome] = len(mine)
            if mine:
                latency.scatter(*zip(*mine, strict=True), s=6, color=colour, label=outcome)
        latency.set_xlabel("time since the first operation started (s)")
        latency.set_ylabel("latency (ms)")
        latency.set_title(title or "operations as they complete")
        latency.grid(alpha=0.3)
        if points:  # beside the plot, where it hides no point
            latency.legend(title="outcome", fontsize="small", loc="upper left",
                           bbox_to_anchor=(1.0, 1.0))  # fmt: skip
        counts.bar(list(totals), list(totals.values()), color=list(colours.values()))
        counts.set_ylabel("operations")
        counts.set_title(f"outcomes of {len(points)} operations")
        return _png(figure)


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
    """Controls for one experiment, a Run button, a progress bar and plots that update live.

    The controls start from ``spec`` changed by ``changes`` (a notebook's parameters); if those
    contradict each other (``Experiment`` refuses them: say variant ``r1-read-writeback`` on
    the ``engine`` target) the reason is shown in :attr:`status` and :meth:`run` refuses until
    the controls are fixed. While a run goes, :attr:`progress` counts its operations and
    :attr:`live` redraws every ``refresh_s``; after it, :attr:`status` gives the verdict, the run
    is a new row of :attr:`rows`, and the curve of error rate vs concurrency over all runs so far
    (:attr:`curve`) and the table of those runs headed by their count (:attr:`runs`) are redrawn:
    each Run adds a point a person can see and count. Display it with
    ``display(explorer.widget)``; :meth:`run` does what the button does (headless notebooks
    call it directly). Its parts carry the CSS classes ``kato-explorer-<name>``.

    A redraw holds the interpreter for a fraction of a second, and an ``engine`` run shares
    this kernel's interpreter: its latencies carry those pauses (an ``http`` run's server does
    not). Measure latency with ``kato lab run`` or the experiments, not the live plot."""

    def __init__(self, spec: Experiment, *, refresh_s: float = 0.5, **changes: Any) -> None:
        try:
            import ipywidgets as w
        except ImportError:
            raise missing("ipywidgets") from None
        from kato.lab.spec import FAULTS, SCENARIOS, STORES, TARGETS

        self.base = spec
        self.refresh_s = refresh_s
        self.rows: list[dict[str, Any]] = []
        self.last: Any = None
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
        self.progress = w.IntProgress(value=0, min=0, max=1, description="0 ops")
        self.status = w.HTML("press <b>Run</b> to run this experiment")
        self.live = w.Image(format="png", layout=_HIDDEN)
        self.curve = w.Image(format="png", layout=_HIDDEN)
        self.runs = w.HTML(_runs_html([]))
        self.output = w.Output()
        self.button.on_click(self._clicked)
        controls = w.VBox(
            [
                w.HBox([self.scenario, self.target, self.store]),
                w.HBox([self.variant, self.fault, self.workers]),
                w.HBox([self.concurrency, self.operations, self.button]),
            ]
        )
        self.widget = w.VBox(
            [controls, self.progress, self.status, self.live, self.curve, self.runs, self.output]
        )
        # Stable names for what a person (and tests/browser) looks for on the page.
        for name in ("widget", "button", "concurrency", "operations", "progress", "status",
                     "live", "curve", "runs"):  # fmt: skip
            getattr(self, name).add_class(f"kato-explorer-{name}")
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
            return self.spec()
        except ValueError as exc:
            self.status.value = _alarm(f"cannot run this experiment: {exc}")
            return None

    def run(self) -> Any:
        """Run the controls' experiment with live updates; return the :class:`~kato.lab.run.Run`
        (``None`` if the controls are contradictory, with the reason shown)."""
        from kato.lab.scenarios import plan

        spec = self.checked()
        if spec is None:
            return None
        return self._run(spec, int(plan(spec).size))

    def _clicked(self, _: Any) -> None:
        """The Run button: a failure is shown in the status line, where a person looks (raised
        from here it would only reach JupyterLab's log console, out of sight)."""
        try:
            self.run()
        except Exception as exc:
            self.status.value = _alarm(f"the run failed: {type(exc).__name__}: {exc}")

    def _run(self, spec: Experiment, total: int) -> Any:
        import pandas as pd

        from kato.lab import plots
        from kato.lab.grid import row
        from kato.lab.run import run

        live = LivePlot()
        title = f"{spec.scenario} ×{spec.concurrency} on {spec.target}/{spec.store}"
        self.progress.max, self.progress.value = max(total, 1), 0
        # The plan can hold fewer operations than asked (shared-session stops at the STM budget).
        self.status.value = f"running {html.escape(title)}: {total} operations planned…"
        self.button.disabled = True

        def show() -> None:
            self.progress.value = min(len(live), self.progress.max)
            self.progress.description = f"{len(live)} ops"
            self.live.value = live.png(title)
            self.live.layout.display = None

        # Drawing takes far longer than an operation: a thread of its own redraws every
        # refresh_s, so the runner's loop only records (a draw per operation would slow the
        # run and inflate the latencies it measures).
        done = threading.Event()

        def redraw() -> None:
            while not done.wait(self.refresh_s):
                show()

        drawer = threading.Thread(target=redraw, name="kato-explorer-draw", daemon=True)
        drawer.start()
        try:
            result = run(spec, on_op=live.add)
        finally:
            done.set()
            drawer.join()
            self.button.disabled = False
        show()
        figures = row(result)
        self.rows.append(figures)
        self.last = result
        frame = pd.DataFrame(self.rows)
        frame["runs"] = frame[list(_LINE)].astype(str).agg("/".join, axis=1)
        figure = plots.failure_rate_vs_concurrency(frame, by="runs", rate="error_rate")
        _readable(figure, frame["concurrency"])
        self.curve.value = _png(figure)
        self.curve.layout.display = None
        self.runs.value = _runs_html(self.rows)
        self.status.value = (
            f"{html.escape(title)}: valid = <b>{result.valid}</b>, {figures['ops']} ops, "
            f"error rate {figures['error_rate']:.3f}, p99 {figures['p99_ms'] or 0:.1f} ms"
        )
        return result


#: What makes runs one line of the curve (the rest, concurrency above all, varies along it).
_LINE = ("scenario", "store", "variant", "fault")

#: The columns of the runs table under the curve.
_RUN_COLUMNS = ("concurrency", *_LINE, "workers", "ops", "error_rate", "anomalies", "valid",
                "p99_ms")  # fmt: skip


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


def _readable(figure: Figure, concurrency: Any) -> None:
    """The curve as the explorer shows it: as wide as the live plot above it, ticks at the
    concurrencies run (numbers, not powers of two), points on zero clear of the axis, and the
    legend beside the plot, where it hides no point."""
    axes = figure.axes[0]
    figure.set_size_inches(9, 3.6)
    values = sorted({int(c) for c in concurrency})
    axes.set_xticks(values, [str(c) for c in values])
    axes.minorticks_off()
    axes.set_ylim(bottom=-0.03 * axes.get_ylim()[1])
    axes.legend(title="/".join(_LINE), fontsize="small", loc="upper left",
                bbox_to_anchor=(1.0, 1.0))  # fmt: skip


def _png(figure: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()

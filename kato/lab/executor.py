"""Papermill execution: run one experiment notebook headlessly, never over its source.

An *experiment notebook* (``experiments/*.ipynb``) follows papermill's contract: one cell tagged
``parameters`` with small defaults, one of which is ``output_dir``; thin cells that call
:mod:`kato.lab`; and a last call to :func:`kato.lab.notebooks.record`, which writes
``results.json`` into ``output_dir`` and glues the same rows into the notebook as an output of
MIME type :data:`RESULTS_MIME` (:func:`glued` reads them back). :func:`execute` runs one
notebook with parameters into a folder; :func:`kato.lab.grid.run_notebooks` runs one per cell
of a grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kato._version import DISTRIBUTION

__all__ = [
    "RESULTS_MIME",
    "NotebookError",
    "check_parameters",
    "execute",
    "glued",
    "missing",
    "notebook_parameters",
]

#: The MIME type under which :func:`kato.lab.notebooks.record` glues a notebook's rows.
RESULTS_MIME = "application/vnd.kato.results+json"


def missing(package: str) -> ImportError:
    """The error for a notebook dependency that is not installed (the ``lab`` extra)."""
    return ImportError(
        f"kato.lab needs {package} for notebooks, part of the 'lab' extra: "
        f"pip install '{DISTRIBUTION}[lab]'"
    )


class NotebookError(RuntimeError):
    """A notebook failed while executing. The executed notebook is kept at ``path``; ``cell``
    is the index of the failing cell in it and ``source`` that cell's first line."""

    def __init__(self, message: str, *, path: Path, cell: int | None, source: str) -> None:
        super().__init__(message)
        self.path = path
        self.cell = cell
        self.source = source


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters a notebook declares (its ``parameters`` cell), by name, with defaults."""
    try:
        import papermill
    except ImportError:
        raise missing("papermill") from None
    found = papermill.inspect_notebook(str(notebook))
    return {name: info.get("default") for name, info in found.items()}


def check_parameters(notebook: Path, names: Iterable[str]) -> dict[str, Any]:
    """The notebook's declared parameters; ``ValueError`` naming any of ``names`` it lacks."""
    declared = notebook_parameters(notebook)
    unknown = sorted(set(names) - set(declared))
    if unknown:
        raise ValueError(
            f"{notebook.name} has no parameter(s) {', '.join(unknown)}; "
            f"it declares {', '.join(sorted(declared)) or 'none'}"
        )
    return declared


def _failing_cell(path: Path) -> tuple[int | None, str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = next((line for line in cell.source.splitlines() if line.strip()), "")
                return index, first
    return None, ""


def execute(
    notebook: Path | str,
    parameters: Mapping[str, Any],
    output_dir: Path | str,
    *,
    timeout_s: float = 600.0,
) -> Path:
    """Execute ``notebook`` with ``parameters`` into ``output_dir``; return the executed copy.

    The executed notebook is ``output_dir/<notebook name>`` (never the source). If the
    notebook declares ``output_dir`` and ``parameters`` does not set it, it is set to
    ``output_dir``. Runs with the working directory ``output_dir``.

    Raises
    ------
    ValueError
        A parameter the notebook's ``parameters`` cell does not declare.
    NotebookError
        A cell raised; the executed notebook, error included, is kept and named in the message.
    """
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError
    except ImportError:
        raise missing("papermill") from None
    source = Path(notebook).resolve()
    folder = Path(output_dir).resolve()
    declared = check_parameters(source, parameters)
    params = dict(parameters)
    if "output_dir" in declared and "output_dir" not in params:
        params["output_dir"] = str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    if target == source:
        raise ValueError(f"refusing to write the executed notebook over its source {source}")
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=params,
            cwd=str(folder),
            progress_bar=False,
            execution_timeout=timeout_s,
            # The kernel's own start-up warnings (plain TCP on loopback) are noise here.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as exc:
        cell, first = _failing_cell(target)
        raise NotebookError(
            f"{source.name}: cell {cell} ({first!r}) raised {exc.ename}: {exc.evalue}; "
            f"executed notebook kept at {target}",
            path=target,
            cell=cell,
            source=first,
        ) from exc
    return target


def glued(notebook: Path | str) -> dict[str, Any] | None:
    """What :func:`kato.lab.notebooks.record` glued into an executed notebook, or ``None``."""
    import nbformat

    nb = nbformat.read(Path(notebook), as_version=4)  # type: ignore[no-untyped-call]
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RESULTS_MIME in data:
                return dict(data[RESULTS_MIME])
    return None

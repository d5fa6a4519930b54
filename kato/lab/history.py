"""The history of a run: one :class:`Op` per operation, invocation and completion together.

Every client operation and every fault is an ``Op``. ``outcome`` is ``"ok"`` (it happened),
``"fail"`` (it certainly did not: the service refused it with a 4xx and a stable code) or
``"unknown"`` (a timeout, a dropped connection, a 5xx: it may or may not have happened). Times
are ``time.monotonic_ns()`` of the process that ran the clients. ``args`` and ``value`` are
JSON-able dicts; the fields that checkers read are named per operation in :data:`OPERATIONS`.

Histories are saved as Parquet (``args``/``value`` as JSON text) together with the run's
parameters, so any run can be checked and plotted again later. While a run goes, its
:class:`Journal` appends each completed op to a JSON-lines file, so a run that crashes or is
interrupted still leaves a history; :meth:`History.read` reads either form.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

__all__ = [
    "JOURNAL",
    "OPERATIONS",
    "PARQUET",
    "History",
    "Journal",
    "Op",
    "Outcome",
    "history_file",
]

#: The file names of a run folder's history: the final one, and the journal written meanwhile.
PARQUET = "history.parquet"
JOURNAL = "history.jsonl"

Outcome = Literal["ok", "fail", "unknown"]

#: What each operation's ``args`` and ``value`` hold (the contract between clients and checkers).
OPERATIONS: dict[str, str] = {
    "create": "args {node_id, ttl_seconds?}; value {session_id}",
    "observe": "args {strings: [str], unique_id?}; value {time, stm_length, attempts?}",
    "read_stm": "value {stm: [[str]]}",
    "read_session": "value {ttl_seconds}",
    "delete": "value {}",
    "learn": "value {pattern_name}",
    "get_pattern": "args {node_id, pattern_name}; value {frequency}",
    "count": "value {count}",
    "fault": "args {name, phase: 'start'|'stop'}; a nemesis operation (client 'nemesis')",
}


@dataclass(slots=True)
class Op:
    """One operation: who did what to which session, when, and how it ended."""

    op_id: int
    client: str
    f: str
    session_id: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    invoke_ns: int = 0
    complete_ns: int | None = None
    outcome: Outcome = "unknown"
    value: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    http_status: int | None = None
    worker_pid: int | None = None
    #: Open-loop runs: when the schedule meant to invoke it (latency counts from here, so a
    #: slow server cannot hide its queueing: no coordinated omission).
    intended_ns: int | None = None

    @property
    def latency_ns(self) -> int | None:
        """Completion minus the intended (open loop) or actual invocation time."""
        if self.complete_ns is None:
            return None
        return self.complete_ns - (
            self.intended_ns if self.intended_ns is not None else self.invoke_ns
        )

    def precedes(self, other: Op) -> bool:
        """Real-time order: this completed before ``other`` was invoked."""
        return self.complete_ns is not None and self.complete_ns < other.invoke_ns


class History(Sequence[Op]):
    """An ordered list of ops (by ``op_id``) with Parquet persistence."""

    def __init__(self, ops: Iterable[Op] = ()) -> None:
        self._ops = sorted(ops, key=lambda op: op.op_id)

    def __len__(self) -> int:
        return len(self._ops)

    def __getitem__(self, index: int) -> Op:  # type: ignore[override]
        return self._ops[index]

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops)

    def by_session(self) -> dict[str, list[Op]]:
        """Ops grouped by session id, each group in invocation order."""
        groups: dict[str, list[Op]] = {}
        for op in sorted(self._ops, key=lambda o: (o.invoke_ns, o.op_id)):
            if op.session_id is not None:
                groups.setdefault(op.session_id, []).append(op)
        return groups

    def records(self) -> list[dict[str, Any]]:
        """Plain dicts, ``args``/``value`` as JSON text (the Parquet and DataFrame form)."""
        rows = []
        for op in self._ops:
            row = asdict(op)
            row["args"] = json.dumps(op.args, sort_keys=True)
            row["value"] = json.dumps(op.value, sort_keys=True)
            rows.append(row)
        return rows

    def to_parquet(self, path: Path, *, metadata: dict[str, Any] | None = None) -> None:
        """Write the history (and the run's ``metadata``, as JSON in the file's schema)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(self.records(), schema=_schema(pa))
        if metadata is not None:
            table = table.replace_schema_metadata({"kato": json.dumps(metadata, default=str)})
        pq.write_table(table, path)

    @classmethod
    def read(cls, path: Path) -> tuple[History, dict[str, Any]]:
        """Read a Parquet history, a journal, or a run folder's (see :func:`history_file`)."""
        path = history_file(path)
        if path.suffix == ".jsonl":
            return cls.from_journal(path)
        return cls.from_parquet(path)

    @classmethod
    def from_journal(cls, path: Path) -> tuple[History, dict[str, Any]]:
        """Read a journal written by :class:`Journal`; a last line cut short by a crash (the
        write it was in the middle of) is left out."""
        lines = path.read_text().splitlines()
        metadata: dict[str, Any] = {}
        ops = []
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break
                raise ValueError(f"{path}:{number}: not a journal line") from None
            if "metadata" in row:
                metadata = row["metadata"]
            else:
                ops.append(Op(**row))
        return cls(ops), metadata

    @classmethod
    def from_parquet(cls, path: Path) -> tuple[History, dict[str, Any]]:
        """Read a history written by :meth:`to_parquet`, with its metadata."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        metadata = json.loads(meta.get(b"kato", b"{}"))
        ops = []
        for row in table.to_pylist():
            row["args"] = json.loads(row["args"])
            row["value"] = json.loads(row["value"])
            ops.append(Op(**row))
        return cls(ops), metadata


class Journal:
    """A history written as it happens: a first line ``{"metadata": ...}``, then one JSON line
    per op as it completes, each flushed at once (so a killed process loses at most a line).
    Use it under :func:`contextlib.closing`."""

    def __init__(self, path: Path, metadata: dict[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("x")  # never appends to another run's journal
        self._line({"metadata": metadata})

    def write(self, op: Op) -> None:
        self._line(asdict(op))

    def _line(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("op_id", pa.int64()),
            ("client", pa.string()),
            ("f", pa.string()),
            ("session_id", pa.string()),
            ("args", pa.string()),
            ("invoke_ns", pa.int64()),
            ("complete_ns", pa.int64()),
            ("outcome", pa.string()),
            ("value", pa.string()),
            ("error_code", pa.string()),
            ("http_status", pa.int64()),
            ("worker_pid", pa.int64()),
            ("intended_ns", pa.int64()),
        ]
    )


def history_file(path: Path) -> Path:
    """The history file ``path`` names: itself, or a run folder's Parquet file, else its journal
    (the run did not finish). ``FileNotFoundError`` when there is none."""
    if path.is_dir():
        path = path / PARQUET if (path / PARQUET).exists() else path / JOURNAL
    if not path.exists():
        raise FileNotFoundError(f"no history at {path}")
    return path

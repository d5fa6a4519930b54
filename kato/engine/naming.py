"""Names of patterns and vectors: content hashes that every process computes identically.

A pattern's name is the SHA-1 of Python's ``repr`` of its events (engine.md §1.3); a vector
observation's symbol is the SHA-1 of numpy's default text rendering of the summed vector (§1.6).
Both depend only on content, never on hash seeds, dict order or the process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

PATTERN_PREFIX = "PTRN|"
VECTOR_PREFIX = "VCTR|"

__all__ = [
    "PATTERN_PREFIX",
    "VECTOR_PREFIX",
    "bare_pattern_name",
    "pattern_hash",
    "pattern_name",
    "vector_symbol",
]


def pattern_hash(events: Sequence[Sequence[str]]) -> str:
    """Lowercase hex SHA-1 of ``repr`` of the pattern as a list of lists of ``str``.

    >>> pattern_hash([["hello"], ["world"]])
    '7d0678ba6305341ce0d25133ab086208656a562f'
    """
    text = repr([list(event) for event in events])
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def pattern_name(events: Sequence[Sequence[str]]) -> str:
    """The public name ``PTRN|<hash>`` of a pattern."""
    return PATTERN_PREFIX + pattern_hash(events)


def bare_pattern_name(name: str) -> str:
    """Accept ``PTRN|<hash>`` or ``<hash>`` and return the bare hash."""
    return name.removeprefix(PATTERN_PREFIX)


def vector_symbol(vectors: Sequence[Sequence[float]]) -> str:
    """The one ``VCTR|<hash>`` symbol of an observation's vectors (all of one length).

    The text hashed is ``str()`` of the float64 element-wise sum under numpy's *default*
    print options, passed explicitly so that nobody's process-wide setting can change a name.
    """
    total = np.sum(np.asarray(vectors, dtype=np.float64), axis=0)
    text = np.array2string(
        total,
        max_line_width=75,
        precision=8,
        suppress_small=False,
        separator=" ",
        prefix="",
        threshold=1000,
        edgeitems=3,
        sign="-",
        floatmode="maxprec",
        legacy=False,
    )
    return VECTOR_PREFIX + hashlib.sha1(text.encode("utf-8")).hexdigest()

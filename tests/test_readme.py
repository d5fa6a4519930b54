"""README's examples run and print what README says they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_python_examples_print_their_comments(server_url: str) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2, "README lost its in-process or HTTP example"
    for block in blocks:
        block = block.replace("http://127.0.0.1:8000", server_url)
        expected = [m.group(1).strip() for m in re.finditer(r"#\s*(.+)$", block, flags=re.M)]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {})
        printed = out.getvalue().split()
        for value in expected:
            assert value in printed, f"README promises {value!r}; printed {printed}"


def test_demo_prints_learned_patterns_and_predictions() -> None:
    from kato import demo

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        demo.main()
    text = out.getvalue()
    assert text.count("learned ") == len(demo.SEQUENCES)
    assert "most likely next: email → standup" in text

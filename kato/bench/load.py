"""HTTP load for ``kato bench``: ``wrk`` when the machine has it, else an aiohttp loop.

Python HTTP clients cannot measure a server's ceiling (measured here: one shared
``httpx.AsyncClient`` stalls near 200 req/s while uvicorn serves ~20,000), so the reference rates
come from ``wrk`` (Debian's ``wrk``; ``make bench`` installs it). Without it the benchmark still
runs, over aiohttp, and every HTTP ratio row says it is not comparable (and its goal missed):
it would compare two client-bound figures. ``kato bench --load-tool aiohttp`` forces that path.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TOOLS", "Load", "Request", "load_tool", "run_load"]

#: The load tools: ``wrk`` measures a server's ceiling; ``aiohttp`` measures itself.
TOOLS = ("wrk", "aiohttp")


@dataclass(frozen=True, slots=True)
class Request:
    """Requests cycled over ``paths`` (one each, round robin), all with the same method and body."""

    method: str
    paths: Sequence[str]
    body: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class Load:
    """What one load run saw: rate, latency percentiles, and how many requests did not succeed."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str
    connections: int

    @property
    def understated(self) -> bool:
        """Whether too few requests were answered for the rate to mean the server's: the
        ``connections`` requests still in flight when the load stops are not counted, which is
        noise for a fast route and most of the figure for a slow one."""
        return self.requests < 10 * self.connections


def load_tool(requested: str | None = None) -> str:
    """``requested`` if given (one of :data:`TOOLS`), else ``wrk`` if it is on the PATH, else
    ``aiohttp``."""
    if requested is None:
        return "wrk" if shutil.which("wrk") else "aiohttp"
    if requested not in TOOLS:
        raise ValueError(f"unknown load tool {requested!r}; known: {', '.join(TOOLS)}")
    if requested == "wrk" and not shutil.which("wrk"):
        raise ValueError("wrk is not on the PATH (make bench installs it)")
    return requested


def run_load(
    base_url: str,
    request: Request,
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
    tool: str | None = None,
) -> Load:
    """Drive ``request`` against ``base_url`` for ``seconds`` with ``connections`` in flight,
    with ``tool`` (see :func:`load_tool`)."""
    if load_tool(tool) == "wrk":
        return _wrk(base_url, request, seconds=seconds, connections=connections, threads=threads)
    return asyncio.run(_aiohttp(base_url, request, seconds=seconds, connections=connections))


# wrk runs this Lua in each of its threads; ``setup`` gives every thread its own offset so the
# threads do not walk the paths in lockstep.
_SCRIPT = """
local paths = %(paths)s
local method, body = %(method)s, %(body)s
local headers = {["Content-Type"] = "application/json"}
local threads = 0
function setup(thread) thread:set("offset", threads * 7919); threads = threads + 1 end
local i = 0
function request()
  i = i + 1
  return wrk.format(method, paths[((i + (offset or 0)) %% #paths) + 1], headers, body)
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # JSON string escapes are valid Lua for the ASCII we send


def _wrk(
    base_url: str, request: Request, *, seconds: float, connections: int, threads: int
) -> Load:
    body = "nil" if request.body is None else _lua_string(json.dumps(request.body))
    script = _SCRIPT % {
        "paths": "{" + ", ".join(_lua_string(p) for p in request.paths) + "}",
        "method": _lua_string(request.method),
        "body": body,
    }
    with tempfile.TemporaryDirectory(prefix="kato-wrk-") as folder:
        path = Path(folder) / "request.lua"
        path.write_text(script)
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(path),
            base_url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Load:
    """The figures of ``wrk --latency``'s report."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    connections = re.search(r"^\s+\d+ threads and (\d+) connections", output, re.MULTILINE)
    if not (rate and total and connections and "50" in percentiles and "99" in percentiles):
        raise RuntimeError(f"cannot read wrk's report:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return Load(
        requests_per_s=float(rate.group(1)),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(total.group(1)),
        errors=errors,
        tool="wrk",
        connections=int(connections.group(1)),
    )


async def _aiohttp(base_url: str, request: Request, *, seconds: float, connections: int) -> Load:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                path = request.paths[i % len(request.paths)]
                i += 1
                started = time.perf_counter()
                try:
                    async with session.request(
                        request.method, base_url + path, json=request.body
                    ) as response:
                        await response.read()
                        errors += response.status >= 300
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker(c * 7919) for c in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return Load(
        requests_per_s=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p99_ms=latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        requests=len(latencies),
        errors=errors,
        tool="aiohttp",
        connections=connections,
    )

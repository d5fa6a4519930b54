"""Another process for the LTM multi-process tests: ``python _ltm_worker.py COMMAND JSON``.

Every command opens the store named by ``location`` (``sqlite:PATH`` or a MongoDB URL with a
database ``prefix``), reads the node once, prints ``ready`` and waits for a line on stdin, so the
test can start several workers and release them together. Then:

- ``learn``: learn ``events`` ``count`` times (each learn its own step), print ``done``;
- ``churn``: learn ``count`` seeded random patterns over ``vocabulary``, print ``done``;
- ``watch``: for every further stdin line, print the sorted names of ``candidates(symbols)`` as
  JSON, until stdin closes.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

from kato.engine import EngineConfig, LTMStore, SessionState, learn
from kato.nodes import NodeStores, open_nodes


def open_store(args: dict[str, Any]) -> LTMStore:
    location = args["location"]
    nodes: NodeStores
    if location.startswith("mongodb"):
        from kato.ltm.mongo import MongoNodes

        nodes = MongoNodes(location, database_prefix=args["prefix"])
    else:
        nodes = open_nodes(location)
    return nodes.ltm(args["node"])


def learn_once(ltm: LTMStore, events: list[list[str]], **accumulators: Any) -> None:
    state = SessionState(stm=tuple(tuple(event) for event in events), **accumulators)
    ltm.apply(learn(state, EngineConfig(persistence=3)).effects)


def main(command: str, args: dict[str, Any]) -> None:
    ltm = open_store(args)
    ltm.candidates(["warm-up"])  # connect before the start line
    print("ready", flush=True)
    sys.stdin.readline()
    if command == "learn":
        accumulators = {
            "emotives_accumulator": ({"joy": args["joy"]},),
            "metadata_accumulator": ({"worker": args["worker"]},),
        }
        for _ in range(args["count"]):
            learn_once(ltm, args["events"], **accumulators)
    elif command == "churn":
        rng = random.Random(args["seed"])
        words = args["vocabulary"]
        for _ in range(args["count"]):
            events = [rng.sample(words, rng.randint(1, 3)) for _ in range(rng.randint(2, 4))]
            learn_once(ltm, events, emotives_accumulator=({"e": rng.random()},))
    elif command == "watch":
        while sys.stdin.readline():
            found = sorted(p.name for p in ltm.candidates(args["symbols"]))
            print(json.dumps(found), flush=True)
        return
    else:
        raise SystemExit(f"unknown command {command!r}")
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))

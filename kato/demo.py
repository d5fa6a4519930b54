"""A short demonstration of the engine: learn a few sequences, then watch predictions form.

Run with ``python -m kato.demo`` (README's first command). It runs in-process and needs no server.
"""

from __future__ import annotations

import kato

SEQUENCES = [
    ["wake", "coffee", "email", "standup"],
    ["wake", "coffee", "gym", "shower"],
    ["wake", "coffee", "email", "standup"],
    ["commute", "email", "standup", "lunch"],
]


def _table(predictions: list[dict[str, object]]) -> str:
    header = f"{'pattern':<14} {'freq':>4} {'similarity':>10} {'potential':>9}  future"
    rows = [header, "-" * len(header)]
    for p in predictions:
        future = " → ".join("+".join(event) for event in p["future"])  # type: ignore[attr-defined]
        rows.append(
            f"{str(p['name'])[:12]:<14} {p['frequency']:>4} {p['similarity']:>10.3f}"
            f" {p['potential']:>9.3f}  {future or '(complete)'}"
        )
    return "\n".join(rows)


def main() -> None:
    backend = kato.LocalBackend()
    with kato.KatoClient(node_id="demo", backend=backend) as teacher:
        for sequence in SEQUENCES:
            for symbol in sequence:
                teacher.observe(strings=[symbol])
            name = teacher.learn()["pattern_name"]
            print(f"learned {' → '.join(sequence):<40} as {name}")

    with kato.KatoClient(node_id="demo", backend=backend) as user:
        for prefix in (["wake", "coffee"], ["email", "standup"]):
            user.clear_stm()
            for symbol in prefix:
                user.observe(strings=[symbol])
            result = user.get_predictions()
            print(f"\nafter observing {' → '.join(prefix)}: {result['count']} predictions")
            print(_table(result["predictions"]))
            best = result["future_potentials"][0] if result["future_potentials"] else None
            if best:
                nxt = " → ".join("+".join(e) for e in best["future"])
                potential = best["aggregate_potential"]
                print(f"most likely next: {nxt} (aggregate potential {potential:.3f})")


if __name__ == "__main__":
    main()

"""Our verifier against Math-Verify on the labelled corpus: accuracy, throughput, slowest case.

    python bench/verifier_vs_math_verify.py [--out bench/results/verifier_vs_math_verify.json]

Math-Verify gets the same strings wrapped in `$…$` (completions as they are: it extracts itself);
both run single-threaded on the main thread, each after one warm-up call, one pass over the corpus.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

from verifier_pool import compare, extract_answer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "bench/data" / name).read_text().splitlines() if line.strip()]


def ours(row: dict) -> bool:
    pred = row["pred"] if "pred" in row else extract_answer(row["completion"])
    return compare(pred, row["gold"], timeout=2.0).equal


def math_verify(row: dict) -> bool:
    from math_verify import parse, verify

    pred = f"${row['pred']}$" if "pred" in row else row["completion"]
    try:
        return bool(verify(parse(f"${row['gold']}$"), parse(pred)))
    except Exception:  # noqa: BLE001 - an exception is a "not equal" for the accuracy count
        return False


def run(judge, rows: list[dict]) -> dict:
    judge({"pred": "1", "gold": "1"})
    correct, slowest, by_family = 0, (0.0, ""), {}
    start = time.perf_counter()
    for row in rows:
        t0 = time.perf_counter()
        ok = judge(row) == row["label"]
        dt = time.perf_counter() - t0
        correct += ok
        fam = by_family.setdefault(row["family"], [0, 0])
        fam[0] += ok
        fam[1] += 1
        if dt > slowest[0]:
            slowest = (dt, (row.get("pred") or row.get("completion"))[:80])
    seconds = time.perf_counter() - start
    return {
        "accuracy": correct / len(rows), "correct": correct, "n": len(rows), "seconds": seconds,
        "pairs_per_s": len(rows) / seconds, "slowest_s": slowest[0], "slowest_case": slowest[1],
        "misses_by_family": {k: f"{v[1] - v[0]}/{v[1]}" for k, v in sorted(by_family.items()) if v[0] < v[1]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "bench/results/verifier_vs_math_verify.json"))
    args = parser.parse_args()
    rows = load("verifier_pairs.jsonl") + load("verifier_completions.jsonl")
    results = {"ours": run(ours, rows), "math_verify": run(math_verify, rows)}
    results["throughput_ratio"] = results["ours"]["pairs_per_s"] / results["math_verify"]["pairs_per_s"]
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
    for name in ("ours", "math_verify"):
        r = results[name]
        print(f"{name:12s} accuracy {r['accuracy']:.3f} ({r['correct']}/{r['n']})  {r['pairs_per_s']:8.1f} pairs/s"
              f"  slowest {r['slowest_s']:.3f}s on {r['slowest_case'][:40]!r}  misses {r['misses_by_family']}")
    print(f"throughput ratio ours/math-verify: {results['throughput_ratio']:.1f}x")


if __name__ == "__main__":
    main()

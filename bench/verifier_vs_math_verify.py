"""Our verifier against Math-Verify: accuracy, throughput and the slowest case, on two corpora.

    python bench/verifier_vs_math_verify.py [--out bench/results/verifier_vs_math_verify.json]

Corpora:
- `ours`: the project's labelled pairs and completions (bench/data/verifier_pairs.jsonl, verifier_completions.jsonl);
- `math_verify_suite`: cases restated from other projects' tests — huggingface/Math-Verify's `tests/test_all.py`,
  Qwen2.5-Math's grader examples and the Minerva answer format (bench/data/math_verify_suite.jsonl, written by
  bench/make_math_verify_suite.py, each row citing its source).

Our verifier runs under both answer policies. The labels are plain mathematical equality, so `lenient` is the
like-for-like comparison; `strict` refuses by design answers such as `(9+1)` for 10 (verdict `not_final`), and
its accuracy against these labels shows how often that happens. Math-Verify gets the strings as its own tests
pass them (our pairs wrapped in `$…$`). Both run single-threaded on the main thread, each after one warm-up
call that needs SymPy (so our sandbox has started), one pass over each corpus.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package, not bench/verifier_pool.py beside this script

from verifier_pool import compare, extract_answer  # noqa: E402


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "bench/data" / name).read_text().splitlines() if line.strip()]


def ours(policy: str):
    def judge(row: dict) -> bool:
        pred = row["pred"] if "pred" in row else extract_answer(row["completion"])
        gold = extract_answer(row["gold"]) if row.get("gold_is_text") else row["gold"]
        return compare(pred, gold or "", timeout=2.0, policy=policy).equal
    return judge


def math_verify(wrap: bool):
    def judge(row: dict) -> bool:
        from math_verify import parse, verify

        gold = f"${row['gold']}$" if wrap else row["gold"]
        pred = (f"${row['pred']}$" if wrap else row["pred"]) if "pred" in row else row["completion"]
        try:
            return bool(verify(parse(gold), parse(pred)))
        except Exception:  # noqa: BLE001 - an exception is a "not equal" for the accuracy count
            return False
    return judge


def run(judge, rows: list[dict]) -> dict:
    judge({"pred": "\\sqrt{2}", "gold": "\\frac{2}{\\sqrt{2}}"})  # warm-up that needs SymPy (starts our sandbox)
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench/results/verifier_vs_math_verify.json"))
    args = parser.parse_args()
    corpora = {"ours": (load("verifier_pairs.jsonl") + load("verifier_completions.jsonl"), True),
               "math_verify_suite": (load("math_verify_suite.jsonl"), False)}
    results: dict = {"machine": f"{platform.machine()} {platform.processor() or ''} ({__import__('os').cpu_count()} cores)",
                     "date": time.strftime("%Y-%m-%d")}
    for corpus, (rows, wrap) in corpora.items():
        section = {"ours_lenient": run(ours("lenient"), rows), "ours_strict": run(ours("strict"), rows),
                   "math_verify": run(math_verify(wrap), rows)}
        section["throughput_ratio"] = section["ours_lenient"]["pairs_per_s"] / section["math_verify"]["pairs_per_s"]
        results[corpus] = section
        for name in ("ours_lenient", "ours_strict", "math_verify"):
            r = section[name]
            print(f"{corpus:18s} {name:13s} accuracy {r['accuracy']:.3f} ({r['correct']}/{r['n']})  "
                  f"{r['pairs_per_s']:8.1f} pairs/s  slowest {r['slowest_s']:.3f}s on {r['slowest_case'][:40]!r}"
                  f"  misses {r['misses_by_family']}")
        print(f"{corpus:18s} throughput ratio ours(lenient)/math-verify: {section['throughput_ratio']:.1f}x")
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

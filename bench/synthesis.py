"""Synthesis throughput and diversity.

    python bench/synthesis.py [--per-cell 40] [--n 10000] [--out bench/results/synthesis.json]

Throughput: problems/s of `generate` per topic and difficulty (no re-check). Diversity, over `--n`
problems from `generate_problems` (re-checked, deduplicated; thirds at each difficulty): the
distinct-question ratio before deduplication, and the distinct-template ratio, a template being the
question with its numbers and names masked.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import random
import re
import sys
import time

sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthesis.generators import GENERATORS, NAMES, TOPICS, generate, generate_problems, level_point  # noqa: E402
from synthesis.problem import question_key  # noqa: E402

_NAME = re.compile("|".join(NAMES))
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def skeleton(question: str) -> str:
    return _NUMBER.sub("#", _NAME.sub("@", question))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=40)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "bench/results/synthesis.json"))
    args = parser.parse_args()

    rates: dict[str, dict[str, float]] = {}
    for topic in TOPICS:
        rates[topic] = {}
        for difficulty in (1, 2, 3):
            rng = random.Random(0)
            start = time.perf_counter()
            for _ in range(args.per_cell):
                generate(topic, rng, difficulty)
            rates[topic][str(difficulty)] = round(args.per_cell / (time.perf_counter() - start), 1)
        print(topic, rates[topic], flush=True)

    raw_keys = []
    rng = random.Random(1)
    for i in range(args.n):
        topic = TOPICS[i % len(TOPICS)]
        raw_keys.append(question_key(GENERATORS[topic](rng, level_point(1 + i % 3)).question))
    start = time.perf_counter()
    problems = []
    for difficulty in (1, 2, 3):
        problems += generate_problems(args.n // 3 + (difficulty <= args.n % 3), difficulty, seed=0)
    seconds = time.perf_counter() - start
    result = {
        "problems_per_s": rates,
        "diversity": {
            "n": len(problems),
            "distinct_question_ratio_before_dedupe": round(len(set(raw_keys)) / len(raw_keys), 4),
            "distinct_template_ratio": round(len({skeleton(p.question) for p in problems}) / len(problems), 4),
            "distinct_solution_templates": len({p.meta["template"] for p in problems}),
            "checked_problems_per_s": round(len(problems) / seconds, 1),
        },
    }
    print(json.dumps(result["diversity"], indent=2))
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

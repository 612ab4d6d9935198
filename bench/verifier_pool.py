"""Verifier pool throughput: scores/s for 1, 2 and 4 actors against `score` called in-process.

    python bench/verifier_pool.py [--n 5000] [--actors 1 2 4] [--out bench/results/verifier_pool.json]

The 5,000 requests mix the labelled corpus (pairs wrapped in our XML format, raw completions) with
generated arithmetic completions (right, wrong, boxed, bare, rambling) and a few adversarial inputs
(exponent towers, 1 MB strings). Each pool size gets a fresh pool, one warm-up batch, then one timed pass.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import sys
import time

sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verifier_pool.pool import ScoreRequest, VerifierPool, percentile, score_chunk  # noqa: E402


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "bench/data" / name).read_text().splitlines() if line.strip()]


def generated_completion(rng: random.Random) -> tuple[str, str, str]:
    """(completion, problem, gold) for a random two-step arithmetic problem, answered in one of several styles."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
    gold = (a + b) * c
    problem = f"A box holds {a} red and {b} blue pens. How many pens are in {c} boxes?"
    answer = gold if rng.random() < 0.6 else gold + rng.choice([-10, -1, 1, 7])
    reasoning = f"Each box has {a} + {b} = {a + b} pens. So {c} boxes have {a + b} * {c} = {answer} pens."
    style = rng.randrange(4)
    if style == 0:
        text = f"<response><reasoning>{reasoning}</reasoning><final_answer>{answer}</final_answer></response>"
    elif style == 1:
        text = f"{reasoning} The answer is \\boxed{{{answer}}}."
    elif style == 2:
        text = f"<response><reasoning>{reasoning} {reasoning}</reasoning><final_answer>{answer:,} pens</final_answer></response>"
    else:
        text = reasoning
    return text, problem, str(gold)


def mixed_requests(n: int, seed: int = 0) -> list[ScoreRequest]:
    rng = random.Random(seed)
    corpus = []
    for row in load("verifier_pairs.jsonl"):
        text = f"<response><reasoning>We compute it.</reasoning><final_answer>{row['pred']}</final_answer></response>"
        corpus.append((text, "", row["gold"]))
    corpus += [(row["completion"], "", row["gold"]) for row in load("verifier_completions.jsonl")]
    adversarial = [(r"\boxed{9^{9^{9^9}}}", "", "2"), ("x" * 1_000_000, "", "2"), (r"\boxed{(x+1)^{2000}}", "", "x")]
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.002:
            text, problem, gold = rng.choice(adversarial)
        elif roll < 0.5:
            text, problem, gold = rng.choice(corpus)
        else:
            text, problem, gold = generated_completion(rng)
        out.append(ScoreRequest(str(i), text, problem, gold))
    return out


def summary(verdicts: list[str], seconds: float, latencies: list[float]) -> dict:
    return {"seconds": round(seconds, 2), "scores_per_s": round(len(verdicts) / seconds, 1),
            "timeouts": verdicts.count("timeout"), "errors": verdicts.count("error"),
            "correct": verdicts.count("correct"), "p50_ms": round(1000 * percentile(latencies, 0.5), 2),
            "p95_ms": round(1000 * percentile(latencies, 0.95), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--out", default=str(ROOT / "bench/results/verifier_pool.json"))
    args = parser.parse_args()
    import ray

    requests = mixed_requests(args.n)
    score_chunk(requests[:20], args.timeout)
    start = time.perf_counter()
    rows = score_chunk(requests, args.timeout)
    inline = summary([r["verdict"] for r in rows], time.perf_counter() - start, [r["seconds"] for r in rows])
    print(f"in-process: {inline}", flush=True)

    ray.init(num_cpus=max(args.actors), include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    results = {"requests": args.n, "cpus": os.cpu_count(), "in_process": inline, "pool": {}}
    for size in args.actors:
        pool = VerifierPool(size, timeout=args.timeout, name_prefix=f"verifier-b{size}")
        pool.wait_ready()
        pool.score(requests[:200])
        start = time.perf_counter()
        out = pool.score(requests)
        seconds = time.perf_counter() - start
        row = summary([b.verdict for b in out], seconds, [b.seconds for b in out])
        row["same_verdicts_as_in_process"] = [b.verdict for b in out] == [r["verdict"] for r in rows]
        row["speedup_vs_in_process"] = round(inline["seconds"] / seconds, 2)
        row["restarts"] = pool.stats()["restarts"]
        results["pool"][str(size)] = row
        print(f"{size} actor(s): {row}", flush=True)
        pool.shutdown()
    ray.shutdown()
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

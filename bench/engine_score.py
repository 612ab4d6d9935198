"""`Engine.score` (the teacher's screening pass) on the transformers and vLLM engines: the same worked solutions
scored after the same prompts by both, their largest difference, and candidates scored per second.

    python bench/engine_score.py                 # CPU: the tiny model, hf engine only
    python bench/engine_score.py --vllm          # GPU: qwen2.5-0.5b shape, hf and vllm on the same weights

Writes `engine_score[-vllm].json` into `--out`.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthesis.generators import generate_problems  # noqa: E402
from synthesis.problem import solution_text  # noqa: E402


def timed_scores(engine, prompts: list[str], targets: list[str]) -> tuple[list[float], float]:
    engine.score(prompts[:8], targets[:8])  # warm-up
    start = time.perf_counter()
    scores = engine.score(prompts, targets)
    return scores, len(prompts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm", action="store_true")
    parser.add_argument("--candidates", type=int, default=256)
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    from actors.engine import make_engine

    if args.vllm:
        from cluster.modelzoo import build_model

        model = str(build_model(pathlib.Path("/tmp/rlvr-bench-models/qwen2.5-0.5b"), "qwen2.5-0.5b"))
    else:
        from cluster.modelzoo import tiny_model_path

        model = str(tiny_model_path())
    problems = generate_problems(args.candidates, d=0.5, topics={"mental_math": 1, "linear_equations": 1}, seed=7,
                                 split="train")
    prompts, targets = [p.question for p in problems], [solution_text(p, "plain") for p in problems]
    hf, hf_rate = timed_scores(make_engine("hf", model=model), prompts, targets)
    out = {"model": model, "candidates": len(prompts), "hf_per_s": round(hf_rate, 1), "date": time.strftime("%Y-%m-%d")}
    if args.vllm:
        engine = make_engine("vllm", model=model, gpu_memory_utilization=0.3, max_lora_rank=16)
        vllm, vllm_rate = timed_scores(engine, prompts, targets)
        engine.close()
        out.update(vllm_per_s=round(vllm_rate, 1), max_abs_diff=max(abs(a - b) for a, b in zip(hf, vllm)),
                   mean_logprob=sum(hf) / len(hf))
    print(json.dumps(out), flush=True)
    target = pathlib.Path(args.out)
    target.mkdir(parents=True, exist_ok=True)
    (target / f"engine_score{'-vllm' if args.vllm else ''}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

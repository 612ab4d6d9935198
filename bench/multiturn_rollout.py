"""Multi-turn rollout against single-turn at the same generated tokens: one `RolloutWorker` (in-process), the same
prompts × G, every completion `--tokens` long in total (ignore_eos) — in one turn, or in `--turns` turns of
tokens/turns each with a fixed observation appended between them (the context grows; on vLLM, prefix caching
spares re-encoding it). Reports generated tokens per second of both and their ratio.

    python bench/multiturn_rollout.py                      # CPU: the tiny model, hf engine, 16 × 4 × 48 tokens
    python bench/multiturn_rollout.py --engine vllm        # GPU: random 0.5B shape, vLLM, 64 × 8 × 512 tokens
    bash bench/gpu_throughput.sh multiturn                 # the same on the lent GPU, JSON into $OUT

Writes `multiturn_rollout[-vllm].json` under `--out`.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if pathlib.Path(p or ".").resolve() != ROOT / "bench"]

from actors.environments import EnvStep  # noqa: E402
from actors.records import EnvSpec, SamplingConfig  # noqa: E402
from synthesis.problem import Problem  # noqa: E402

OBSERVATION = "\nOutput: 42\nGo on.\n"


class FixedTurns:
    """Every model turn gets the same observation until the spec's `max_turns` (the bound ends the episode)."""

    def __init__(self, spec: EnvSpec) -> None:
        self.spec = spec

    def init(self, problem) -> str:
        return problem.question

    def step(self, turn_text: str) -> EnvStep:
        return EnvStep(observations=[OBSERVATION], done=False)


def timed(worker, problems: list[Problem], group: int, turns: int, tokens: int, seed: int) -> dict:
    sampling = SamplingConfig(temperature=1.0, max_tokens=tokens // turns, logprobs=True, ignore_eos=True, seed=seed)
    spec = EnvSpec("bench-turns", max_turns=turns, cls=FixedTurns)
    start = time.perf_counter()
    groups = worker.run_episodes(problems, spec, group, sampling)
    seconds = time.perf_counter() - start
    generated = sum(m for g in groups for e in g.episodes for m in e.loss_mask)
    return {"turns": turns, "tokens_per_turn": tokens // turns, "generated_tokens": generated, "seconds": seconds,
            "tokens_per_s": generated / seconds,
            "context_tokens": sum(len(e.prompt_token_ids) + len(e.token_ids) for g in groups for e in g.episodes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("hf", "vllm"), default="hf")
    parser.add_argument("--prompts", type=int)
    parser.add_argument("--group", type=int)
    parser.add_argument("--tokens", type=int, help="generated tokens per completion, all turns together")
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    gpu = args.engine == "vllm"
    prompts, group, tokens = args.prompts or (64 if gpu else 16), args.group or (8 if gpu else 4), args.tokens or (512 if gpu else 48)
    from actors.worker import RolloutWorker

    if gpu:
        from cluster.modelzoo import build_model

        model = str(build_model(pathlib.Path("/tmp/rlvr-bench-models/qwen2.5-0.5b"), "qwen2.5-0.5b"))
        worker = RolloutWorker("vllm", torch_threads=-1, model=model, gpu_memory_utilization=0.3, max_num_seqs=512,
                               max_lora_rank=16)
    else:
        from cluster.modelzoo import tiny_model_path

        model = str(tiny_model_path())
        worker = RolloutWorker("hf", torch_threads=0, model=model, max_batch_size=prompts * group)
    problems = [Problem(id=f"p{i}", question=f"Problem {i}: what is {i} + {2 * i + 1}?", answer=str(3 * i + 1))
                for i in range(prompts)]
    timed(worker, problems[:4], 2, args.turns, tokens, seed=99)  # warm-up (compilation, caches)
    runs = [timed(worker, problems, group, turns, tokens, seed=r)
            for r in range(args.repeats) for turns in (1, args.turns)]
    best = {turns: max((r for r in runs if r["turns"] == turns), key=lambda r: r["tokens_per_s"])
            for turns in (1, args.turns)}
    out = {"engine": args.engine, "model": model, "prompts": prompts, "group": group, "tokens": tokens,
           "turns": args.turns, "date": time.strftime("%Y-%m-%d"), "machine": _device(), "runs": runs,
           "multi_vs_single": best[args.turns]["tokens_per_s"] / best[1]["tokens_per_s"]}
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}), flush=True)
    for r in runs:
        print(json.dumps(r), flush=True)
    target = pathlib.Path(args.out)
    target.mkdir(parents=True, exist_ok=True)
    (target / f"multiturn_rollout{'-vllm' if gpu else ''}.json").write_text(json.dumps(out, indent=1))


def _device() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"


if __name__ == "__main__":
    main()

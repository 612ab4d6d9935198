"""`rollout.sync: adapter | merged` for the transformers engine: decode time with the LoRA adapter applied on every
token against the adapter folded into the weights once per push (push time included).

    python bench/rollout_sync.py [--prompts 32 --group 8 --max-tokens 40 --lora-rank 32 --repeats 5]

One engine per sync on the cached tiny model, one CPU thread each (as a rollout worker runs), the same rank-32
adapter (non-zero, as after a few GRPO steps) pushed before every call under a new version, fixed-length
completions (`ignore_eos`) so both decode the same number of tokens. Writes `rollout_sync.json`: median seconds per
call (push + generate) and tokens/s for each, and the ratio. The faster one is `rollout.sync: auto` for hf.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def adapter_weights(model_dir: str, rank: int, version: int):
    """A LoRA adapter on the learner's target modules with small non-zero B (A as peft initialises it)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from learner.adapter import export_adapter
    from learner.policy import PolicyConfig, lora_config

    torch.manual_seed(version)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           lora_config(PolicyConfig(name=model_dir, lora_rank=rank, lora_alpha=2 * rank)))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)
    return export_adapter(model, version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--lora-rank", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()

    import torch

    from actors.hf_engine import HFEngine
    from actors.records import SamplingConfig
    from cluster.modelzoo import tiny_model_path
    from synthesis.generators import generate_problems

    torch.set_num_threads(1)
    model = str(tiny_model_path())
    prompts = [p.question for p in generate_problems(args.prompts, 1, topics={"mental_math": 1}, seed=0, split="train")]
    sampling = SamplingConfig(temperature=1.0, max_tokens=args.max_tokens, ignore_eos=True, seed=0)
    adapters = [adapter_weights(model, args.lora_rank, v) for v in range(1, args.repeats + 2)]
    engines = {sync: HFEngine(model, max_batch_size=args.prompts * args.group, sync=sync) for sync in ("adapter", "merged")}
    seconds: dict[str, list[float]] = {sync: [] for sync in engines}
    for i, weights in enumerate(adapters):  # interleaved, the first call of each is a warm-up
        for sync, engine in engines.items():
            start = time.perf_counter()
            engine.load_adapter(weights)
            engine.generate(prompts, args.group, sampling)
            if i:
                seconds[sync].append(time.perf_counter() - start)
    tokens = args.prompts * args.group * args.max_tokens
    result = {"device": "cpu, 1 thread per engine", "model": model, "prompts": args.prompts, "group": args.group,
              "max_tokens": args.max_tokens, "lora_rank": args.lora_rank, "date": time.strftime("%Y-%m-%d")}
    for sync, values in seconds.items():
        result[sync] = {"seconds": values, "median_seconds": statistics.median(values),
                        "tokens_per_s": tokens / statistics.median(values)}
    result["merged_speedup"] = result["adapter"]["median_seconds"] / result["merged"]["median_seconds"]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rollout_sync.json").write_text(json.dumps(result, indent=2))
    print(f"adapter {result['adapter']['median_seconds']:.2f} s, merged {result['merged']['median_seconds']:.2f} s per "
          f"push + {args.prompts}x{args.group}x{args.max_tokens} tokens: merged {result['merged_speedup']:.2f}x", flush=True)


if __name__ == "__main__":
    main()

"""What the agents add on the embedded default: plain answers vs a solver–verifier loop vs code feedback.

    python bench/agents.py [--seeds 0] [--sft-steps 200] [--model tiny-prose] [--out bench/results]

Per seed, from an empty cache directory:

1. SFT data (`sft.data`): worked solutions of 300 generated train-side problems per tiny stage (mental_math at
   levels 1-3), and the agent turns `synthesis.agent_data.agent_turns` writes from the same problems (programs
   that print the arithmetic, answering from a program's output, fixing a broken program, CORRECT / WRONG
   critiques, revisions);
2. `rlvr train --preset tiny --set model.name=MODEL --set sft.data=… --set sft.steps=N` (then the preset's GRPO
   stages, plain prompts). MODEL is `tiny-prose` by default: the tiny network pretrained with a quarter word-salad
   prose, so the words of the agents' turns are tokens it has emitted before (`cluster.modelzoo.prose_corpus`);
   `--model tiny` measures the CPU default's model, whose math-only pretraining taught it never to emit them;
3. on the run's own held-out problems (every stage, 300 each): `rlvr eval --agent solver-verifier
   --max-iterations 3` and `rlvr eval --agent code-feedback --max-iterations 2`, greedy, twice: with the SFT
   adapter (the checkpoint's `merged/0`, what the agent turns taught) and with the last stage's adapter (after
   GRPO, which trains on plain prompts only and so may wear the agent turns down). Iteration 1 of the
   solver–verifier loop is the plain greedy answer.

Writes `agents.json` under `--out` and the table into `agents.md` between its `generated` markers (the commentary
around them is kept).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cluster.config import load_config  # noqa: E402
from cluster.data import held_out_problems  # noqa: E402
from cluster.modelzoo import TINY_MODELS  # noqa: E402
from synthesis.agent_data import agent_turns  # noqa: E402
from synthesis.generators import generate_problems  # noqa: E402


def _tiny_default():
    """bench/tiny_default.py as a module (bench/ is not a package, and its synthesis.py would shadow ours)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_default", ROOT / "bench" / "tiny_default.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sft_file(path: pathlib.Path, seed: int) -> dict:
    """Worked solutions and agent turns from train-side problems of the tiny stages' levels and topic."""
    cfg = load_config("tiny", overrides=[f"seed={seed}"])
    problems = [p for i, stage in enumerate(cfg.stages)
                for p in generate_problems(300, stage.difficulty, topics={k: float(v) for k, v in stage.topics.items()},
                                           seed=seed * 1000 + 500 + i, split="train")]
    rows = [{"question": p.question, "solution": p.solution, "answer": p.answer, "topic": p.topic, "meta": p.meta}
            for p in problems] + agent_turns(problems, seed=seed)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r.get("kind", "cot")] = kinds.get(r.get("kind", "cot"), 0) + 1
    return kinds


def eval_agent(agent: str, iterations: int, adapter: pathlib.Path, data: pathlib.Path, out: pathlib.Path,
               env: dict, model: str) -> dict:
    cmd = [sys.executable, "-m", "cluster.cli", "eval", "--model", model, "--adapter", str(adapter), "--data",
           str(data), "--agent", agent, "--max-iterations", str(iterations), "--temperature", "0",
           "--max-tokens", "96", "--prompt", "{question}", "--policy", "strict", "--json", str(out)]
    start = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"rlvr eval --agent {agent} exited {proc.returncode}; see {out.with_suffix('.log')}")
    return {**json.loads(out.read_text()), "minutes": (time.perf_counter() - start) / 60}


def run_seed(seed: int, work: pathlib.Path, cache: pathlib.Path, sft_steps: int, model: str) -> dict:
    data = work / f"sft{seed}.jsonl"
    kinds = sft_file(data, seed)
    train = _tiny_default().run_seed(seed, work, cache, (f"model.name={model}", f"sft.data={data}",
                                                        f"sft.steps={sft_steps}"), name="agents")
    heldout = work / f"heldout{seed}.jsonl"
    cfg = load_config("tiny", overrides=[f"seed={seed}"])
    problems = [p for stage in held_out_problems(cfg).values() for p in stage]
    heldout.write_text("\n".join(json.dumps(p.to_dict()) for p in problems) + "\n")
    adapters = {"SFT": work / f"agents{seed}" / "checkpoint" / "merged" / "0",
                "GRPO": work / f"agents{seed}" / "stages" / cfg.stages[-1].name / "adapter"}
    env = dict(os.environ, SYMPY_RLVR_CACHE=str(cache), RAY_DEDUP_LOGS="0")
    return {"seed": seed, "model": model, "sft_rows": kinds, "train_minutes": train["minutes"],
            "heldout": len(problems), "evals": [row.to_dict() for row in train["evals"]],
            "after": {after: {"solver_verifier": eval_agent("solver-verifier", 3, adapter, heldout,
                                                            work / f"sv{seed}-{after}.json", env, model),
                              "code_feedback": eval_agent("code-feedback", 2, adapter, heldout,
                                                          work / f"code{seed}-{after}.json", env, model)}
                      for after, adapter in adapters.items()}}


def table(results: list[dict]) -> str:
    def cell(row: dict) -> str:
        return f"{row['accuracy']:.3f} [{row['ci'][0]:.3f}, {row['ci'][1]:.3f}]"

    lines = ["| seed | after | loop | iteration 1 | iteration 2 | iteration 3 | what the loop did |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        for after, loops in r["after"].items():
            sv, code = loops["solver_verifier"], loops["code_feedback"]
            v = sv["verifier"]
            lines.append(f"| {r['seed']} | {after} | solver–verifier (iteration 1 = plain answer) | "
                         + " | ".join(cell(x) for x in sv["iterations"])
                         + f" | verifier: approved {v['approved_right']} right / {v['approved_wrong']} wrong, rejected "
                           f"{v['rejected_right']} right / {v['rejected_wrong']} wrong |")
            p = code["programs"]
            lines.append(f"| {r['seed']} | {after} | code feedback | " + " | ".join(cell(x) for x in code["iterations"])
                         + f" | – | programs: {p['ok']} ran, {p['error'] + p['killed']} failed, {p['timeout']} timed "
                           f"out, {p['no_code']} missing |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sft-steps", type=int, default=200)
    parser.add_argument("--model", default="tiny-prose", choices=list(TINY_MODELS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="agents-"))
    cache = work / "cache"  # empty: the tiny model is built and pretrained here
    results = [run_seed(seed, work, cache, args.sft_steps, args.model) for seed in args.seeds]
    when = time.strftime("%Y-%m-%d")
    machine = _tiny_default().machine_line()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "agents.json").write_text(json.dumps({"date": when, "machine": machine, "sft_steps": args.sft_steps,
                                                 "model": args.model, "results": results}, indent=1))
    text = (f"`python bench/agents.py --seeds {' '.join(map(str, args.seeds))} --sft-steps {args.sft_steps} "
            f"--model {args.model}`, "
            f"{machine}, {when}, fresh cache; {results[0]['heldout']} held-out problems (all stages), greedy, "
            f"95 % bootstrap intervals.\n\n{table(results)}\n")
    _tiny_default().write_results_md(out / "agents.md", text, "Agents: solver–verifier and code feedback")
    print(text)


if __name__ == "__main__":
    main()

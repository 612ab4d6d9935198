"""Agentic RL on the embedded default: plain GRPO vs code-feedback GRPO vs solver–verifier GRPO, each evaluated
with its own loop and with plain answers.

    python bench/agentic.py [--seeds 0 1 2] [--sft-steps 600] [--model tiny-prose] [--arms plain code-feedback
                            solver-verifier] [--set KEY=VALUE ...] [--out bench/results]

Per seed and arm, from one empty cache directory (the tiny model is built and pretrained once):

1. `rlvr train --preset tiny --set model.name=MODEL --set sft.steps=N [--env ARM]`: the SFT warm start on plain
   worked solutions plus, for an agent arm, its turns in the token layout of its episodes
   (`cluster.warm_start.agent_rows`), then the preset's GRPO stages in the arm's environment;
2. its own loop, on the run's held-out problems (every stage, 300 each), after SFT and after the last stage:
   plain and code-feedback are the run's own evaluations (greedy, in its environment); solver–verifier is
   `rlvr eval --agent solver-verifier --max-iterations 3` on the SFT adapter and on the final one;
3. plain answers of the final adapter on the same problems (`rlvr eval --k 1 --temperature 0`);
4. the trained verifier's approval of right and of wrong solutions (solver–verifier arm), from the loop's counts.

Greedy accuracy with 95 % bootstrap intervals; the gain of the own loop over SFT is paired per problem. Rows of an
earlier run for other (arm, seed) pairs are kept, so seeds can be run in separate invocations.
Writes `agentic.json` and the table into `agentic.md` between its `generated` markers.
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
from cluster.evaluate import paired_gain  # noqa: E402
from cluster.modelzoo import TINY_MODELS  # noqa: E402


def _bench(name: str):
    """A bench script as a module (bench/ is not a package, and its synthesis.py would shadow ours)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain_answers(adapter: pathlib.Path, data: pathlib.Path, out: pathlib.Path, env: dict, model: str) -> dict:
    """Greedy plain answers of an adapter under the strict policy: accuracy, interval, per-problem scores."""
    cmd = [sys.executable, "-m", "cluster.cli", "eval", "--model", model, "--adapter", str(adapter), "--data",
           str(data), "--k", "1", "--temperature", "0", "--max-tokens", "96", "--prompt", "{question}",
           "--policy", "strict", "--json", str(out)]
    with open(out.with_suffix(".log"), "w") as log:
        if subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"rlvr eval exited non-zero; see {out.with_suffix('.log')}")
    return json.loads(out.read_text())


def own_loop(arm: str, run: dict, adapters: dict, heldout: pathlib.Path, work: pathlib.Path, env: dict,
             model: str) -> dict:
    """Accuracy of the arm's own loop after SFT and after the last stage (per problem, for the paired gain)."""
    if arm != "solver-verifier":
        rows = {row.checkpoint: row for row in run["evals"]}
        final = run["evals"][-1]
        return {when: {"accuracy": sum(s.accuracy for s in row.stages.values()) / len(row.stages),
                       "per_problem": [x for s in row.stages.values() for x in s.per_problem]}
                for when, row in (("SFT", rows["sft"]), ("final", final))}
    out = {}
    for when, adapter in adapters.items():
        loop = _bench("agents").eval_agent("solver-verifier", 3, adapter, heldout,
                                           work / f"sv-{run['seed']}-{when}.json", env, model)
        out[when] = {"accuracy": loop["iterations"][-1]["accuracy"], "per_problem": loop["iterations"][-1]["per_problem"],
                     "verifier": loop["verifier"]}
    return out


def run_arm(arm: str, seed: int, work: pathlib.Path, cache: pathlib.Path, args) -> dict:
    env_args = () if arm == "plain" else (f"rollout.env={arm}",) + (("rollout.max_turns=2",) if arm == "code-feedback"
                                                                      else ())
    overrides = (f"model.name={args.model}", f"sft.steps={args.sft_steps}", *env_args, *args.overrides)
    name = f"{arm}-"
    run = _bench("tiny_default").run_seed(seed, work, cache, overrides, name=name)
    cfg = load_config("tiny", overrides=[f"seed={seed}", *args.overrides])
    heldout = work / f"heldout{seed}.jsonl"
    heldout.write_text("\n".join(json.dumps(p.to_dict()) for s in held_out_problems(cfg).values() for p in s) + "\n")
    run_dir = work / f"{name}{seed}"
    adapters = {"SFT": run_dir / "checkpoint" / "merged" / "0", "final": run_dir / "stages" / cfg.stages[-1].name / "adapter"}
    env = dict(os.environ, SYMPY_RLVR_CACHE=str(cache), RAY_DEDUP_LOGS="0")
    loop = own_loop(arm, run, adapters, heldout, work, env, args.model)
    plain = plain_answers(adapters["final"], heldout, work / f"plain-{arm}-{seed}.json", env, args.model)
    before, after = loop["SFT"].get("per_problem"), loop["final"].get("per_problem")
    return {"arm": arm, "seed": seed, "minutes": round(run["minutes"], 2), "own_sft": loop["SFT"]["accuracy"],
            "own_final": loop["final"]["accuracy"],
            "own_gain": paired_gain(after, before) if before and after else None,
            "plain_final": plain["accuracy"], "plain_ci": plain["ci"],
            "verifier": loop["final"].get("verifier")}


def table(rows: list[dict]) -> str:
    lines = ["| arm | seed | own loop: SFT → final | own-loop gain [95% CI] | plain answers, final [95% CI] | "
             "verifier (final): approved right / wrong | minutes |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        g, v = r["own_gain"], r["verifier"]
        gain = f"{g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]" if g else "–"
        judged = (f"{v['approved_right']} / {v['approved_wrong']} (of {v['approved_right'] + v['rejected_right']} / "
                  f"{v['approved_wrong'] + v['rejected_wrong']})" if v else "–")
        lines.append(f"| {r['arm']} | {r['seed']} | {r['own_sft']:.3f} → {r['own_final']:.3f} | {gain} | "
                     f"{r['plain_final']:.3f} [{r['plain_ci'][0]:.3f}, {r['plain_ci'][1]:.3f}] | {judged} | "
                     f"{r['minutes']:.1f} |")
    return "\n".join(lines)


def merged(path: pathlib.Path, rows: list[dict]) -> list[dict]:
    """The rows of an earlier run of this script with this run's (arm, seed) rows replaced: seeds and arms can be run
    in separate invocations and land in one table, each row naming the command that produced it."""
    earlier = json.loads(path.read_text()) if path.exists() else {"rows": []}
    new = {(r["arm"], r["seed"]) for r in rows}
    kept = [{"command": "python bench/agentic.py --seeds 0 --sft-steps 600 --model tiny-prose --set eval_samples=0",
             "date": earlier.get("date"), "cache": "fresh", **r}
            for r in earlier["rows"] if (r["arm"], r["seed"]) not in new]
    order = ["plain", "code-feedback", "solver-verifier"]
    return sorted(kept + rows, key=lambda r: (order.index(r["arm"]), r["seed"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sft-steps", type=int, default=600)
    parser.add_argument("--model", default="tiny-prose", choices=list(TINY_MODELS))
    parser.add_argument("--arms", nargs="+", default=["plain", "code-feedback", "solver-verifier"],
                        choices=["plain", "code-feedback", "solver-verifier"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cache", help="a model cache to reuse (default: an empty one, as a first run has)")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="agentic-"))
    cache = pathlib.Path(args.cache) if args.cache else work / "cache"
    when, machine = time.strftime("%Y-%m-%d"), _bench("tiny_default").machine_line()
    command = (f"python bench/agentic.py --seeds {' '.join(map(str, args.seeds))} --arms {' '.join(args.arms)} "
               f"--sft-steps {args.sft_steps} --model {args.model}{''.join(' --set ' + o for o in args.overrides)}"
               f"{' --cache ' + args.cache if args.cache else ''}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for arm in args.arms:
            row = {**run_arm(arm, seed, work, cache, args), "command": command, "date": when,
                   "cache": "reused" if args.cache else "fresh"}
            text = write_rows(out, [row], machine)
    print(text)


def write_rows(out: pathlib.Path, rows: list[dict], machine: str) -> str:
    """`rows` merged into `agentic.json` and the table rewritten, after every arm (a long run keeps what it has)."""
    rows = merged(out / "agentic.json", rows)
    (out / "agentic.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    commands = sorted({(r["command"], r["date"], r["cache"]) for r in rows})
    text = ("".join(f"`{c}` ({d}, {cache} cache)\n" for c, d, cache in commands) +
            f"\n{machine}; greedy, 95 % bootstrap intervals.\n\n{table(rows)}\n")
    _bench("tiny_default").write_results_md(out / "agentic.md", text, "Agentic RL: plain vs code feedback vs solver–verifier")
    return text


if __name__ == "__main__":
    main()

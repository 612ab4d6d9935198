"""The teacher in the loop vs the adaptive curriculum on the embedded default extended to several topics, at equal
GRPO minutes, several seeds; and the diversity of teacher output against the plain generators.

    python bench/teacher.py [--seeds 0 1 2] [--minutes 2.4] [--topics mental_math arithmetic linear_equations]
                            [--diversity 10000] [--model tiny] [--name teacher] [--out bench/results]

Training: each (arm, seed) runs `rlvr train --preset tiny --set seed=S` in its own process with the same GRPO wall
budget (`grpo_minutes`), every stage over `--topics` (the preset's three difficulties), on the built-in `--model`
(`tiny-mix` is pretrained on mental_math, linear_equations and word_problems, the CPU default `tiny` on
mental_math alone):

- adaptive: `curriculum.mode=adaptive` (difficulty per topic steered to a 0.5 pass rate, siblings of half-solved
  problems, dynamic sampling with one batch of extra problems);
- teacher: `curriculum.mode=teacher` (the same controller, with `teacher.share` of each batch children the offline
  teacher made from the problems sampled before, by the strategies its bandit picks; `teacher.screen` candidates
  per slot, the batch those whose pass rate the policy predicts nearest the target; dynamic sampling as in the
  adaptive arm, its replacements screened too).

Reported per run: the held-out greedy gain over SFT (mean over stages, paired 95 % bootstrap interval), the share of
*sampled* groups with correctness spread, the share of sampled groups that were taught children, steps, minutes;
per seed and over the seeds together, the teacher's held-out accuracy after training minus the adaptive arm's,
paired per problem.

Diversity: `--diversity N` problems from the plain generators over the same topics at difficulties spread over
[0, 1], against N children the offline teacher makes from such parents (strategies in turn, as a bandit without
feedback would); per 1,000 problems, the distinct symbolic structures (`synthesis.operators.structure_key`) and
distinct templates (the generator's template, or the template with the operators that made the child).

Writes `<name>.json` and the tables into `<name>.md` between their `generated` markers; rows of an earlier run over
the same topics and minutes whose (arm, seed) this run did not repeat are kept, each naming its command and date
(`--arms teacher` re-measures the teacher after a change to it alone). The tiny model is built and pretrained once
into a fresh cache directory shared by the runs of one invocation.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import random
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cluster.config import TEACHER_STRATEGIES, load_config  # noqa: E402
from cluster.modelzoo import TINY_MODELS  # noqa: E402
from cluster.report import gains_over  # noqa: E402
from cluster.rollout_log import read_records  # noqa: E402


def _bench(name: str):
    """A bench script as a module (bench/ is not a package, and its synthesis.py would shadow ours)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stages_override(topics: list[str]) -> str:
    mix = ", ".join(f"{t}: 1" for t in topics)
    return ("stages=[" + ", ".join(f"{{name: {name}, difficulty: {level}, topics: {{{mix}}}, epochs: 2, problems: 320}}"
                                   for name, level in (("easy", 1), ("medium", 2), ("hard", 3))) + "]")


def taught_share(run_dir: pathlib.Path) -> float:
    groups = {(r["step"], r["problem_id"]) for r in read_records(run_dir / "rollouts.msgpack")}
    return sum("-t-" in pid for _, pid in groups) / max(len(groups), 1)


def command_of(args) -> str:
    return (f"python bench/teacher.py --seeds {' '.join(map(str, args.seeds))} --minutes {args.minutes} "
            f"--topics {' '.join(args.topics)} --arms {' '.join(args.arms)} --diversity {args.diversity}"
            + (f" --model {args.model}" if args.model != "tiny" else "")
            + (f" --name {args.name}" if args.name != "teacher" else "")
            + "".join(f" --set {o}" for o in args.overrides))


def merged_rows(path: pathlib.Path, rows: list[dict], args) -> list[dict]:
    """`rows` with the rows of an earlier `<name>.json` over the same topics, minutes and model whose (arm, seed)
    this invocation did not run (so one arm can be re-run after a change that touches only it)."""
    if not path.exists():
        return rows
    old = json.loads(path.read_text())
    if not same_setting(old, args):
        return rows
    fresh = {(r["arm"], r["seed"]) for r in rows}
    kept = [r for r in old.get("rows", []) if (r["arm"], r["seed"]) not in fresh and "command" in r]
    return sorted(kept + rows, key=lambda r: (r["seed"], r["arm"]))


def same_setting(old: dict, args) -> bool:
    """Whether an earlier results file measured the same topics, minutes and model."""
    before = old.get("args", {})
    return (before.get("topics"), before.get("minutes"), before.get("model", "tiny")) == (args.topics, args.minutes,
                                                                                          args.model)


def train_row(arm: str, seed: int, work: pathlib.Path, cache: pathlib.Path, args) -> dict:
    tiny = _bench("tiny_default")
    overrides = (f"grpo_minutes={args.minutes}", f"curriculum.mode={arm}", f"model.name={args.model}",
                 stages_override(args.topics), *args.overrides)
    result = tiny.run_seed(seed, work, cache, overrides, name=arm)
    stages = [s.name for s in load_config("tiny", overrides=[stages_override(args.topics)]).stages]
    gains = gains_over(result["evals"], stages)
    last = result["evals"][-1].stages
    return {"arm": arm, "seed": seed, "minutes": round(result["minutes"], 2),
            "steps": result["history"][-1]["step"] if result["history"] else 0,
            "spread_sampled": round(1 - result["sampled_zero_spread_share"], 3),
            "taught_share": round(taught_share(work / f"{arm}{seed}"), 3),
            "gain_mean": gains["mean"] if gains else None, "command": command_of(args), "date": time.strftime("%Y-%m-%d"),
            "held_out_after": [x for s in stages for x in last[s].per_problem]}


def arm_difference(rows: list[dict]) -> dict:
    """Teacher minus adaptive held-out accuracy after training, paired per problem (both arms of a seed are evaluated
    on the same held-out problems): per seed, and over the seeds' problems together (the runs held fixed, so the
    interval is the problems' sampling error, not the seeds')."""
    from cluster.evaluate import paired_gain

    after = {(r["arm"], r["seed"]): r["held_out_after"] for r in rows if "held_out_after" in r}
    seeds = sorted({seed for arm, seed in after if arm == "teacher" and ("adaptive", seed) in after})
    out = {str(seed): paired_gain(after["teacher", seed], after["adaptive", seed]) for seed in seeds}
    if len(seeds) > 1:
        out["pooled"] = paired_gain([x for seed in seeds for x in after["teacher", seed]],
                                    [x for seed in seeds for x in after["adaptive", seed]])
    return out


def diversity(topics: list[str], n: int, seed: int = 0) -> dict:
    """Distinct structures and templates per 1,000 problems: plain generators vs offline-teacher children."""
    from cluster.teacher import Pick, operator_child
    from synthesis.generators import GENERATORS, to_problem
    from synthesis.operators import structure_key

    rng = random.Random(seed)

    def drawn():
        topic, d = rng.choice(topics), rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])
        return to_problem(topic, d, GENERATORS[topic](rng, d))

    plain = [drawn() for _ in range(n)]
    children, made_by, turn = [], collections.Counter(), 0
    while len(children) < n:
        parent, partner = drawn(), drawn()
        strategy = TEACHER_STRATEGIES[turn % len(TEACHER_STRATEGIES)]
        turn += 1
        child, _ = operator_child(Pick(parent, "diversity", strategy, partner), rng, set())
        if child is not None:
            children.append(child)
            made_by[strategy] += 1

    def per_thousand(problems, key) -> float:
        blocks = [problems[i:i + 1000] for i in range(0, len(problems) - 999, 1000)]
        return sum(len({key(p) for p in block}) for block in blocks) / len(blocks)

    def measures(problems) -> dict:
        return {"structures_per_1000": per_thousand(problems, lambda p: structure_key(p.symbolic)),
                "templates_per_1000": per_thousand(problems, lambda p: p.meta["template"])}

    return {"n": n, "plain": measures(plain), "teacher": measures(children), "children_by_strategy": dict(made_by)}


def markdown(rows: list[dict], div: dict | None, args, machine: str, date: str) -> str:
    return "\n\n".join(part for part in (training_table(rows, args, machine, date) if rows else "",
                                          difference_line(arm_difference(rows)),
                                          diversity_table(div, args, machine, date) if div else "") if part)


def difference_line(diff: dict) -> str:
    if not diff:
        return ""
    cells = "; ".join(f"{'seeds pooled' if key == 'pooled' else 'seed ' + key} {d['gain']:+.3f} "
                      f"[{d['low']:+.3f}, {d['high']:+.3f}]" for key, d in diff.items())
    return ("Teacher minus adaptive, held-out accuracy after training, paired per problem [95 % bootstrap interval; "
            f"pooled: over the seeds' problems, the runs held fixed]: {cells}.")


def training_table(rows: list[dict], args, machine: str, date: str) -> str:
    lines = ["| arm | seed | GRPO steps | minutes (whole run) | sampled groups with spread | taught share | "
             "mean held-out gain over SFT [95% CI] |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        g = r["gain_mean"]
        lines.append(f"| {r['arm']} | {r['seed']} | {r['steps']} | {r['minutes']:.1f} | {r['spread_sampled']:.2f} | "
                     f"{r['taught_share']:.2f} | {g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}] |")
    runs = "; ".join(f"`{c}` ({', '.join(sorted({r['arm'] for r in rows if r['command'] == c}))}, "
                     f"{next(r['date'] for r in rows if r['command'] == c)})" for c in dict.fromkeys(r["command"] for r in rows))
    lines += ["", f"Produced by {runs} on {machine}, each invocation from one empty cache (the tiny model built and "
              f"pretrained in its first run, shared by the others): the tiny preset ({args.model}) with every "
              f"stage over {', '.join(args.topics)}, {args.minutes} GRPO minutes per run, 300 held-out problems per "
              "stage and topic mix, greedy; paired 95 % percentile bootstrap intervals."]
    return "\n".join(lines)


def diversity_table(div: dict, args, machine: str, date: str) -> str:
    lines = [f"Diversity, {div['n']:,} problems per side over {', '.join(args.topics)} (distinct per 1,000):", "",
             "| source | symbolic structures | templates |", "|---|---|---|"]
    lines += [f"| {name} | {div[name]['structures_per_1000']:.1f} | {div[name]['templates_per_1000']:.1f} |"
              for name in ("plain", "teacher")]
    by = ", ".join(f"{k} {v}" for k, v in sorted(div["children_by_strategy"].items()))
    lines += ["", f"Teacher children by strategy: {by}. Produced by `python bench/teacher.py --seeds --topics "
              f"{' '.join(args.topics)} --diversity {div['n']}` (the diversity part) on {machine}, {date}; deterministic (seed 0)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="none: the diversity measure only")
    parser.add_argument("--minutes", type=float, default=2.4, help="GRPO minutes per run, both arms")
    parser.add_argument("--topics", nargs="+", default=["mental_math", "arithmetic", "linear_equations"])
    parser.add_argument("--arms", nargs="+", default=["adaptive", "teacher"], choices=["adaptive", "teacher"])
    parser.add_argument("--diversity", type=int, default=10_000, help="problems per side (0: skip)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--model", default="tiny", choices=list(TINY_MODELS),
                        help="the built-in model (tiny-mix: pretrained on mental_math, linear_equations, word_problems)")
    parser.add_argument("--name", default="teacher", help="results file stem under --out")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="teacher-"))
    div = diversity(args.topics, args.diversity) if args.diversity else None
    if div:
        print(json.dumps(div))
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            rows.append(train_row(arm, seed, work, work / "cache", args))
            print(json.dumps(rows[-1]))
            write_results(rows, div, args)
    print(write_results(rows, div, args))


def write_results(rows: list[dict], div: dict | None, args) -> str:
    """`<name>.json` and the tables of `<name>.md` with the rows so far (after every run, so a stopped bench keeps
    what it measured) merged into the file's earlier rows; its diversity measure kept when this run made none."""
    machine, date = _bench("tiny_default").machine_line(), time.strftime("%Y-%m-%d")
    out = pathlib.Path(args.out)
    path = out / f"{args.name}.json"
    rows = merged_rows(path, rows, args)
    if div is None and path.exists() and same_setting(json.loads(path.read_text()), args):
        div = json.loads(path.read_text()).get("diversity")
    path.write_text(json.dumps({"machine": machine, "date": date, "args": vars(args), "rows": rows, "diversity": div},
                               indent=1))
    text = markdown(rows, div, args, machine, date)
    _bench("tiny_default").write_results_md(out / f"{args.name}.md", text,
                                            "bench/teacher.py: the teacher in the loop vs the adaptive curriculum")
    return text

if __name__ == "__main__":
    main()

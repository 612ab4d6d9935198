"""The SFT warm start: supervised steps on worked solutions (generated, or the verified rows of `sft.data`)
before GRPO, then the adapter goes to every rollout worker."""
from __future__ import annotations

import collections
import pathlib
import random

from actors.engine import encode_prompts
from cluster.checkpoint import SFT_MODEL
from cluster.config import ConfigError, TrainConfig
from cluster.data import sft_problems
from cluster.services import Services, spawn_workers
from cluster.tracking import Tracker
from synthesis.agent_data import CODE_PROMPT
from synthesis.problem import solution_text
from verifier_pool.pool import ScoreRequest
from verifier_pool.reward import Verdict


def warm_start(cfg: TrainConfig, svc: Services, exclude: set[str], tracker: Tracker, echo,
               run_dir: pathlib.Path) -> None:
    """SFT on worked solutions — generated, an equal share from each stage's difficulty and topics (so multi-step
    solutions are seen before the stages that need them), or the verified rows of `sft.data` — then the adapter
    goes to every worker, or with `sft.mode: full` the whole model, written to `run_dir`/sft-model, which every
    worker restarts on."""
    import ray

    if cfg.sft.data:
        rows = verified_sft_rows(cfg, svc, exclude, tracker, echo)
        prompts = [r.prompt if r.turn else cfg.prompt.format(question=r.prompt) for r in rows]
        targets = [r.target for r in rows]
    else:
        problems = sft_problems(cfg, exclude)
        prompts = [cfg.prompt.format(question=p.question) for p in problems]
        targets = [solution_text(p, cfg.sft.target) for p in problems]
        agent_prompts, agent_targets = agent_rows(cfg, problems, svc.tokenizer)
        prompts, targets = prompts + agent_prompts, targets + agent_targets
        if agent_targets:
            echo(f"[sft] {len(problems)} plain solutions and {len(agent_targets)} {cfg.rollout.env} turns")
    batches = sft_batches(len(targets), cfg.sft.steps, cfg.sft.epochs, cfg.sft.batch_size, cfg.seed)
    if cfg.sft.mode == "full":
        echo(f"[sft] full fine-tuning: {ray.get(svc.learner.begin_full_sft.remote()):,} weights")
    ray.get(svc.learner.reset_optimizer.remote(cfg.sft.lr, len(batches)))
    prompt_ids = encode_prompts(svc.tokenizer, prompts, cfg.system_prompt)
    for step, idx in enumerate(batches, start=1):
        stats = ray.get(svc.learner.sft_step.remote([prompt_ids[i] for i in idx], [targets[i] for i in idx]))
        tracker.log_metrics({"sft/loss": stats.loss, "sft/grad_norm": stats.grad_norm}, step=step)
        if step == 1 or step % 10 == 0 or step == len(batches):
            echo(f"[sft] step {step}/{len(batches)}  loss {stats.loss:.3f}  {stats.tokens_per_s:.0f} tok/s")
    if cfg.sft.mode == "full":
        model = ray.get(svc.learner.save_model.remote(str(pathlib.Path(run_dir) / SFT_MODEL)))
        svc.fleet.restart(lambda first, count: spawn_workers(cfg, model, first, count))
        echo(f"[sft] model written to {model}; the rollout workers now load it")
    else:
        svc.fleet.push(ray.get(svc.learner.export_adapter.remote()))


def sft_batches(rows: int, steps: int, epochs: int, batch_size: int, seed: int) -> list[list[int]]:
    """Row indices of each SFT step: `epochs` passes over the rows, each in a fresh seeded order, when `epochs` is
    set; else `steps` batches drawn at random (without replacement within a batch)."""
    rng = random.Random(seed)
    size = min(batch_size, rows)
    if not epochs:
        return [rng.sample(range(rows), size) for _ in range(steps)]
    out = []
    for _ in range(epochs):
        order = list(range(rows))
        rng.shuffle(order)
        out += [order[i:i + size] for i in range(0, rows, size)]
    return out


def verified_sft_rows(cfg: TrainConfig, svc: Services, exclude: set[str], tracker: Tracker, echo) -> list:
    """The rows of `sft.data` fit to train on: readable, not a held-out fact, and — for chain-of-thought rows —
    a solution whose own final answer the verifier (lenient policy, in the pool) judges equal to the row's
    answer. Every dropped row is counted by reason, logged (`sft/data_*`) and printed; no usable row is an error."""
    from synthesis.sft_data import load_sft_rows

    try:
        rows, unreadable = load_sft_rows(cfg.sft.data)
        rows = rows[: cfg.sft.max_samples or None]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"sft.data: {exc}") from exc
    fresh = [r for r in rows if r.turn or r.fact_key() not in exclude]
    cot = [r for r in fresh if not r.turn]
    verdicts = svc.pool.score([ScoreRequest(f"sft/{i}", r.solution, r.prompt, r.answer, {}, "lenient")
                               for i, r in enumerate(cot)])
    dropped = collections.Counter(v.verdict for v in verdicts if v.verdict != Verdict.CORRECT)
    kept = [r for r, v in zip(cot, verdicts) if v.verdict == Verdict.CORRECT] + [r for r in fresh if r.turn]
    counts = {"rows": len(rows) + unreadable, "unreadable": unreadable, "heldout": len(rows) - len(fresh),
              "cot_kept": len(kept) - (len(fresh) - len(cot)), "turns": len(fresh) - len(cot),
              **{f"dropped_{k}": n for k, n in sorted(dropped.items())}}
    tracker.log_metrics({f"sft/data_{k}": float(v) for k, v in counts.items()}, step=0)
    echo("[sft] " + cfg.sft.data + ": " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if not kept:
        raise ConfigError(f"sft.data {cfg.sft.data}: no row is fit to train on ({counts})")
    return kept


def agent_rows(cfg: TrainConfig, problems: list, tokenizer) -> tuple[list, list[str]]:
    """The agent turns an agent environment's episodes need, in the token layout of those episodes (a later turn's
    prompt is the episode so far, as token ids): for `code-feedback` the program turn and the answer turn after its
    output; for `solver-verifier` the verifier's checks of a right and of a wrong solution, and the revision of the wrong
    one after its critique (the loop `rlvr eval --agent solver-verifier` runs). None for `answer`."""
    from cluster.environments import program_observation
    from learner.sft import encode_target
    from synthesis.agent_data import agent_turns, expression_of, program_for
    from synthesis.problem import worked_solution

    if cfg.rollout.env == "solver-verifier":
        checks = [r for r in agent_turns(problems, seed=cfg.seed) if r["kind"] in ("check", "revise")]
        return [r["prompt"] for r in checks], [r["target"] for r in checks]
    if cfg.rollout.env != "code-feedback":
        return [], []
    prompts, targets = [], []
    for p in problems:
        expression = expression_of(p)
        if expression is None:
            continue
        program_turn = f"```python\n{program_for(expression)}\n```"
        question = encode_prompts(tokenizer, [CODE_PROMPT.format(question=p.question)], cfg.system_prompt)[0]
        observation = program_observation("ok", p.answer, "", answer_next=True)
        prompts += [question, question + encode_target(tokenizer, program_turn)
                    + tokenizer(observation, add_special_tokens=False).input_ids]
        targets += [program_turn, worked_solution([f"The program printed {p.answer}."], p.answer)]
    return prompts, targets

"""Where a run is, and what step n trains on.

`RunState` is the whole of the driver's progress (one dataclass, written atomically beside the learner's
checkpoint). `step_problems` is the schedule: from the run state alone (stage, steps into the stage,
curriculum state) it gives the problems of the next step, so a resumed run draws exactly what an
uninterrupted one would.

- `curriculum.mode: fixed` — a stage is `epochs` passes over its own problems (generated for (seed, stage) or
  read from `data`), shuffled per epoch; it ends after its last batch, or early when the rolling accuracy
  reaches `advance_accuracy`.
- `curriculum.mode: adaptive` — every step's problems come from the closed-loop controller
  (`cluster.curriculum`) at each topic's current difficulty; a stage ends when the controller promotes, or
  after as many steps as the fixed schedule would have taken.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import random
from dataclasses import dataclass, field

from cluster.config import TrainConfig
from cluster.curriculum import Curriculum, next_problems, start_stage
from cluster.records import EvalRow
from cluster.teacher import screened
from synthesis.datasets import load_problems
from synthesis.generators import generate_problems, level_point
from synthesis.problem import Problem, fact_key


@dataclass
class RunState:
    step: int = 0  # GRPO steps done
    stage: int = 0  # index of the stage being trained (len(stages): done)
    stage_step: int = 0  # steps done in this stage
    sft_done: bool = False
    run_id: str | None = None  # the MLflow run
    evals: list[EvalRow] = field(default_factory=list)  # held-out evaluation rows, one per checkpoint
    elapsed: float = 0.0  # seconds of the run so far, across resumes
    stage_seconds: float = 0.0  # seconds of GRPO steps in this stage (for `grpo_minutes`)
    rolling: list = field(default_factory=list)  # the rolling-accuracy window
    curriculum: dict | None = None  # `Curriculum.to_dict()` of the current stage
    history: list = field(default_factory=list)  # per step: the curriculum snapshot (difficulty, pass rate)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    def save(self, path: pathlib.Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: pathlib.Path) -> "RunState":
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in data.items() if k in known})
        state.evals = [EvalRow.from_dict(row) for row in state.evals]
        return state


def stage_pool(cfg: TrainConfig, index: int, exclude: set[str]) -> list[Problem]:
    """The fixed schedule's problems for a stage: its data file, or generated for (seed, stage), without
    held-out facts."""
    stage = cfg.stages[index]
    if stage.data:
        problems = [p for p in load_problems(stage.data) if fact_key(p) not in exclude]
        if not problems:
            raise ValueError(f"stages[{index}].data: no problems left after removing held-out ones")
        return problems
    return generate_problems(stage.problems, stage.difficulty, topics=stage.topics or None,
                             seed=cfg.seed * 1000 + index, exclude=exclude, split="train")


def stage_length(cfg: TrainConfig, index: int, pool_size: int) -> int:
    """Steps the stage takes at most: its epochs (RAFT: `raft.cycles` when set) over its problems."""
    passes = cfg.raft.cycles if cfg.algo == "raft" and cfg.raft.cycles else cfg.stages[index].epochs
    return passes * -(-pool_size // cfg.batch_size)


def epoch_batches(problems: list[Problem], batch_size: int, seed: int, stage: int, epoch: int) -> list[list[Problem]]:
    order = list(problems)
    random.Random(f"{seed}/{stage}/{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def stage_curriculum(cfg: TrainConfig, index: int, previous: dict | None) -> Curriculum:
    """The controller of stage `index`: difficulties from the easiest (0) to the stage's level, carrying the
    last stage's per-topic difficulty and pass rate over (fixed mode: held at the stage's level, so it only
    measures pass rates)."""
    from synthesis.generators import TOPICS

    stage = cfg.stages[index]
    top = level_point(stage.difficulty)
    low = 0.0 if cfg.curriculum.mode != "fixed" else top  # fixed: pass rates measured, difficulty held
    return start_stage(stage.topics or {t: 1.0 for t in TOPICS}, low, top,
                       Curriculum.from_dict(previous) if previous else None, teacher_of(cfg))


def teacher_of(cfg: TrainConfig):
    """The teacher's configuration in `curriculum.mode: teacher`, else None."""
    return cfg.teacher if cfg.curriculum.mode == "teacher" else None


def screen_of(cfg: TrainConfig, predict) -> int:
    """Candidates drawn per batch slot: `teacher.screen` when the teacher screens with a predictor, else 1."""
    teacher = teacher_of(cfg)
    return teacher.screen if teacher is not None and predict is not None else 1


def step_problems(cfg: TrainConfig, state: RunState, pool: list[Problem], exclude: set[str],
                  llm=None, predict=None) -> list[Problem]:
    """The problems of the step after `state`: the fixed schedule's next batch, or the controller's draw (with an
    LLM teacher, `llm` writes the taught children; with `teacher.screen` above 1, `teacher.screen` times as many
    candidates are drawn and `predict`, the student's pass rates as the fleet predicts them, picks the batch)."""
    if cfg.curriculum.mode != "fixed":
        screen = screen_of(cfg, predict)
        drawn = next_problems(Curriculum.from_dict(state.curriculum), cfg.curriculum, cfg.batch_size * screen,
                              f"{cfg.seed}/{state.stage}/{state.step + 1}", exclude, teacher_of(cfg), llm)
        return screened(drawn, predict(drawn), cfg.batch_size, cfg.curriculum.target) if screen > 1 else drawn
    per_epoch = -(-len(pool) // cfg.batch_size)
    epoch, batch = divmod(state.stage_step, per_epoch)
    return epoch_batches(pool, cfg.batch_size, cfg.seed, state.stage, epoch)[batch]


def replacement_problems(cfg: TrainConfig, state: RunState, pool: list[Problem], exclude: set[str], n: int,
                         round_: int, taken: set[str], llm=None, predict=None) -> list[Problem]:
    """`n` fresh problems to replace groups with no correctness spread (dynamic sampling), none already in
    this step: drawn by the controller (adaptive, teacher: screened as `step_problems` screens) or from the rest of
    the stage's pool (fixed)."""
    if cfg.curriculum.mode != "fixed":
        screen = screen_of(cfg, predict)
        drawn = next_problems(Curriculum.from_dict(state.curriculum), cfg.curriculum, n * screen + len(taken),
                              f"{cfg.seed}/{state.stage}/{state.step + 1}/resample{round_}", exclude, teacher_of(cfg),
                              llm)
        if screen > 1:
            fresh = [p for p in drawn if p.question not in taken]
            return screened(fresh, predict(fresh), n, cfg.curriculum.target)
    else:
        drawn = list(pool)
        random.Random(f"{cfg.seed}/{state.stage}/{state.step + 1}/resample{round_}").shuffle(drawn)
    return [p for p in drawn if p.question not in taken][:n]

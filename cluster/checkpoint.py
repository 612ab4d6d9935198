"""The run directory: where a run starts or resumes, and the checkpoints written into it (the learner's state and
the loop's `RunState` in one directory renamed into place, so a kill at any moment leaves a matching pair)."""
from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import yaml

from cluster.config import ConfigError, TrainConfig, data_affecting_changes, dump
from cluster.schedule import RunState

RUN_STATE = "run_state.json"  # the loop's RunState inside the learner checkpoint


def prepare_run_dir(cfg: TrainConfig, resume: str | None, force: bool) -> pathlib.Path:
    """The run directory: a new one (refusing one that holds a run) or the one resumed (refusing a config that
    would change the data order, unless `force`); the resolved config is written into it."""
    run_dir = pathlib.Path(resume or (cfg.run_dir if cfg.run_dir != "auto" else time.strftime("runs/%Y%m%d-%H%M%S")))
    if not resume and (run_dir / "state.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run: continue it with --resume {run_dir} "
                              f"or pick another run_dir")
    if resume and (run_dir / "config.yaml").exists() and not force:
        changed = data_affecting_changes(yaml.safe_load((run_dir / "config.yaml").read_text()), cfg.to_dict())
        if changed:
            raise ConfigError(f"{changed[0]}: differs from the run's saved config.yaml; resuming with it would not "
                              f"continue the same data order (changed: {', '.join(changed)}; --force accepts it)")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump(cfg))
    return run_dir


def load_run_state(run_dir: pathlib.Path, resume: str | None) -> RunState:
    """A new run's empty state, or on resume the state saved with the learner's checkpoint (not a later one)."""
    run = RunState.load(run_dir / "state.json")
    checkpoint = run_dir / "checkpoint" / RUN_STATE
    if resume and checkpoint.exists():
        saved = RunState.load(checkpoint)
        run = dataclasses.replace(saved, run_id=saved.run_id or run.run_id)
    return run


def save_checkpoint(cfg: TrainConfig, learner, run: RunState, run_dir: pathlib.Path) -> None:
    """The learner's state and the run state in one directory, then the run state beside it for readers."""
    import ray

    ray.get(learner.save.remote(str(run_dir / "checkpoint"), {RUN_STATE: run.to_json()}))
    write_eval_settings(cfg, run_dir / "checkpoint", base_model(cfg, run_dir))
    run.save(run_dir / "state.json")


SFT_MODEL = "sft-model"


def base_model(cfg: TrainConfig, run_dir: pathlib.Path) -> str:
    """The model the run's adapters sit on: the model directory a full SFT wrote (`sft.mode: full`) once it
    exists, else `model.name`."""
    full = pathlib.Path(run_dir) / SFT_MODEL
    return str(full.resolve()) if cfg.sft.mode == "full" and (full / "config.json").exists() else cfg.model.name


def write_eval_settings(cfg: TrainConfig, directory: pathlib.Path, model: str) -> None:
    """How the adapter in `directory` was trained to be prompted and judged, and the model it sits on, for
    `rlvr eval --adapter`."""
    (directory / "rlvr_eval.json").write_text(json.dumps({
        "prompt": cfg.prompt, "system_prompt": cfg.system_prompt, "answer_policy": cfg.verifier.answer_policy, "model": model,
        "max_tokens": cfg.rollout.max_tokens}, indent=2))

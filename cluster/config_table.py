"""The README's configuration table, generated from the config dataclasses so that it cannot drift.

    python -m cluster.config_table                    # print the table
    python -m cluster.config_table --write README.md  # replace the table between the README's markers
    python -m cluster.config_table --check README.md  # exit 1 when the README's table is stale

`config_table()` walks `cluster.config.TrainConfig` and every nested dataclass one of its fields is typed with
(whatever that type is: string annotations are resolved with `typing.get_type_hints`). A key's default is the
field's `default` or `default_factory()`; its meaning is the field's trailing `# comment` in the source (or a
comment block directly above it), read with `inspect.getsource` + `tokenize` and `ast` (never executed), else a
sentence of the class docstring that names the field in backticks, else the short note in `NOTES` below. The
`presets` column shows the value each preset YAML (`cluster/presets/`) sets where it differs from the default.
`stages` (a list of stage records) is documented in prose in the README; `prompt` is shown shortened.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import pathlib
import re
import sys
import textwrap
import tokenize
import typing

import yaml

START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"
SKIP = ("stages",)  # documented in prose
SHORTENED = ("prompt", "system_prompt")

# Meanings for fields whose source carries no comment and whose class docstring does not name them. A field's
# own comment always wins; a note whose key is no longer a field is reported by `stale_notes()` (and the test).
NOTES = {
    "preset": "the preset the run was built from (`rlvr train --preset`; set by the command line)",
    "seed": "seed of problem draws, sampling and initialisation",
    "checkpoint_every": "steps between atomic checkpoints (learner + run state, renamed into place)",
    "rolling_window": "steps in the rolling accuracy (`stages[i].advance_accuracy`)",
    "log_samples": "sample completions logged to MLflow per step",
    "drop_zero_spread": "drop groups whose correctness has no spread (all right or all wrong) before the learner step",
    "model.lora_rank": "LoRA rank (attention and MLP projections)",
    "model.lora_alpha": "LoRA alpha (scale alpha/rank)",
    "model.dtype": "weights dtype: auto (bf16 on CUDA, fp32 on CPU) or a torch dtype name",
    "model.gradient_checkpointing": "activation checkpointing in the learner: auto, true, false",
    "model.lora_dropout": "LoRA dropout",
    "model.target_modules": "the projections LoRA adapts",
    "model.device": "the learner's device: auto (CUDA when available, else CPU) or a torch device",
    "model.attn_implementation": "transformers attention implementation",
    "model.adapter_dtype": "dtype of the LoRA weights: auto (the model's dtype) or a torch dtype name",
    "rollout.workers": "rollout worker actors (`rollout-<i>`)",
    "rollout.gpus_per_worker": "GPU share of each rollout worker (fractions share one GPU)",
    "rollout.cpus_per_worker": "CPUs Ray reserves for each rollout worker",
    "rollout.temperature": "sampling temperature",
    "rollout.top_p": "nucleus sampling",
    "rollout.max_tokens": "completion length cap (tokens)",
    "rollout.gpu_memory_utilization": "vLLM: share of the GPU's memory its engine may take",
    "rollout.max_num_seqs": "sequences one engine decodes at once",
    "learner.lr": "AdamW learning rate",
    "learner.beta": "weight of the k3 KL term against the reference (the SFT model after a warm start)",
    "learner.clip_low": "PPO clip ε_low: ratio floor 1 − ε_low",
    "learner.clip_high": "PPO clip ε_high: ratio ceiling 1 + ε_high",
    "learner.epochs": "updates per batch (1: on-policy, no extra forward pass for the old log-probs)",
    "learner.micro_batch_size": "packed rows per micro-batch",
    "learner.max_grad_norm": "gradient clipping",
    "learner.warmup_steps": "learning-rate warmup steps",
    "learner.gpus": "GPU share of the learner (≥ 2 whole GPUs: a data-parallel group)",
    "learner.std_floor": "`grpo` advantage: floor of the group's standard deviation",
    "learner.tis_cap": "cap of the truncated importance weights min(π_learner/π_sampler, cap)",
    "learner.weight_decay": "AdamW weight decay",
    "learner.betas": "AdamW betas",
    "learner.schedule": "learning-rate schedule (a `transformers.get_scheduler` name)",
    "verifier.reserve_cpus": "CPUs on the driver's node left out of an `auto` pool",
    "verifier.timeout": "SymPy deadline per comparison (s); a call past it is killed and scored `timeout`",
    "verifier.chunk_size": "requests per scoring chunk sent to one verifier actor",
    "verifier.resource": "pin verifier actors to nodes carrying this custom Ray resource",
    "sft.data": "a JSONL/parquet file of chain-of-thought rows or agent turns to warm-start from instead of "
                "generated solutions; each row's final answer is checked by the verifier pool first",
    "sft.target": "style of the generated solutions: xml (the markup the default prompt asks for) or plain "
                  "(reasoning lines, then \"The answer is …\")",
    "sft.enabled": "run the SFT warm start before GRPO; its adapter is then merged into the base weights",
    "sft.problems": "generated problems with worked solutions (an equal share per stage)",
    "sft.steps": "SFT optimiser steps",
    "sft.batch_size": "rows per SFT step",
    "sft.lr": "SFT learning rate",
    "watchdog.factor": "a phase silent past factor × its recent median is a stall",
    "watchdog.floor_seconds": "the stall deadline is never below this",
    "watchdog.first_seconds": "deadline of a phase's first run (model loading, compilation)",
    "experiment": "MLflow experiment name",
}


def config_table() -> str:
    """The markdown table: `section.key`, default, preset values that differ, meaning."""
    from cluster.config import TrainConfig

    presets = _presets()
    lines = ["| key | default | presets | meaning |", "|---|---|---|---|"]
    nested = []
    for f, hint in _fields(TrainConfig):
        if f.name in SKIP:
            continue
        if dataclasses.is_dataclass(hint):
            nested.append((f, hint))
            continue
        lines.append(_row(f.name, _default(f), _preset_cell(presets, (f.name,), _default(f)), _meaning(TrainConfig, f.name, f.name)))
    for f, cls in nested:
        doc = _one_line(inspect.getdoc(cls) or "") if cls.__doc__ and not _auto_doc(cls) else ""
        lines.append(_row(f"**{f.name}:**", "", "", f"`{cls.__module__}.{cls.__qualname__}`" + (f": {doc}" if doc else ""),
                          code_key=False, code_default=False))
        for sub, _ in _fields(cls):
            key = f"{f.name}.{sub.name}"
            lines.append(_row(key, _default(sub), _preset_cell(presets, (f.name, sub.name), _default(sub)),
                              _meaning(cls, sub.name, key)))
    return "\n".join(lines)


def stale_notes() -> list[str]:
    """`NOTES` keys that name no field any more (so a renamed field is not silently described by an old note)."""
    from cluster.config import TrainConfig

    keys = set()
    for f, hint in _fields(TrainConfig):
        keys.add(f.name)
        if dataclasses.is_dataclass(hint):
            keys.update(f"{f.name}.{sub.name}" for sub, _ in _fields(hint))
    return sorted(set(NOTES) - keys)


def replace_block(text: str, table: str) -> str:
    """`text` with everything between the markers replaced by `table` (the markers must exist)."""
    if START not in text or END not in text:
        raise ValueError(f"no {START} … {END} markers")
    head, rest = text.split(START, 1)
    return head + START + "\n" + table + "\n" + END + rest.split(END, 1)[1]


def read_block(text: str) -> str:
    """The table between the markers, as `config_table()` returns it."""
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n")


# -- walking the dataclasses -------------------------------------------------------------------------------------

def _fields(cls) -> list[tuple[dataclasses.Field, typing.Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints.get(f.name, f.type)) for f in dataclasses.fields(cls)]


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _auto_doc(cls) -> bool:
    """dataclass() writes `Name(field: type = …)` as the docstring of a class that has none."""
    return (cls.__doc__ or "").startswith(cls.__name__ + "(")


# -- meanings from the source -------------------------------------------------------------------------------------

def _meaning(cls, name: str, key: str) -> str:
    comment = _comments(cls).get(name)
    if comment:
        return comment
    if key in NOTES:
        return NOTES[key]
    return _docstring_sentence(cls, name)


_COMMENTS: dict[type, dict[str, str]] = {}


def _comments(cls) -> dict[str, str]:
    """Field name → its trailing `# comment` (or the comment lines right above it), from the class source."""
    if cls in _COMMENTS:
        return _COMMENTS[cls]
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        _COMMENTS[cls] = {}
        return {}
    comments: dict[int, str] = {}  # line → comment text
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    out = {}
    body = ast.parse(source).body[0]
    for node in getattr(body, "body", []):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        trailing = [comments[line] for line in range(node.lineno, (node.end_lineno or node.lineno) + 1) if line in comments]
        above, line = [], node.lineno - 1
        while line in comments and line not in code_lines:  # a comment block directly above the field
            above.insert(0, comments[line])
            line -= 1
        text = " ".join(trailing) or " ".join(above)
        if text and not text.lower().startswith(("noqa", "type:")):
            out[node.target.id] = text
    _COMMENTS[cls] = out
    return out


def _docstring_sentence(cls, name: str) -> str:
    """The first sentence of the class docstring that names the field in backticks."""
    if _auto_doc(cls) or not cls.__doc__:
        return ""
    doc = _one_line(inspect.getdoc(cls) or "")
    for sentence in re.split(r"(?<=\.)\s+(?=[A-Z`])", doc):
        if f"`{name}`" in sentence:
            return sentence.rstrip(".")
    return ""


# -- rendering ----------------------------------------------------------------------------------------------------

def _one_line(text: str) -> str:
    return " ".join(text.split())


def _value(value, key: str) -> str:
    """A default as the user would write it in YAML or `--set`."""
    if key.split(".")[-1] in SHORTENED and isinstance(value, str) and len(value) > 40:
        first = value.split(". ")[0].rstrip(".") + "."
        return f"{first} … {value.rsplit(chr(10), 1)[-1]}" if "\n" in value else f"{first} …"
    if value is dataclasses.MISSING:
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return repr(value) if isinstance(value, float) else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(key: str, default, presets: str, meaning: str, *, code_key: bool = True, code_default: bool = True) -> str:
    key_cell = f"`{key}`" if code_key else key
    default_cell = f"`{_cell(_value(default, key))}`" if code_default else ""
    return f"| {key_cell} | {default_cell} | {presets} | {_cell(meaning)} |"


def _presets() -> dict[str, dict]:
    from cluster.config import PRESETS

    return {p.stem: yaml.safe_load(p.read_text()) or {} for p in sorted(PRESETS.glob("*.yaml"))}


def _preset_cell(presets: dict[str, dict], path: tuple[str, ...], default) -> str:
    """`value` (preset, …) for each value some preset sets that differs from the default."""
    by_value: dict[str, list[str]] = {}
    for name, data in presets.items():
        node = data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            if not _same(node, default):
                by_value.setdefault(_value(node, path[-1]), []).append(name)
    return "; ".join(f"`{_cell(v)}` ({', '.join(names)})" for v, names in by_value.items())


def _same(value, default) -> bool:
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) == default
    if isinstance(default, tuple) and isinstance(value, list):
        return list(default) == value
    return value == default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="README", help="replace the table between the markers in this file")
    group.add_argument("--check", metavar="README", help="exit 1 when the table in this file is not the generated one")
    args = parser.parse_args(argv)
    table = config_table()
    if args.write:
        path = pathlib.Path(args.write)
        path.write_text(replace_block(path.read_text(), table))
        print(f"wrote the configuration table into {path}")
    elif args.check:
        if read_block(pathlib.Path(args.check).read_text()) != table:
            print(f"{args.check}: the configuration table is stale; run python -m cluster.config_table --write {args.check}",
                  file=sys.stderr)
            return 1
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

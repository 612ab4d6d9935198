"""Dataset loaders: GSM8K (`question`/`answer` ending in `#### x`) and MATH / MATH-500
(`problem`/`solution`/`answer`, the answer taken from the last `\\boxed{}` when absent).

Local JSONL or parquet files are read directly; any other string is treated as a Hugging Face hub id
and loaded with `datasets` when it is installed (these machines have no network, so tests use files).
"""
from __future__ import annotations

import json
import pathlib
import re
from dataclasses import dataclass

from synthesis.problem import Problem
from verifier_pool.extract import last_boxed

_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.S)


def read_records(source: str, split: str = "test") -> list[dict]:
    """Rows of a local .jsonl/.json/.parquet file, or of a hub dataset's `split` via `datasets`."""
    path = pathlib.Path(source)
    if path.exists():
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        text = path.read_text()
        if path.suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if source.endswith((".jsonl", ".json", ".parquet")):
        raise FileNotFoundError(f"no such dataset file: {source}")
    try:
        import datasets
    except ImportError as exc:
        raise FileNotFoundError(f"{source!r} is not a file and `datasets` is not installed to load it from the hub") from exc
    return list(datasets.load_dataset(source, split=split))


def gsm8k_answer(solution: str) -> str:
    """The number after `####`, thousands separators removed."""
    match = _GSM8K_ANSWER.search(solution)
    if not match:
        raise ValueError(f"GSM8K answer without '#### x': {solution[-80:]!r}")
    return match.group(1).replace(",", "").strip()


def load_gsm8k(source: str, split: str = "test", limit: int | None = None) -> list[Problem]:
    return gsm8k_problems(read_records(source, split)[:limit])


def gsm8k_problems(rows: list[dict]) -> list[Problem]:
    return [Problem(id=f"gsm8k-{i}", question=r["question"], answer=gsm8k_answer(r["answer"]), difficulty=2,
                    topic="word_problems", source="gsm8k", meta={"solution": r["answer"]})
            for i, r in enumerate(rows)]


def math_answer(row: dict) -> str:
    """`answer` when present, else the last `\\boxed{}` of `solution`."""
    if row.get("answer"):
        return str(row["answer"])
    boxed = last_boxed(row.get("solution", ""))
    if boxed is None:
        raise ValueError(f"MATH row without an answer or a \\boxed{{}}: {str(row.get('problem', ''))[:80]!r}")
    return boxed


def load_math(source: str, split: str = "test", limit: int | None = None, name: str = "math") -> list[Problem]:
    return math_problems(read_records(source, split)[:limit], name)


def math_problems(rows: list[dict], name: str = "math") -> list[Problem]:
    """MATH or MATH-500 rows; `level` ("Level 4" or 4) maps to difficulty 1–3."""
    out = []
    for i, r in enumerate(rows):
        level = int(re.sub(r"\D", "", str(r.get("level", "3"))) or 3)
        out.append(Problem(id=r.get("unique_id") or f"{name}-{i}", question=r["problem"], answer=math_answer(r),
                           difficulty=1 if level <= 2 else (2 if level <= 3 else 3),
                           topic=str(r.get("subject") or r.get("type") or "math"), source=name,
                           meta={"level": level}))
    return out


def load_problems(source: str, kind: str | None = None, limit: int | None = None) -> list[Problem]:
    """Any supported file: our own Problem JSONL, GSM8K, or MATH/MATH-500, told apart by their fields."""
    rows = read_records(source)[:limit]
    if not rows:
        raise ValueError(f"{source}: no rows")
    first = rows[0]
    kind = kind or ("problem" if "id" in first and "question" in first else
                    "gsm8k" if "question" in first else "math500" if "unique_id" in first else "math")
    if kind == "problem":
        return [Problem.from_dict(r) for r in rows]
    if kind == "gsm8k":
        return gsm8k_problems(rows)
    return math_problems(rows, kind)


DATA = pathlib.Path(__file__).with_name("data")


@dataclass(frozen=True)
class KnownDataset:
    """A dataset by name: where it lives on the hub, which split a benchmark reads, its size there, and the small
    file shipped here in its format (what runs without the hub)."""

    name: str
    hub_id: str
    config: str | None
    split: str
    size: int | None
    sample: str
    kind: str  # how rows become problems: gsm8k | math | math500 | aime | metamath | ours

    def sample_path(self) -> pathlib.Path:
        return DATA / self.sample


KNOWN_DATASETS = {d.name: d for d in (
    KnownDataset("gsm8k", "openai/gsm8k", "main", "test", 1319, "gsm8k_sample.jsonl", "gsm8k"),
    KnownDataset("math", "DigitalLearningGmbH/MATH-lighteval", None, "test", 5000, "math_sample.jsonl", "math"),
    KnownDataset("math500", "HuggingFaceH4/MATH-500", None, "test", 500, "math500_sample.jsonl", "math500"),
    KnownDataset("metamath", "meta-math/MetaMathQA", None, "train", 395000, "metamath_sample.jsonl", "metamath"),
    KnownDataset("aime", "AI-MO/aimo-validation-aime", None, "train", 90, "aime_sample.jsonl", "aime"),
    KnownDataset("ours", "", None, "heldout", None, "", "ours"),
)}


class DatasetUnavailable(RuntimeError):
    """A dataset named but not reachable here; the message says which local file to use instead."""


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def dataset_rows(name_or_file: str, limit: int | None = None) -> tuple[list[dict], KnownDataset | None]:
    """The rows of a file, or of a known dataset through `datasets` from the hub; DatasetUnavailable (one line
    naming the shipped sample) when `datasets` is missing or the hub cannot be reached."""
    known = KNOWN_DATASETS.get(name_or_file)
    if known is None:
        return read_records(name_or_file)[:limit], None
    try:
        import datasets
    except ImportError:
        datasets = None
    if datasets is None or not hub_reachable():
        why = "the `datasets` package is not installed" if datasets is None else "the Hugging Face hub is not reachable"
        raise DatasetUnavailable(f"{known.name}: {why}; use a local file instead, e.g. --dataset "
                                 f"{known.sample_path()} (the shipped {known.kind} sample) or your own download of "
                                 f"{known.hub_id} as JSONL/parquet")
    split = f"{known.split}[:{limit}]" if limit else known.split
    return list(datasets.load_dataset(known.hub_id, known.config, split=split)), known


def resolve_problems(name_or_file: str, limit: int | None = None, seed: int = 0) -> list[Problem]:
    """Problems of a dataset named in `KNOWN_DATASETS` (`ours`: our generators' held-out side) or of a file."""
    if name_or_file == "ours":
        from synthesis.generators import generate_problems

        return generate_problems(limit or 500, 2, seed=seed, split="heldout")
    rows, known = dataset_rows(name_or_file, limit)
    if known is None:
        return load_problems(name_or_file, limit=limit)
    if not rows:
        raise ValueError(f"{name_or_file}: no rows")
    if known.kind == "metamath":
        raise ValueError("metamath holds worked solutions for SFT (`rlvr sft --dataset metamath`), not problems to "
                         "benchmark on")
    return gsm8k_problems(rows) if known.kind == "gsm8k" else math_problems(rows, known.name)

"""Dataset loaders: GSM8K (`question`/`answer` ending in `#### x`) and MATH / MATH-500
(`problem`/`solution`/`answer`, the answer taken from the last `\\boxed{}` when absent).

Local JSONL or parquet files are read directly; any other string is treated as a Hugging Face hub id
and loaded with `datasets` when it is installed (these machines have no network, so tests use files).
"""
from __future__ import annotations

import json
import pathlib
import re

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

"""The rollout log: every completion with its reward breakdown, appended as msgpack records; read back
and re-scored offline with other reward weights (`rlvr rescore`)."""
from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import msgpack

from verifier_pool.reward import RewardWeights, score

SCHEMA_VERSION = 1


def append_records(path: str | pathlib.Path, records: list[dict]) -> None:
    """Append records (plain dicts) to the log, one msgpack object each."""
    with open(path, "ab") as f:
        for record in records:
            f.write(msgpack.packb({"v": SCHEMA_VERSION, **record}, use_bin_type=True))


def read_records(path: str | pathlib.Path) -> Iterator[dict]:
    """Every record in order; a truncated last record (a crash mid-write) is skipped."""
    with open(path, "rb") as f:
        unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False)
        try:
            yield from unpacker
        except (msgpack.exceptions.OutOfData, ValueError):
            return


def truncate_after(path: str | pathlib.Path, step: int) -> int:
    """Drop records of steps after `step` (those a resumed run replays from its checkpoint), rewriting the log
    atomically; returns how many were dropped."""
    path = pathlib.Path(path)
    if not path.exists():
        return 0
    records = list(read_records(path))
    kept = [r for r in records if r.get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for record in kept:
            f.write(msgpack.packb(record, use_bin_type=True))
    os.replace(tmp, path)
    return len(records) - len(kept)


def rescore(path: str | pathlib.Path, weights: RewardWeights, timeout: float = 2.0) -> list[tuple[float, float]]:
    """(logged total, total under `weights`) for every record, judged under the record's answer policy and form."""
    return [(r["reward"]["total"], score(r["text"], r["question"], r["gold"], weights, timeout=timeout,
                                         policy=r.get("policy", "strict"), form=r.get("form", "")).total)
            for r in read_records(path)]

"""The verifier pool on a real local Ray cluster: order, count, bad input, a killed actor."""
import time

import pytest

from verifier_pool.pool import ScoreRequest, VerifierPool, score_chunk

GOOD = "<response><reasoning>12 + 30 = 42</reasoning><final_answer>42</final_answer></response>"


def requests(n: int) -> list[ScoreRequest]:
    out = []
    for i in range(n):
        completion = GOOD if i % 3 == 0 else (r"\boxed{9^{9^{9^9}}}" if i % 3 == 1 else "x" * 100_000)
        out.append(ScoreRequest(str(i), completion, "12 apples and 30 more", str(40 + i % 5)))
    return out


def test_score_chunk_never_raises_on_bad_weights():
    rows = score_chunk([ScoreRequest("a", GOOD, "p", "42", {"correctness": 2.0})], timeout=2.0)
    assert rows[0]["verdict"] == "error"


@pytest.mark.ray
def test_pool_keeps_order_count_and_survives_a_killed_actor(ray_cluster):
    pool = VerifierPool(2, chunk_size=4, name_prefix="verifier-t")
    reqs = requests(24)
    start = time.perf_counter()
    out = pool.score(reqs)
    assert time.perf_counter() - start < 60
    assert len(out) == 24
    for r, b in zip(reqs, out):
        expect_correct = r.completion == GOOD and r.gold == "42"
        assert (b.verdict == "correct") is expect_correct
        assert b.verdict in ("correct", "wrong", "unparsable", "timeout")
    ray_cluster.kill(pool.actors[0])
    again = pool.score(reqs)
    assert [b.verdict for b in again] == [b.verdict for b in out]
    assert pool.restarts >= 1
    assert pool.stats()["scored"] > 0

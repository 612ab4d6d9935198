"""The verifier pool on a real local Ray cluster: order, count, deadlines, killed workers and actors,
nodes joining and leaving."""
import dataclasses
import os
import signal
import threading
import time

import psutil
import pytest

from verifier_pool.pool import ScoreRequest, VerifierPool, percentile, score_chunk
from verifier_pool.reward import Verdict

GOOD = "<response><reasoning>12 + 30 = 42</reasoning><final_answer>42</final_answer></response>"
TOWER = r"\boxed{9^{9^{9^9}}}"
HUGE = "x" * 1_000_000


def mixed_requests(n: int) -> tuple[list[ScoreRequest], list[str]]:
    """Requests whose verdicts are known: plain numbers, symbolic forms, wrong answers, junk."""
    kinds = [
        (GOOD, "12 apples and 30 more", "42", Verdict.CORRECT),
        (r"so \boxed{(x+1)^2}", "expand", "x^2 + 2*x + 1", Verdict.CORRECT),
        (r"\boxed{x^2+1}", "expand", "x^2 + 2*x + 1", Verdict.WRONG),
        (r"\boxed{\frac{3}{4}}", "a fraction", "0.75", Verdict.CORRECT),
        ("no answer here", "anything", "7", Verdict.UNPARSABLE),
    ]
    reqs, expected = [], []
    for i in range(n):
        completion, problem, gold, verdict = kinds[i % len(kinds)]
        reqs.append(ScoreRequest(str(i), completion, problem, gold))
        expected.append(verdict)
    return reqs, expected


def without_seconds(breakdown) -> dict:
    return {k: v for k, v in dataclasses.asdict(breakdown).items() if k != "seconds"}


def test_score_chunk_never_raises_on_bad_weights():
    rows = score_chunk([ScoreRequest("a", GOOD, "p", "42", {"correctness": 2.0})], timeout=2.0)
    assert rows[0]["verdict"] == Verdict.ERROR and "weights must sum to 1" in rows[0]["reason"]


def test_percentile_by_nearest_rank():
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile(list(range(101)), 0.95) == 95


@pytest.mark.ray
def test_pool_rejects_a_bad_size(ray_cluster):
    with pytest.raises(ValueError, match="size"):
        VerifierPool(0)


@pytest.fixture
def pool(ray_cluster):
    p = VerifierPool(2, chunk_size=4, timeout=1.0, name_prefix="verifier-t")
    assert p.wait_ready() == 2
    yield p
    p.shutdown()


@pytest.mark.ray
def test_order_count_and_determinism(pool):
    reqs, expected = mixed_requests(40)
    first = pool.score(reqs)
    assert [b.verdict for b in first] == expected
    second = pool.score(reqs)
    assert [without_seconds(b) for b in second] == [without_seconds(b) for b in first]
    stats = pool.stats()
    assert stats["scored"] == 80 and stats["actors"] == 2 and stats["queue_depth"] == 0
    assert (stats["timeouts"], stats["errors"], stats["not_final"], stats["restarts"]) == (0, 0, 0, 0)
    assert stats["scores_per_second"] > 0 and 0 < stats["latency_p50_s"] <= stats["latency_p95_s"]
    assert sum(s["scored"] for s in stats["per_actor"]) == 80


@pytest.mark.ray
def test_towers_and_megabyte_strings_are_judged_without_evaluation(pool):
    """A tower is refused as undone arithmetic (never evaluated), a megabyte of junk has no answer, a tower gold is
    unparsable: each decided by a guard, not by a deadline, and the pool then scores as before."""
    reqs = [ScoreRequest(str(i), TOWER if i % 2 else HUGE, "p", "2") for i in range(8)]
    reqs += [ScoreRequest("tower-gold", r"\boxed{2}", "p", "9^(9^(9^9))")]
    out = pool.score(reqs)
    assert [b.verdict for b in out] == [Verdict.NOT_FINAL if i % 2 else Verdict.UNPARSABLE for i in range(8)] + [
        Verdict.UNPARSABLE]
    assert [b.reason for b in out[:2]] + [out[-1].reason] == ["empty answer", "arithmetic left undone",
                                                              "exponent too large"]
    good, expected = mixed_requests(10)
    assert [b.verdict for b in pool.score(good)] == expected


@pytest.mark.ray
def test_sandbox_killed_mid_batch_costs_a_retry_not_a_result(pool, ray_cluster):
    pids = ray_cluster.get([m.handle.pid.remote() for m in pool.members])
    pool.score(mixed_requests(10)[0])  # every actor has a started sandbox to kill
    reqs, expected = mixed_requests(600)
    future = pool.score_async(reqs)
    hit: set[int] = set()  # each actor's sandbox is killed once: a second kill could land on the same request's
    for _ in range(3):     # retry and spend it (verdict `error`); a later round only for actors found between children
        time.sleep(0.3)
        for pid in set(pids) - hit:
            for child in psutil.Process(pid).children():
                if "verifier_pool.sandbox" in " ".join(child.cmdline()):
                    os.kill(child.pid, signal.SIGKILL)
                    hit.add(pid)
        time.sleep(1.5)
    out = future.result(timeout=120)
    assert len(hit) >= 2
    assert [b.verdict for b in out] == expected
    assert pool.stats()["sandbox_restarts"] >= 1


@pytest.mark.ray
def test_actor_killed_mid_batch_is_replaced_and_its_chunks_retried(pool, ray_cluster):
    reqs, expected = mixed_requests(200)
    victim = pool.members[0]
    future = pool.score_async(reqs)
    time.sleep(0.3)
    ray_cluster.kill(victim.handle)
    out = future.result(timeout=120)
    assert [b.verdict for b in out] == expected
    assert pool.restarts == 1
    assert victim.name not in pool.actor_names() and len(pool.actor_names()) == 2
    assert [b.verdict for b in pool.score(reqs[:20])] == expected[:20]


def wait_for(predicate, timeout: float = 30.0) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.1)
    return time.monotonic() - start


@pytest.mark.ray
def test_auto_pool_grows_when_a_node_joins_and_loses_nothing_when_it_leaves(local_cluster, ray_cluster):
    pool = VerifierPool("auto", reserve_cpus=2, chunk_size=4, name_prefix="verifier-auto", poll_seconds=0.5)
    try:
        assert pool.wait_ready() == 2
        node = local_cluster.add_node(num_cpus=2)
        wait_for(lambda: len(pool.actor_names()) == 4)
        assert pool.wait_ready() == 4
        on_new = [m for m in pool.members if m.node_id == node.node_id]
        assert len(on_new) == 2

        reqs, expected = mixed_requests(600)
        future = pool.score_async(reqs)
        wait_for(lambda: pool.stats()["queue_depth"] < 560 or future.done())
        local_cluster.remove_node(node)
        out = future.result(timeout=180)
        assert [b.verdict for b in out] == expected
        wait_for(lambda: len(pool.actor_names()) == 2)
        assert all(m.node_id != node.node_id for m in pool.members)
    finally:
        pool.shutdown()


@pytest.mark.ray
def test_pool_pinned_to_a_custom_resource_lives_on_the_nodes_that_carry_it(local_cluster, ray_cluster):
    node = local_cluster.add_node(num_cpus=2, resources={"verifier_t": 2})
    pool = VerifierPool("auto", resource="verifier_t", chunk_size=4, name_prefix="verifier-pin", poll_seconds=0.5)
    try:
        assert pool.wait_ready() == 2
        assert {m.node_id for m in pool.members} == {node.node_id}
        reqs, expected = mixed_requests(20)
        assert [b.verdict for b in pool.score(reqs)] == expected
    finally:
        pool.shutdown()
        local_cluster.remove_node(node)


@pytest.mark.ray
def test_threads_can_share_a_pool(pool):
    reqs, expected = mixed_requests(30)
    results: list = [None] * 3

    def run(slot: int) -> None:
        results[slot] = [b.verdict for b in pool.score(reqs)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [expected] * 3
    assert pool.stats()["scored"] == 90


@pytest.mark.ray
def test_a_wedged_actor_cannot_stall_a_batch(ray_cluster):
    """One actor hangs (test hook): its chunk passes the deadline, the actor is replaced, the chunk is retried
    on the other actor, and the batch returns with every verdict right."""
    p = VerifierPool(2, chunk_size=4, timeout=1.0, name_prefix="verifier-hang", inflight_per_actor=1)
    try:
        assert p.wait_ready() == 2
        p.score(mixed_requests(8)[0])  # both sandboxes started (under the default deadline): only the hang is slow
        p.chunk_deadline = 4.0
        wedged = p.members[0]
        ray_cluster.get(wedged.handle.hang_next_chunk.remote(600.0))
        reqs, expected = mixed_requests(24)
        out = p.score(reqs)
        assert [b.verdict for b in out] == expected
        stats = p.stats()
        assert wedged not in p.members and len(p.members) == 2
        assert (stats["chunks_past_deadline"], stats["restarts"], stats["timeouts"]) == (1, 1, 0)
    finally:
        p.shutdown()


@pytest.mark.ray
def test_a_chunk_that_hangs_on_every_actor_is_scored_timeout_and_the_pool_still_answers(ray_cluster):
    """The chunk's actor hangs, and so does the actor that replaces it: the retry passes the deadline too, so each
    request of the chunk is scored `timeout` (none is lost). The next replacement is healthy and scores as usual."""
    p = VerifierPool(1, chunk_size=4, timeout=1.0, name_prefix="verifier-hang2", chunk_deadline=2.0)
    try:
        assert p.wait_ready() == 1
        first = p.members[0]
        ray_cluster.get(first.handle.hang_next_chunk.remote(600.0))
        spawn, spawned = p._spawn, []

        def spawn_wedged_once(node_id):
            member = spawn(node_id)
            if not spawned:
                member.handle.hang_next_chunk.remote(600.0)  # runs after `ready`, before any chunk
            spawned.append(member)
            return member

        p._spawn = spawn_wedged_once
        reqs, expected = mixed_requests(4)
        out = p.score(reqs)
        assert [b.verdict for b in out] == [Verdict.TIMEOUT] * 4
        assert all(b.reason == "chunk over its 2s deadline twice" for b in out)
        stats = p.stats()
        assert (stats["chunks_past_deadline"], stats["restarts"], stats["timeouts"]) == (2, 2, 4)
        assert p.members == [spawned[1]] and first not in spawned
        p.chunk_deadline = 60.0  # the healthy replacement starts its sandbox on this chunk
        assert [b.verdict for b in p.score(reqs)] == expected
    finally:
        p.shutdown()


def test_the_canaries_hold_for_the_verifier_in_this_process():
    from verifier_pool.canary import CANARIES, canary_failures

    rows = score_chunk([ScoreRequest(c.name, c.completion, c.question, c.gold) for c in CANARIES], timeout=2.0)
    assert canary_failures([r["verdict"] for r in rows]) == []
    swapped = ["wrong", "wrong", "correct"] + [r["verdict"] for r in rows[3:]]
    assert [f.split(":")[0] for f in canary_failures(swapped)] == ["right", "equal_value", "wrong"]


@pytest.mark.ray
def test_every_actor_scores_the_canaries_in_its_own_worker_and_a_misjudging_one_is_named(pool):
    assert pool.canaries() == {name: [] for name in pool.actor_names()}
    pool.misjudge()
    report = pool.canaries()
    assert set(report) == set(pool.actor_names())
    assert all([f.split(":")[0] for f in failures] == ["right", "equal_value", "wrong"] for failures in report.values())
    pool.misjudge(False)

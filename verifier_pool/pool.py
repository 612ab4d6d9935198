"""`VerifierPool`: scoring as an elastic Ray service.

Each `verifier-<i>` actor runs `reward.score`, whose SymPy work goes to sandbox subprocesses the actor
owns (SIGKILLed at the deadline, replaced when they die). A batch is cut into chunks that are handed
to whichever actor is free (at most `inflight_per_actor` each), so new actors take work mid-batch and a
slow chunk does not idle the rest. A chunk whose actor dies is retried once elsewhere, then scored
`error`: one result per request, in request order, always. A chunk that overruns its wall-clock deadline
(`chunk_deadline`, derived from the per-request timeout) has its actor killed and replaced and is retried
once, then scored `timeout`, so a wedged actor can never stall a training step.

With `size="auto"` the pool keeps one actor per CPU (or per unit of a custom resource such as
`verifier`) on every alive node, less `reserve_cpus` on the driver's node; a monitor thread adds actors
when a node joins and forgets those of a node that left.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
import threading
import time
from dataclasses import dataclass, field

from verifier_pool.reward import RewardBreakdown, RewardWeights, Verdict, error_breakdown, score

LATENCY_BUCKETS_S = [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0]


@dataclass(frozen=True)
class ScoreRequest:
    """One completion to score against a gold answer."""

    id: str
    completion: str
    problem: str
    gold: str
    weights: dict = field(default_factory=dict)
    policy: str = "strict"
    form: str = ""


def score_chunk(requests: list[ScoreRequest], timeout: float) -> list[dict]:
    """Score requests in this process; never raises for a bad completion."""
    out = []
    for r in requests:
        try:
            out.append(score(r.completion, r.problem, r.gold, RewardWeights.from_dict(r.weights), timeout=timeout,
                             policy=r.policy, form=r.form).to_dict())
        except Exception as exc:  # noqa: BLE001 - bad weights or a bug on odd input is an `error` verdict
            out.append(error_breakdown(Verdict.ERROR, reason=f"{type(exc).__name__}: {exc}"[:200]).to_dict())
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class VerifierActor:
    """Thin Ray shell around `score_chunk`, exporting per-actor metrics to the Ray dashboard."""

    def __init__(self, name: str = "verifier") -> None:
        self.name = name
        self.scored = self.timeouts = 0
        self.seconds = 0.0
        self._metrics = _actor_metrics(name)
        self._hang_seconds = 0.0

    def misjudge(self, on: bool = True) -> None:
        """Test hook: from now on swap the `correct` and `wrong` verdicts this actor returns (a broken verifier)."""
        self._misjudge = on

    def canaries(self, timeout: float) -> list[str]:
        """The verdicts this actor gives the known cases of `canary.CANARIES`, scored here like any chunk."""
        from verifier_pool.canary import CANARIES

        rows = self.score([ScoreRequest(c.name, c.completion, c.question, c.gold) for c in CANARIES], timeout)
        return [row["verdict"] for row in rows]

    def hang_next_chunk(self, seconds: float) -> None:
        """Test hook: the next `score` call sleeps this long first (a wedged actor)."""
        self._hang_seconds = seconds

    def score(self, requests: list[ScoreRequest], timeout: float) -> list[dict]:
        start = time.perf_counter()
        if self._hang_seconds:
            seconds, self._hang_seconds = self._hang_seconds, 0.0
            time.sleep(seconds)
        out = score_chunk(requests, timeout)
        if getattr(self, "_misjudge", False):
            swap = {Verdict.CORRECT: Verdict.WRONG, Verdict.WRONG: Verdict.CORRECT}
            for row in out:
                verdict = Verdict(row["verdict"])
                row["verdict"] = swap.get(verdict, verdict).value
        self.scored += len(out)
        self.seconds += time.perf_counter() - start
        timeouts = sum(row["verdict"] == Verdict.TIMEOUT for row in out)
        self.timeouts += timeouts
        if self._metrics:
            scores, timeout_counter, latency = self._metrics
            scores.inc(len(out))
            if timeouts:
                timeout_counter.inc(timeouts)
            for row in out:
                latency.observe(row["seconds"])
        return out

    def ready(self) -> str:
        return self.name

    def pid(self) -> int:
        return os.getpid()

    def stats(self) -> dict:
        from verifier_pool import sandbox

        return {"name": self.name, "scored": self.scored, "seconds": self.seconds, "timeouts": self.timeouts,
                "sandbox_restarts": sandbox.total_restarts()}


def _actor_metrics(name: str):
    """(scores, timeouts, latency) Ray metrics tagged with the actor's name; None outside a Ray worker."""
    try:
        import ray
        from ray.util.metrics import Counter, Histogram

        if not ray.is_initialized():
            return None
        tags = {"verifier": name}
        scores = Counter("rlvr_verifier_scores", "Completions scored.", tag_keys=("verifier",))
        timeouts = Counter("rlvr_verifier_timeouts", "Completions scored `timeout`.", tag_keys=("verifier",))
        latency = Histogram("rlvr_verifier_latency_seconds", "Seconds to score one completion.",
                            boundaries=LATENCY_BUCKETS_S, tag_keys=("verifier",))
        for metric in (scores, timeouts, latency):
            metric.set_default_tags(tags)
        return scores, timeouts, latency
    except Exception:  # noqa: BLE001 - metrics are an aid; scoring must not depend on them
        return None


@dataclass
class _Member:
    handle: object
    name: str
    node_id: str | None
    ready_ref: object
    is_ready: bool = False
    inflight: int = 0


class VerifierPool:
    """Verifier actors on the Ray cluster; `score` returns one `RewardBreakdown` per request, in order."""

    def __init__(self, size: int | str = "auto", *, timeout: float = 2.0, chunk_size: int = 16,
                 num_cpus: float = 1.0, reserve_cpus: float = 0.0, resource: str | None = None,
                 inflight_per_actor: int = 2, name_prefix: str = "verifier", poll_seconds: float = 1.0,
                 chunk_deadline: float | None = None) -> None:
        import ray

        if size != "auto" and (not isinstance(size, int) or size < 1):
            raise ValueError(f"verifier pool size must be a positive int or 'auto', got {size!r}")
        self._ray = ray
        self._cls = ray.remote(VerifierActor)
        self.size, self.num_cpus, self.reserve_cpus, self.resource = size, num_cpus, reserve_cpus, resource
        self.timeout, self.chunk_size, self.inflight_per_actor = timeout, chunk_size, inflight_per_actor
        # A request costs at most two sandbox deadlines (answer, consistency) plus a respawn; queued chunks wait
        # behind the one in flight, hence the factor `inflight_per_actor`.
        self.chunk_deadline = chunk_deadline or inflight_per_actor * chunk_size * (timeout + 1.0 + 2.0) + 30.0
        self._timeouts_by_deadline = 0
        self.name_prefix = name_prefix
        self.members: list[_Member] = []
        self.restarts = 0
        self._names = itertools.count()
        self._lock = threading.RLock()
        self._queue_depth = 0
        self._scored = self._timeouts = self._errors = self._not_final = self._hedged = 0
        self._busy_seconds = 0.0
        self._latencies: collections.deque[float] = collections.deque(maxlen=20_000)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="verifier-pool")
        self._gauges = _pool_metrics()
        self._stop = threading.Event()
        self.rescale()
        self._monitor = None
        if size == "auto":
            self._monitor = threading.Thread(target=self._watch, args=(poll_seconds,), daemon=True,
                                             name="verifier-pool-monitor")
            self._monitor.start()

    # ------------------------------------------------------------ membership

    def _spawn(self, node_id: str | None) -> _Member:
        name = f"{self.name_prefix}-{next(self._names)}"
        options: dict = {"name": name, "num_cpus": self.num_cpus, "max_restarts": 0}
        if self.resource:
            options["resources"] = {self.resource: 1}
        if node_id is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
        handle = self._cls.options(**options).remote(name)
        return _Member(handle, name, node_id, handle.ready.remote())

    def target_per_node(self) -> dict[str, int]:
        """How many actors each alive node should hold under `size='auto'`."""
        here = self._ray.get_runtime_context().get_node_id()
        target = {}
        for node in self._ray.nodes():
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            if self.resource:
                slots = resources.get(self.resource, 0.0)
            else:
                cpus = resources.get("CPU", 0.0) - (self.reserve_cpus if node["NodeID"] == here else 0.0)
                slots = cpus / self.num_cpus
            if int(slots) > 0:
                target[node["NodeID"]] = int(slots)
        return target

    def rescale(self) -> None:
        """Bring the pool to its target: forget actors of dead nodes, add actors where there is room."""
        with self._lock:
            if self.size != "auto":
                while len(self.members) < self.size:
                    self.members.append(self._spawn(None))
                self._publish_gauges()
                return
            target = self.target_per_node()
            self.members = [m for m in self.members if m.node_id in target]
            held = collections.Counter(m.node_id for m in self.members)
            for node_id, want in target.items():
                for _ in range(want - held[node_id]):
                    self.members.append(self._spawn(node_id))
            self._publish_gauges()

    def _watch(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            try:
                self.rescale()
            except Exception:  # noqa: BLE001 - a failed poll (GCS briefly away) is retried next tick
                continue

    def _drop(self, member: _Member) -> None:
        """Forget a dead actor; a fixed-size pool (or an auto pool on a live node) replaces it."""
        with self._lock:
            if member not in self.members:
                return
            self.members.remove(member)
            self.restarts += 1
            try:
                self._ray.kill(member.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - it is already gone
                pass
        self.rescale()

    def _ready_members(self) -> list[_Member]:
        with self._lock:
            members = list(self.members)
        waiting = [m for m in members if not m.is_ready]
        if waiting:
            done, _ = self._ray.wait([m.ready_ref for m in waiting], num_returns=len(waiting), timeout=0)
            done_set = set(done)
            for m in waiting:
                if m.ready_ref in done_set:
                    try:
                        self._ray.get(m.ready_ref)
                        m.is_ready = True
                    except Exception:  # noqa: BLE001 - died while starting
                        self._drop(m)
        return [m for m in members if m.is_ready and m in self.members]

    def actor_names(self) -> list[str]:
        with self._lock:
            return [m.name for m in self.members]

    def wait_ready(self, timeout: float = 60.0) -> int:
        """Block until every current actor has started (or the timeout passes); the number ready."""
        deadline = time.monotonic() + timeout
        while True:
            ready = len(self._ready_members())
            if ready == len(self.members) or time.monotonic() > deadline:
                return ready
            time.sleep(0.05)

    # ------------------------------------------------------------ scoring

    def score(self, requests: list[ScoreRequest]) -> list[RewardBreakdown]:
        """Score a batch across the pool; never raises for a bad completion, never loses a request."""
        from ray.exceptions import RayActorError

        start = time.perf_counter()
        chunks = [requests[i : i + self.chunk_size] for i in range(0, len(requests), self.chunk_size)]
        results: list[list[dict] | None] = [None] * len(chunks)
        todo = collections.deque((k, 0) for k in range(len(chunks)))
        inflight: dict = {}
        self._add_queue_depth(len(requests))

        def give_up_or_retry(k: int, attempt: int, verdict: Verdict, reason: str) -> None:
            if attempt == 0:
                todo.append((k, 1))
            else:
                results[k] = [error_breakdown(verdict, reason=reason).to_dict() for _ in chunks[k]]
                self._add_queue_depth(-len(chunks[k]))

        try:
            while todo or inflight:
                for member in self._ready_members():
                    while todo and member.inflight < self.inflight_per_actor:
                        k, attempt = todo.popleft()
                        ref = member.handle.score.remote(chunks[k], self.timeout)
                        member.inflight += 1
                        inflight[ref] = (member, k, attempt, time.monotonic())
                if not inflight:
                    self._wait_for_any_actor()
                    continue
                done, _ = self._ray.wait(list(inflight), num_returns=1, timeout=0.2)
                for ref in done:
                    member, k, attempt, _ = inflight.pop(ref)
                    member.inflight -= 1
                    try:
                        results[k] = self._ray.get(ref)
                        self._add_queue_depth(-len(chunks[k]))
                    except RayActorError:
                        self._drop(member)
                        give_up_or_retry(k, attempt, Verdict.ERROR, "verifier actor died twice")
                now = time.monotonic()
                for ref, (member, k, attempt, sent) in list(inflight.items()):
                    if now - sent > self.chunk_deadline:
                        inflight.pop(ref)
                        member.inflight -= 1
                        self._timeouts_by_deadline += 1
                        self._drop(member)
                        give_up_or_retry(k, attempt, Verdict.TIMEOUT,
                                         f"chunk over its {self.chunk_deadline:g}s deadline twice")
        finally:
            for member, _, _, _ in inflight.values():
                member.inflight -= 1
        out = [RewardBreakdown.from_dict(row) for rows in results for row in rows]
        self._record(out, time.perf_counter() - start)
        return out

    def score_async(self, requests: list[ScoreRequest]) -> concurrent.futures.Future:
        """`score` on a background thread, so the caller can overlap scoring with learning."""
        return self._executor.submit(self.score, requests)

    def _wait_for_any_actor(self, timeout: float = 300.0) -> None:
        """Block until some actor is ready; a pool with no room anywhere is a clear error, not a hang."""
        deadline = time.monotonic() + timeout
        while not self._ready_members():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no verifier actor could start in {timeout:.0f} s: the cluster has no free CPU "
                                   f"{'or ' + repr(self.resource) + ' resource ' if self.resource else ''}for the pool")
            if not self.members:
                self.rescale()
            time.sleep(0.05)

    # ------------------------------------------------------------ metrics

    def _add_queue_depth(self, delta: int) -> None:
        with self._lock:
            self._queue_depth += delta
            if self._gauges:
                self._gauges["queue_depth"].set(self._queue_depth)

    def _record(self, out: list[RewardBreakdown], seconds: float) -> None:
        with self._lock:
            self._scored += len(out)
            self._timeouts += sum(b.verdict == Verdict.TIMEOUT for b in out)
            self._errors += sum(b.verdict == Verdict.ERROR for b in out)
            self._not_final += sum(b.verdict == Verdict.NOT_FINAL for b in out)
            self._hedged += sum(b.verdict == Verdict.HEDGED for b in out)
            self._busy_seconds += seconds
            self._latencies.extend(b.seconds for b in out)
            if self._gauges and self._busy_seconds:
                self._gauges["scores_per_second"].set(self._scored / self._busy_seconds)

    def _publish_gauges(self) -> None:
        if self._gauges:
            self._gauges["actors"].set(len(self.members))
            self._gauges["restarts"].set(self.restarts)

    def stats(self) -> dict:
        """Pool figures: scores/s over the time spent in `score`, queue depth, timeouts, restarts, latency."""
        with self._lock:
            members = list(self.members)
            latencies = list(self._latencies)
            out = {"actors": len(members), "scored": self._scored, "timeouts": self._timeouts, "errors": self._errors,
                   "restarts": self.restarts, "queue_depth": self._queue_depth,
                   "chunks_past_deadline": self._timeouts_by_deadline,
                   "not_final": self._not_final, "hedged": self._hedged,
                   "scores_per_second": self._scored / self._busy_seconds if self._busy_seconds else 0.0,
                   "latency_p50_s": percentile(latencies, 0.50), "latency_p95_s": percentile(latencies, 0.95)}
        ready = [m for m in members if m.is_ready]
        per_actor = []
        for m in ready:
            try:
                per_actor.append(self._ray.get(m.handle.stats.remote(), timeout=10))
            except Exception:  # noqa: BLE001 - an actor that died since is reported by its absence
                continue
        out["sandbox_restarts"] = sum(s["sandbox_restarts"] for s in per_actor)
        out["per_actor"] = per_actor
        return out

    def canaries(self, timeout: float = 60.0) -> dict[str, list[str]]:
        """Every ready actor scores the canaries in its own worker: actor name → failures (empty: healthy). An
        actor that cannot answer in `timeout` seconds is reported as such."""
        import ray

        from verifier_pool.canary import canary_failures

        members = self._ready_members()
        refs = [m.handle.canaries.remote(self.timeout) for m in members]
        out = {}
        for member, ref in zip(members, refs):
            try:
                out[member.name] = canary_failures(ray.get(ref, timeout=timeout))
            except Exception as exc:  # noqa: BLE001 - a dead or wedged actor is a failed canary, not a crash
                out[member.name] = [f"no answer: {type(exc).__name__}"]
        return out

    def misjudge(self, on: bool = True) -> None:
        """Test hook: every actor swaps `correct` and `wrong` from now on."""
        import ray

        ray.get([m.handle.misjudge.remote(on) for m in self._ready_members()])

    def shutdown(self) -> None:
        """Stop the monitor and kill every actor."""
        self._stop.set()
        self._executor.shutdown(wait=False)
        with self._lock:
            for m in self.members:
                try:
                    self._ray.kill(m.handle, no_restart=True)
                except Exception:  # noqa: BLE001
                    pass
            self.members = []


def _pool_metrics():
    """Driver-side gauges (queue depth, actors, restarts, scores/s); None when Ray metrics are unavailable."""
    try:
        from ray.util.metrics import Gauge

        return {name: Gauge(f"rlvr_verifier_{name}", description)
                for name, description in [("queue_depth", "Requests waiting or being scored."),
                                          ("actors", "Verifier actors in the pool."),
                                          ("restarts", "Verifier actors replaced after dying."),
                                          ("scores_per_second", "Completions scored per second of scoring.")]}
    except Exception:  # noqa: BLE001
        return None

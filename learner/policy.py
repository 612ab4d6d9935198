"""The policy: a causal LM with a peft LoRA adapter; the reference is the same model with the adapter
disabled (no second copy of the weights). Also the batch layout the learner trains on."""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class PolicyConfig:
    """Which model, which LoRA, where it runs: the `model:` section of the training config."""

    name: str = "tiny"  # a local path or a hub id; the driver resolves "tiny" / "tiny-prose" (built and cached locally)
    lora_rank: int = 16
    lora_alpha: int = 32
    dtype: str = "auto"
    gradient_checkpointing: str | bool = "auto"  # auto: on CUDA
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    device: str = "auto"
    attn_implementation: str = "sdpa"
    adapter_dtype: str = "auto"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def lora_config(cfg: PolicyConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), task_type="CAUSAL_LM", bias="none")


def use_liger(setting: str | bool, device: torch.device, model_type: str) -> bool:
    """Whether to patch the model with Liger's fused kernels: `auto` on CUDA when liger-kernel is installed and
    supports the architecture; `true` insists (an error names what is missing)."""
    if setting in (False, "false", "off"):
        return False
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except ImportError:
        if setting == "auto":
            return False
        raise ImportError("learner liger=true needs liger-kernel: pip install liger-kernel") from None
    ok = device.type == "cuda" and model_type in MODEL_TYPE_TO_APPLY_LIGER_FN
    if not ok and setting != "auto":
        raise ValueError(f"liger=true needs a CUDA device and a supported model type (got {device.type}, {model_type})")
    return ok


TREE_NEEDS_CACHE = ("learner.packing: tree reads each prompt's keys and values from the decoder's cache, which gradient "
                    "checkpointing drops; set model.gradient_checkpointing=false, or packing auto (flat under "
                    "checkpointing)")


def checkpointing_on(cfg: PolicyConfig, device: torch.device) -> bool:
    """Whether the policy trains with gradient checkpointing (`auto`: on CUDA)."""
    return device.type == "cuda" if cfg.gradient_checkpointing == "auto" else bool(cfg.gradient_checkpointing)


def load_policy(cfg: PolicyConfig, *, liger: str | bool = "auto"):
    """(peft model, tokenizer): base weights frozen in bf16 (GPU) or fp32 (CPU); LoRA weights in the same
    dtype, so no activation is cast per LoRA layer (the learner keeps fp32 master copies for the optimiser).
    `liger`: Liger's RMSNorm, SwiGLU and RoPE kernels (auto: on CUDA when installed; see `use_liger`)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(cfg.name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(cfg.name, dtype=dtype, attn_implementation=cfg.attn_implementation)
    if checkpointing_on(cfg, device):
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    base.config.use_cache = False
    if use_liger(liger, device, base.config.model_type):
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=base, fused_linear_cross_entropy=False, cross_entropy=False)
    model = get_peft_model(base, lora_config(cfg), autocast_adapter_dtype=False)
    adapter_dtype = dtype if cfg.adapter_dtype == "auto" else getattr(torch, cfg.adapter_dtype)
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.to(adapter_dtype)
    return model.to(device), tokenizer


@dataclass
class PackedBatch:
    """Prompts left-padded to P, completions right-padded to C: `input_ids` [N, P+C], the completion always
    starts at column P, so logits are only needed for the last C+1 positions."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    prompt_len: int

    def to(self, device: torch.device) -> "PackedBatch":
        return PackedBatch(self.input_ids.to(device), self.attention_mask.to(device), self.completion_mask.to(device),
                           self.prompt_len)


def pack(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int) -> PackedBatch:
    """Lay out (prompt, completion) pairs for one forward pass."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError("need one prompt per completion")
    p_len = max(len(p) for p in prompt_ids)
    c_len = max(1, max(len(c) for c in completion_ids))
    n = len(prompt_ids)
    ids = torch.full((n, p_len + c_len), pad_id, dtype=torch.long)
    attn = torch.zeros((n, p_len + c_len), dtype=torch.long)
    comp = torch.zeros((n, p_len + c_len), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ids[i, p_len - len(p) : p_len] = torch.tensor(p, dtype=torch.long)
        attn[i, p_len - len(p) : p_len + len(c)] = 1
        if c:
            ids[i, p_len : p_len + len(c)] = torch.tensor(c, dtype=torch.long)
            comp[i, p_len : p_len + len(c)] = 1
    return PackedBatch(ids, attn, comp, p_len)


def completion_logprobs(model, batch: PackedBatch, *, chunk_rows: int = 1024) -> torch.Tensor:
    """Log-probabilities of the completion tokens, [N, C] aligned with `input_ids[:, P:]` (0 on padding).
    Runs the LM head only on the completion positions."""
    from learner.grpo import token_logprobs

    c_len = batch.input_ids.shape[1] - batch.prompt_len
    position_ids = (batch.attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=position_ids,
                logits_to_keep=c_len + 1, use_cache=False)
    tail_ids = batch.input_ids[:, batch.prompt_len - 1 :]
    tail_mask = batch.completion_mask[:, batch.prompt_len - 1 :]
    return token_logprobs(out.logits, tail_ids, tail_mask, chunk_rows=chunk_rows)


def reference_logprobs(model, batch: PackedBatch, **kwargs) -> torch.Tensor:
    """Completion log-probabilities under the base model (adapter disabled), without gradients."""
    with torch.no_grad(), model.disable_adapter():
        return completion_logprobs(model, batch, **kwargs)


@dataclass
class PackedSequences:
    """A micro-batch of rows [R, L], each holding several (prompt, completion) sequences end to end with positions
    restarting at 0 for each (transformers then keeps attention inside each sequence), the row's free tail
    last: padding only where a row cannot fit another sequence. Attention costs R·L², as for padded rows of
    the longest sequence, not (R·L)² as one long packed row would. `positions[j]` is the flat index (row·L + col)
    of the hidden state that predicts `targets[j]`, the j-th completion token of the micro-batch, which belongs
    to sequence `owner[j]` (an index into `rows`, the sequences' places in the batch)."""

    input_ids: torch.Tensor  # [R, L]
    position_ids: torch.Tensor  # [R, L]
    positions: torch.Tensor  # [M]
    targets: torch.Tensor  # [M]
    owner: torch.Tensor  # [M]
    rows: torch.Tensor  # [k]

    def to(self, device: torch.device) -> "PackedSequences":
        return PackedSequences(*(t.to(device) for t in (self.input_ids, self.position_ids, self.positions,
                                                         self.targets, self.owner, self.rows)))

    def token_rows(self) -> torch.Tensor:
        """For each completion token, its sequence's place in the batch."""
        return self.rows[self.owner]


def first_fit_decreasing(sizes: list[int], width: int) -> list[list[int]]:
    """Items (by index) into rows of `width`: largest first, each into the first row with room for it."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        slot = next((r for r, free in enumerate(room) if free >= sizes[i]), None)
        if slot is None:
            rows.append([])
            room.append(width)
            slot = len(rows) - 1
        rows[slot].append(i)
        room[slot] -= sizes[i]
    return rows


def pack_sequences(prompt_ids: list[list[int]], completion_ids: list[list[int]], rows_per_micro: int,
                   row_tokens: int = 0, pad_id: int = 0) -> list[PackedSequences]:
    """Pack the batch's sequences into rows of `row_tokens` (default: the longest sequence) by first-fit
    decreasing, and the rows into micro-batches of `rows_per_micro`."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError("need one prompt per completion")
    lengths = [len(p) + len(c) for p, c in zip(prompt_ids, completion_ids)]
    width = max([row_tokens] + lengths)
    rows = first_fit_decreasing(lengths, width)
    out = []
    for first in range(0, len(rows), max(1, rows_per_micro)):
        group = rows[first : first + max(1, rows_per_micro)]
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        pos = torch.zeros((len(group), width), dtype=torch.long)
        positions, targets, owner, members = [], [], [], []
        for r, row in enumerate(group):
            offset = 0
            for i in row:
                p, c = prompt_ids[i], completion_ids[i]
                ids[r, offset : offset + lengths[i]] = torch.tensor(p + c, dtype=torch.long)
                pos[r, offset : offset + lengths[i]] = torch.arange(lengths[i])
                start = r * width + offset + len(p) - 1
                positions += range(start, start + len(c))
                targets += c
                owner += [len(members)] * len(c)
                members.append(i)
                offset += lengths[i]
            pos[r, offset:] = torch.arange(width - offset)  # the free tail: a block of its own, never read
        out.append(PackedSequences(ids, pos, torch.tensor(positions, dtype=torch.long),
                                   torch.tensor(targets, dtype=torch.long), torch.tensor(owner, dtype=torch.long),
                                   torch.tensor(members, dtype=torch.long)))
    return out


@dataclass
class PackedTrees:
    """A micro-batch of prefix trees as two forwards: each group's shared prefix (its prompt) once, one row per
    group (`prefix_ids`, right-padded), then every completion in a row of its own (`input_ids`, right-padded),
    reading its group's cached prefix keys and values (`group`) with positions continuing from the prefix. The
    attention of a completion covers its prefix and itself, as in flat packing, so log-probs, loss and gradients
    are equal; the prefix's layers run once per group instead of once per completion. `positions[j]` indexes the
    prefix hidden states followed by the completion ones, flattened (row·width + col)."""

    prefix_ids: torch.Tensor  # [P, Lp]
    prefix_lengths: torch.Tensor  # [P]
    input_ids: torch.Tensor  # [C, Lc]
    completion_lengths: torch.Tensor  # [C]
    group: torch.Tensor  # [C]: the prefix row each completion reads
    positions: torch.Tensor  # [M]
    targets: torch.Tensor  # [M]
    owner: torch.Tensor  # [M]
    rows: torch.Tensor  # [C]

    def to(self, device: torch.device) -> "PackedTrees":
        return PackedTrees(*(getattr(self, f.name).to(device) for f in fields(self)))

    def token_rows(self) -> torch.Tensor:
        return self.rows[self.owner]


def shared_prompt_groups(prompt_ids: list[list[int]]) -> list[list[int]]:
    """Runs of consecutive sequences with the same prompt (a GRPO group, or a verifier group judging one solution)."""
    groups: list[list[int]] = []
    for i, prompt in enumerate(prompt_ids):
        if groups and prompt_ids[groups[-1][0]] == prompt:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def pack_trees(prompt_ids: list[list[int]], completion_ids: list[list[int]], rows_per_micro: int,
               pad_id: int = 0) -> list[PackedTrees]:
    """Each group of same-prompt sequences as one tree; trees in order of their longest completion (so rows of
    like length share a micro-batch), whole trees per micro-batch, up to `rows_per_micro` completions each."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError("need one prompt per completion")
    trees = sorted(shared_prompt_groups(prompt_ids), key=lambda t: max(len(completion_ids[i]) for i in t))
    micros: list[list[list[int]]] = [[]]
    for tree in trees:
        if micros[-1] and sum(map(len, micros[-1])) + len(tree) > max(1, rows_per_micro):
            micros.append([])
        micros[-1].append(tree)
    return [_tree_micro_batch(m, prompt_ids, completion_ids, pad_id) for m in micros if m]


def forward_positions(micro_batches: list) -> int:
    """Token positions the decoder runs over packed micro-batches, padding included: what a layout costs."""
    return sum(m.input_ids.numel() + (m.prefix_ids.numel() if isinstance(m, PackedTrees) else 0) for m in micro_batches)


def _right_padded(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    out = torch.full((len(rows), max(1, max(map(len, rows)))), pad_id, dtype=torch.long)
    for r, row in enumerate(rows):
        out[r, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def _tree_micro_batch(trees: list[list[int]], prompt_ids, completion_ids, pad_id: int) -> PackedTrees:
    prefixes = [prompt_ids[t[0]] for t in trees]
    members = [i for t in trees for i in t]
    group = [g for g, t in enumerate(trees) for _ in t]
    prefix_ids, completions = _right_padded(prefixes, pad_id), _right_padded([completion_ids[i] for i in members],
                                                                             pad_id)
    prefix_width, width = prefix_ids.shape[1], completions.shape[1]
    base = prefix_ids.numel()
    positions, targets, owner = [], [], []
    for row, (i, g) in enumerate(zip(members, group)):
        c = completion_ids[i]
        first = g * prefix_width + len(prefixes[g]) - 1
        positions += ([first] + list(range(base + row * width, base + row * width + len(c) - 1)))[: len(c)]
        targets += c
        owner += [row] * len(c)
    tensor = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return PackedTrees(prefix_ids, tensor(list(map(len, prefixes))), completions,
                       tensor([len(completion_ids[i]) for i in members]), tensor(group), tensor(positions),
                       tensor(targets), tensor(owner), tensor(members))


def tree_hidden(decoder, packed: PackedTrees) -> torch.Tensor:
    """The decoder's hidden states over a tree micro-batch, flattened: the prefix rows (one forward, its keys and
    values cached), then the completion rows (a second forward over each completion's prefix cache)."""
    import inspect

    from transformers import DynamicCache

    cache = DynamicCache()
    named = {"cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values": cache}
    device = packed.prefix_ids.device
    prefix_width, width = packed.prefix_ids.shape[1], packed.input_ids.shape[1]
    prefix = decoder(input_ids=packed.prefix_ids, position_ids=torch.arange(prefix_width, device=device)
                     .expand_as(packed.prefix_ids), use_cache=True, **named).last_hidden_state
    if cache.get_seq_length() != prefix_width:
        raise RuntimeError("tree packing: the decoder kept no key/value cache for the prompts (gradient "
                           "checkpointing drops it); use learner.packing flat")
    _repeat_prefix(cache, packed.group)
    reads_prefix = torch.arange(prefix_width, device=device) < packed.prefix_lengths[packed.group, None]
    own = torch.arange(width, device=device) < packed.completion_lengths[:, None]
    start = packed.prefix_lengths[packed.group, None]
    completion = decoder(input_ids=packed.input_ids, position_ids=start + torch.arange(width, device=device),
                         attention_mask=torch.cat([reads_prefix, own], dim=1).long(),
                         use_cache=True, **named).last_hidden_state
    return torch.cat([prefix.reshape(-1, prefix.shape[-1]), completion.reshape(-1, completion.shape[-1])])


def _repeat_prefix(cache, group: torch.Tensor) -> None:
    """Each completion's copy of its group's cached prefix keys and values, by `index_select`: its backward is an
    `index_add`, where the advanced indexing of `Cache.batch_select_indices` backs up through a serial
    accumulating `index_put`."""
    layers = getattr(cache, "layers", None)
    if layers is None or not all(hasattr(layer, "keys") for layer in layers):
        cache.batch_select_indices(group)
        return
    for layer in layers:
        layer.keys, layer.values = layer.keys.index_select(0, group), layer.values.index_select(0, group)


def packed_logprobs(model, packed: PackedSequences, *, chunk_rows: int = 1024) -> torch.Tensor:
    """Log-probabilities [M] of the packed completion tokens: one forward of the decoder over the packed rows,
    then the LM head fused with the log-softmax on the M predicting positions only (`grpo.linear_logprobs`)."""
    from learner.grpo import linear_logprobs

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if isinstance(packed, PackedTrees):
        hidden = tree_hidden(base.get_decoder(), packed)
    else:
        hidden = base.get_decoder()(input_ids=packed.input_ids, position_ids=packed.position_ids,
                                    use_cache=False).last_hidden_state
        hidden = hidden.reshape(-1, hidden.shape[-1])
    head = base.get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise ValueError("packed_logprobs: an LM head with a bias is not supported")
    return linear_logprobs(hidden[packed.positions], head.weight, packed.targets, chunk_rows=chunk_rows)

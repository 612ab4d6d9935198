"""The policy: a causal LM with a peft LoRA adapter; the reference is the same model with the adapter
disabled (no second copy of the weights). Also the batch layout the learner trains on."""
from __future__ import annotations

from dataclasses import dataclass

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
    checkpointing = cfg.gradient_checkpointing
    if checkpointing == "auto":
        checkpointing = device.type == "cuda"
    if checkpointing:
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
class PackedTrees(PackedSequences):
    """Rows of prefix trees: each group's shared prefix (its prompt) once, then each completion, attending to the
    prefix and to itself only (`attention_mask`, [R, 1, L, L], True = may attend), positions continuing from the
    prefix along each path. Log-probs, loss and gradients equal those of flat packing; the prefix is computed once
    per group instead of once per completion."""

    attention_mask: torch.Tensor = None  # [R, 1, L, L] bool

    def to(self, device: torch.device) -> "PackedTrees":
        return PackedTrees(*(t.to(device) for t in (self.input_ids, self.position_ids, self.positions, self.targets,
                                                     self.owner, self.rows, self.attention_mask)))


def shared_prompt_groups(prompt_ids: list[list[int]]) -> list[list[int]]:
    """Runs of consecutive sequences with the same prompt (a GRPO group, or a verifier group judging one solution)."""
    groups: list[list[int]] = []
    for i, prompt in enumerate(prompt_ids):
        if groups and prompt_ids[groups[-1][0]] == prompt:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def tree_tokens(prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> int:
    """Tokens a tree-packed forward computes: each group's prompt once, every completion."""
    return sum(len(prompt_ids[g[0]]) for g in shared_prompt_groups(prompt_ids)) + sum(map(len, completion_ids))


def pack_trees(prompt_ids: list[list[int]], completion_ids: list[list[int]], rows_per_micro: int,
               pad_id: int = 0) -> list[PackedTrees]:
    """Each group of same-prompt sequences as one tree (prompt, then its completions), trees packed into rows by
    first-fit decreasing, `rows_per_micro` rows per micro-batch."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError("need one prompt per completion")
    trees = shared_prompt_groups(prompt_ids)
    sizes = [len(prompt_ids[t[0]]) + sum(len(completion_ids[i]) for i in t) for t in trees]
    width = max(sizes)
    rows = first_fit_decreasing(sizes, width)
    step = max(1, rows_per_micro)
    return [_tree_micro_batch([[trees[t] for t in row] for row in rows[first:first + step]], prompt_ids,
                              completion_ids, width, pad_id) for first in range(0, len(rows), step)]


def _tree_micro_batch(rows: list[list[list[int]]], prompt_ids, completion_ids, width: int, pad_id: int) -> PackedTrees:
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), 1, width, width), dtype=torch.bool)
    positions, targets, owner, members = [], [], [], []
    for r, row in enumerate(rows):
        offset = 0
        for tree in row:
            prompt = prompt_ids[tree[0]]
            end = offset + len(prompt)
            ids[r, offset:end] = torch.tensor(prompt, dtype=torch.long)
            pos[r, offset:end] = torch.arange(len(prompt))
            mask[r, 0, offset:end, offset:end] = torch.ones(len(prompt), len(prompt), dtype=torch.bool).tril()
            start = end
            for i in tree:
                c = completion_ids[i]
                stop = start + len(c)
                ids[r, start:stop] = torch.tensor(c, dtype=torch.long)
                pos[r, start:stop] = torch.arange(len(prompt), len(prompt) + len(c))
                mask[r, 0, start:stop, offset:end] = True
                mask[r, 0, start:stop, start:stop] = torch.ones(len(c), len(c), dtype=torch.bool).tril()
                positions += ([r * width + end - 1] + list(range(r * width + start, r * width + stop - 1)))[: len(c)]
                targets += c
                owner += [len(members)] * len(c)
                members.append(i)
                start = stop
            offset = start
        free = torch.arange(offset, width)
        mask[r, 0, free, free] = True  # the free tail attends to itself only: never read, never NaN
    return PackedTrees(ids, pos, torch.tensor(positions, dtype=torch.long), torch.tensor(targets, dtype=torch.long),
                       torch.tensor(owner, dtype=torch.long), torch.tensor(members, dtype=torch.long), mask)


def packed_logprobs(model, packed: PackedSequences, *, chunk_rows: int = 1024) -> torch.Tensor:
    """Log-probabilities [M] of the packed completion tokens: one forward of the decoder over the packed rows,
    then the LM head fused with the log-softmax on the M predicting positions only (`grpo.linear_logprobs`)."""
    from learner.grpo import linear_logprobs

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=packed.input_ids, position_ids=packed.position_ids,
                                attention_mask=getattr(packed, "attention_mask", None), use_cache=False).last_hidden_state
    hidden = hidden.reshape(-1, hidden.shape[-1])
    head = base.get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise ValueError("packed_logprobs: an LM head with a bias is not supported")
    return linear_logprobs(hidden[packed.positions], head.weight, packed.targets, chunk_rows=chunk_rows)

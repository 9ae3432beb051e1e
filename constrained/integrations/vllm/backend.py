"""Engine side: vLLM compiles our grammars with the dialect's never-text tokens.

vLLM's xgrammar backend builds its vocabulary with `TokenizerInfo.from_huggingface`, where a special
token counts as the text it spells: a marker such as `<|tool_call_end|>` or `<|im_end|>` would be
legal *inside* an argument string or in free text. Our compiler spells special tokens with a
control byte in the grammar's copy of the vocabulary (`constrained.tokenizer.MARKER_BYTE`), so that
only the grammar's `Token(id)` positions can produce them. vLLM has no API for a backend's
vocabulary and only the grammar text reaches its engine process, so `patch` wraps
`XgrammarBackend.compile_grammar` there: a grammar whose first line is our header
(`HEADER_PREFIX`, an EBNF comment) is compiled by `constrained.compiler` (one vocabulary
copy per tokenizer, grammars cached by their text); every other grammar, structural tag or JSON
schema takes vLLM's own path, untouched.

Without the patch (a vLLM whose internals moved; the plug-in logs it, or refuses to start with
CONSTRAINED_VLLM_STRICT=1), the grammar still fixes the syntax, the schemas and the marker tokens,
but special tokens are no longer kept out of strings and text.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from types import ModuleType
from typing import Any

from constrained import dialect as registry

from . import STRICT_ENV, header_dialect, lazy_route

log = logging.getLogger("vllm.constrained")  # under vLLM's logger: in its log, at its level

TESTED_VLLM = "0.32"
_LOCK = threading.Lock()
STATS = {"marker_compiles": 0, "lazy_compiles": 0}  # grammars compiled with the marker vocabulary in this process (of them, by llguidance)


def compile_marked(tokenizer: Any, vocab_size: int, dialect_name: str, spec: str) -> Any:
    """Our grammar text -> an xgrammar CompiledGrammar with the dialect's never-text tokens, or for
    a large grammar llguidance's (`constrained.lazy`, the route `lazy_route` picks)."""
    from constrained.compiler import grammar_cache

    return grammar_cache(tokenizer, vocab_size).compile_ebnf(registry.get(dialect_name), spec, lazy=lazy_route(spec)).grammar


def patch(bx: ModuleType) -> bool:
    """Wrap `XgrammarBackend.compile_grammar` of vLLM's module `bx` (backend_xgrammar;
    idempotent). False when this vLLM has no such method (logged; raises with
    CONSTRAINED_VLLM_STRICT=1)."""
    import vllm
    from vllm.v1.structured_output.backend_types import StructuredOutputOptions

    with _LOCK:
        original = getattr(getattr(bx, "XgrammarBackend", None), "compile_grammar", None)
        if original is None or not hasattr(bx, "XgrammarGrammar"):
            message = f"constrained: vLLM {vllm.__version__} has no XgrammarBackend.compile_grammar; special tokens are not kept out of text"
            if os.environ.get(STRICT_ENV) == "1":
                raise RuntimeError(message)
            log.error(message)
            return False
        if getattr(original, "_constrained", False):
            return True
        if not str(vllm.__version__).startswith(TESTED_VLLM):
            log.warning("constrained: tested with vLLM %s.x, this is %s", TESTED_VLLM, vllm.__version__)

        @functools.wraps(original)
        def compile_grammar(self: Any, request_type: Any, grammar_spec: str, stop_token_ids: Any = None) -> Any:
            name = header_dialect(grammar_spec) if request_type == StructuredOutputOptions.GRAMMAR else None
            if name is None:
                return original(self, request_type, grammar_spec, stop_token_ids)
            from constrained.guards import matcher as guarded_matcher
            from constrained.lazy import LazyGrammar

            ctx = compile_marked(self.tokenizer, self.vocab_size, name, grammar_spec)
            STATS["marker_compiles"] += 1
            if STATS["marker_compiles"] == 1:
                log.info("constrained: compiling %s grammars with the marker vocabulary (pid %d)", name, os.getpid())
            if isinstance(ctx, LazyGrammar):
                STATS["lazy_compiles"] += 1
                if STATS["lazy_compiles"] == 1:
                    log.info("constrained: serving a %d-character %s grammar with llguidance's lazy masks (pid %d)", len(grammar_spec), name, os.getpid())
            return bx.XgrammarGrammar(  # as vLLM's own compile_grammar returns it
                # guarded where the grammar has guarded rules (constrained.guards), or llguidance's
                # matcher for a large grammar (constrained.lazy): xgrammar's matcher interface,
                # which is all vLLM's XgrammarGrammar calls (`ctx` it only keeps)
                matcher=guarded_matcher(
                    ctx, override_stop_tokens=list(stop_token_ids) if stop_token_ids else None, max_rollback_tokens=self.num_speculative_tokens,
                ),
                vocab_size=self.vocab_size,
                ctx=ctx,
            )

        compile_grammar._constrained = True  # type: ignore[attr-defined]
        bx.XgrammarBackend.compile_grammar = compile_grammar
        return True

"""Decoding modes compared in the same run: free decoding, ours, and other engines' stock
`transformers` integrations.

Tool-call grammar (the dialect's whole syntax, built from the tools' schemas):
- ``free``          no constraint
- ``ours``          `constrained.ToolCallLogitsProcessor`, with a token budget (`max_new_tokens=1024`,
                    the server's default: the budget check runs, far from its end)
- ``ours_no_budget`` the same without a budget: `ours / ours_no_budget` is what the check costs
- ``xgrammar_hf``   the same compiled grammar through `xgrammar.contrib.hf.LogitsProcessor`

JSON arguments alone (a JSON schema; what every engine can express):
- ``ours``          our grammar for a JSON-schema content (`GrammarOptions.content_schema`)
- ``xgrammar_hf``   `GrammarCompiler.compile_json_schema` + `xgrammar.contrib.hf.LogitsProcessor`
- ``llguidance``    llguidance through outlines' `LLGuidanceBackend` (its stock HF-path processor)
- ``outlines``      outlines-core (outlines' default JSON backend) through `OutlinesCoreBackend`

llguidance and outlines are optional (`pip install constrained[bench]`); a missing engine is
reported as skipped with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

TOOL_ENGINES = ("free", "ours", "ours_no_budget", "xgrammar_hf")
JSON_ENGINES = ("free", "ours", "xgrammar_hf", "llguidance", "outlines")

LABELS = {
    "free": "free decoding",
    "ours": "ours (ToolCallLogitsProcessor)",
    "ours_no_budget": "ours without the token budget",
    "xgrammar_hf": "xgrammar.contrib.hf.LogitsProcessor",
    "llguidance": "llguidance (outlines LLGuidanceBackend)",
    "outlines": "outlines-core (outlines OutlinesCoreBackend)",
}


def tool_call_factory(engine: str, tok, model, dialect, tools, tool_choice, *, first_index: int = 0) -> Callable[[], list]:
    """-> a function making fresh processors for one `generate` call (stock processors are one-shot)."""
    from constrained import GrammarOptions, ToolCallLogitsProcessor
    from constrained.compiler import grammar_cache

    vocab = int(model.config.vocab_size)
    if engine == "free":
        return lambda: []
    if engine in ("ours", "ours_no_budget"):
        budget = 1024 if engine == "ours" else None
        return lambda: [ToolCallLogitsProcessor(tok, dialect, tools, tool_choice, first_index=first_index, vocab_size=vocab,
                                                max_new_tokens=budget, budget=engine == "ours")]
    if engine == "xgrammar_hf":
        from xgrammar.contrib.hf import LogitsProcessor as XgrHF

        compiled = grammar_cache(tok, vocab).compile(dialect, tools, GrammarOptions(tool_choice, True, first_index)).grammar
        return lambda: [XgrHF(compiled)]
    raise ValueError(f"engine {engine!r} cannot express the tool-call grammar")


class _OutlinesModel:
    """outlines' wrapper and backends, built once per (model, tokenizer)."""

    def __init__(self, model, tok):
        import outlines

        self.model = outlines.from_transformers(model, tok)
        self._backends: dict[str, Any] = {}

    def backend(self, name: str):
        if name not in self._backends:
            if name == "llguidance":
                from outlines.backends.llguidance import LLGuidanceBackend

                self._backends[name] = LLGuidanceBackend(self.model)
            else:
                from outlines.backends.outlines_core import OutlinesCoreBackend

                self._backends[name] = OutlinesCoreBackend(self.model)
        return self._backends[name]


_OUTLINES: dict[int, _OutlinesModel] = {}


def _outlines(model, tok) -> _OutlinesModel:
    key = id(model) ^ id(tok)
    if key not in _OUTLINES:
        _OUTLINES[key] = _OutlinesModel(model, tok)
    return _OUTLINES[key]


def engine_available(engine: str) -> str | None:
    """None when usable, else why not."""
    try:
        if engine == "llguidance":
            import llguidance  # noqa: F401
            import outlines  # noqa: F401
        elif engine == "outlines":
            import outlines  # noqa: F401
            import outlines_core  # noqa: F401
    except Exception as err:  # noqa: BLE001
        return f"not installed ({type(err).__name__}: {err}); pip install 'constrained[bench]'"
    return None


def json_schema_factory(engine: str, tok, model, schema: dict) -> Callable[[], list]:
    """Processors constraining the output to one JSON value of `schema`."""
    from constrained import GrammarOptions, ToolCallLogitsProcessor
    from constrained.compiler import grammar_cache

    vocab = int(model.config.vocab_size)
    if engine == "free":
        return lambda: []
    if engine == "ours":
        # ToolCallLogitsProcessor has no response_format parameter: build it with tool_choice none
        # and swap in the compiled content-schema grammar (same decoding path).
        options = GrammarOptions("none", True, 0, 8, False, content_schema=schema)
        compiled = grammar_cache(tok, vocab).compile(_json_dialect(), None, options).grammar

        def make():
            proc = ToolCallLogitsProcessor(tok, _json_dialect(), None, "none", reasoning=False, vocab_size=vocab)
            proc.compiled, proc.options = compiled, options
            return [proc]

        return make
    if engine == "xgrammar_hf":
        from xgrammar.contrib.hf import LogitsProcessor as XgrHF

        compiled = grammar_cache(tok, vocab).compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        return lambda: [XgrHF(compiled)]
    if engine in ("llguidance", "outlines"):
        backend = _outlines(model, tok).backend(engine)
        text = json.dumps(schema)
        return lambda: [backend.get_json_schema_logits_processor(text)]
    raise ValueError(f"unknown engine {engine!r}")


@cache
def _json_dialect():
    from constrained import dialect as registry

    return registry.get("hermes")  # any dialect: with tool_choice none and no reasoning only the content rule remains


def versions() -> dict:
    from .common import package_version

    return {e: package_version(p) for e, p in (("xgrammar_hf", "xgrammar"), ("llguidance", "llguidance"), ("outlines", "outlines"))}

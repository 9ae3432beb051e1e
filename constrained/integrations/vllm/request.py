"""What the vLLM plug-in derives from a request and a model output, without importing vLLM.

- the grammar text handed to vLLM: a header line naming the dialect (an EBNF comment, so stock
  vLLM still compiles it) and our EBNF for the request's tools, tool_choice, parallel_tool_calls,
  response_format and the conversation's call count;
- which dialect serves a request (fixed by the parser's name, or per request for `constrained`);
- the marker tokens of a tokenizer (read once per tokenizer);
- the model output as OpenAI content, reasoning and tool calls, with our server's rules.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from constrained import dialect as registry
from constrained.chat import prepare_history
from constrained.compiler import special_token_ids
from constrained.dialect import Dialect
from constrained.errors import ToolSpecError
from constrained.grammar import GrammarOptions, build_ebnf, content_from_response_format
from constrained.parsing import ParseResult, ends_inside_call, parse, parse_cut_off
from constrained.schema import ADDITIONAL_PROPERTIES
from constrained.types import ToolChoice

from . import grammar_header

# Per request (parser `constrained` only): vllm_xargs={"constrained_dialect": NAME}.
DIALECT_XARG = "constrained_dialect"
# Server-wide policy for properties a tool schema does not declare (`constrained serve --additional-properties`).
ADDITIONAL_PROPERTIES_ENV = "CONSTRAINED_ADDITIONAL_PROPERTIES"


def additional_properties() -> str:
    policy = os.environ.get(ADDITIONAL_PROPERTIES_ENV, "forbid")
    if policy not in ADDITIONAL_PROPERTIES:
        raise ToolSpecError(f"{ADDITIONAL_PROPERTIES_ENV}={policy!r} is not one of {', '.join(ADDITIONAL_PROPERTIES)}", ADDITIONAL_PROPERTIES_ENV)
    return policy


def calls_so_far(messages: Sequence[Mapping] | None, dialect: Dialect) -> int:
    """Tool calls earlier in the conversation: the next call's number (Kimi's IDX)."""
    return prepare_history([dict(m) for m in messages or ()], dialect).calls_so_far


def request_grammar(
    dialect: Dialect, token_ids: Mapping[str, int], *, tools: Sequence[Mapping] | None, tool_choice: Any, parallel_tool_calls: bool | None,
    messages: Sequence[Mapping] | None, response_format: Mapping | None,
) -> str | None:
    """Header + EBNF for a chat request; None when it stays unconstrained (no tools, or
    tool_choice "none"), as in our server's contract. Raises ToolSpecError /
    UnsupportedSchemaError (the plug-in turns them into HTTP 400)."""
    if not tools or ToolChoice.parse(tool_choice).mode == "none":
        return None
    content_schema, content_policy = content_from_response_format(response_format)
    options = GrammarOptions(
        tool_choice=tool_choice,
        parallel_tool_calls=parallel_tool_calls is not False,
        first_index=calls_so_far(messages, dialect),
        content_schema=content_schema,
        additional_properties=additional_properties(),
        content_additional_properties=content_policy,
    )
    return grammar_header(dialect.name) + build_ebnf(dialect, tools, options, token_ids)


def parse_output(text: str, dialect: Dialect, first_index: int, tools: Sequence[Mapping] | None = None) -> ParseResult:
    """A whole output as our server reports it. Output our grammar finished never ends inside a
    call; one that does was cut (max_tokens, a stop string), and is reported as a stream would have
    shown it: never an unfinished call nor its raw text. `tools`: the request's (the xml encoding
    reads raw values by their schemas)."""
    if ends_inside_call(text, dialect):
        return parse_cut_off(text, dialect, first_index, tools)
    return parse(text, dialect, tools=tools, first_index=first_index)


# -- per tokenizer ---------------------------------------------------------------------------------
class _TokenizerFacts:
    def __init__(self, tokenizer: Any):
        self.vocab: dict[str, int] = tokenizer.get_vocab()  # ~90 ms on a 129K vocabulary: once
        self.markers: dict[str, dict[str, int]] = {}
        self.detected: Dialect | None | ToolSpecError = None


_FACTS: weakref.WeakKeyDictionary[Any, _TokenizerFacts] = weakref.WeakKeyDictionary()
_FACTS_LOCK = threading.Lock()


def _facts(tokenizer: Any) -> _TokenizerFacts:
    with _FACTS_LOCK:
        facts = _FACTS.get(tokenizer)
        if facts is None:
            facts = _FACTS[tokenizer] = _TokenizerFacts(tokenizer)
        return facts


def marker_ids(tokenizer: Any, dialect: Dialect) -> dict[str, int]:
    """The dialect's markers that are one token in this tokenizer (forced as `Token(id)`)."""
    facts = _facts(tokenizer)
    with _FACTS_LOCK:
        if dialect.name not in facts.markers:
            facts.markers[dialect.name] = special_token_ids(facts.vocab, dialect.special_tokens)
        return facts.markers[dialect.name]


def detected_dialect(tokenizer: Any) -> Dialect:
    """The tokenizer's dialect, detected as `constrained serve --dialect auto` does."""
    from constrained.server.loader import LoadError, detect_dialect

    facts = _facts(tokenizer)
    if facts.detected is None:
        try:
            facts.detected = detect_dialect(tokenizer)
        except LoadError as err:
            facts.detected = ToolSpecError(f"{err}; or send vllm_xargs={{\"{DIALECT_XARG}\": NAME}}", "vllm_xargs")
    if isinstance(facts.detected, ToolSpecError):
        raise facts.detected
    return facts.detected


def request_dialect(fixed: str | None, tokenizer: Any, xargs: Mapping | None) -> Dialect:
    """The dialect of a request: the parser's own (`constrained_<name>`), or for the parser
    `constrained` the request's `vllm_xargs.constrained_dialect`, else the tokenizer's."""
    asked = (xargs or {}).get(DIALECT_XARG)
    if asked is not None and not isinstance(asked, str):
        raise ToolSpecError(f"vllm_xargs.{DIALECT_XARG} must be a dialect name", "vllm_xargs")
    if fixed is not None:
        if asked is not None and asked != fixed:
            raise ToolSpecError(f"this server's tool parser is constrained_{fixed}; vllm_xargs.{DIALECT_XARG}={asked!r} needs --tool-call-parser constrained",
                                "vllm_xargs")
        return registry.get(fixed)
    if asked is not None:
        try:
            return registry.get(asked)
        except ValueError as err:
            raise ToolSpecError(str(err), "vllm_xargs") from None
    return detected_dialect(tokenizer)

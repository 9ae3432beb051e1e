"""vLLM tool and reasoning parsers: one class per dialect, made on first use.

`ConstrainedToolParser_<dialect>` (vLLM name `constrained_<dialect>`):
- `adjust_request` (API-server process, after the chat template): our grammar for the request,
  handed to vLLM's structured-output backend as `structured_outputs.grammar`; `response_format` is
  folded into it; special tokens are kept in the text (the markers are special tokens).
- `extract_tool_calls` / `extract_tool_calls_streaming`: our parser, with our server's ids and
  deltas. vLLM makes a new parser object per request (and per choice) and calls `adjust_request`
  on another one, so nothing here is kept between the two: the call count is read from the
  request's messages again.

`ConstrainedReasoningParser_<dialect>` (same name, dialects with a think block): our grammar holds
the optional think block itself, so it must apply from the first token. `is_reasoning_end` is
therefore always true (vLLM's engine would otherwise hold the grammar back until `</think>`), and
non-streamed output is split where our parser splits it. Its start and end strings give vLLM's
`thinking_token_budget` what to count and what to force.

`ConstrainedToolParser` / `ConstrainedReasoningParser` (vLLM name `constrained`): the dialect per
request (`vllm_xargs={"constrained_dialect": NAME}`), else detected from the tokenizer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from vllm.entrypoints.generate.base.protocol import (
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
    ExtractedToolCallInformation,
    FunctionCall,
    ToolCall,
)
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.exceptions import VLLMValidationError
from vllm.reasoning.abs_reasoning_parsers import ReasoningParser
from vllm.sampling_params import StructuredOutputsParams
from vllm.tool_parsers.abstract_tool_parser import ToolParser

from constrained import dialect as registry
from constrained.compiler import eos_token_ids
from constrained.dialect import Dialect
from constrained.errors import ToolSpecError, UnsupportedSchemaError
from constrained.parsing import StreamingParser, split_reasoning

from . import REASONING_PARSER_CLASS, TOOL_PARSER_CLASS
from .request import calls_so_far, marker_ids, parse_output, request_dialect, request_grammar


def _client_error(err: ToolSpecError | UnsupportedSchemaError) -> VLLMValidationError:
    """Our request errors as vLLM's (HTTP 400 with the message and the parameter)."""
    param = err.param if isinstance(err, ToolSpecError) else err.param or "tools"
    return VLLMValidationError(f"constrained: {err}", parameter=param)


def _dialect(parser: Any, request: Any) -> Dialect:
    try:
        return request_dialect(parser.dialect_name, parser.model_tokenizer, getattr(request, "vllm_xargs", None))
    except ToolSpecError as err:
        raise _client_error(err) from None


def _first_index(request: Any, dialect: Dialect) -> int:
    try:
        return calls_so_far(getattr(request, "messages", None), dialect)
    except ToolSpecError:  # adjust_request reported it already; extraction only needs the count
        return sum(len(m.get("tool_calls") or []) for m in getattr(request, "messages", None) or () if isinstance(m, dict))


def _tools(request: Any) -> list[dict] | None:
    """The request's tools as dicts (the xml encoding reads raw values by their schemas)."""
    tools = getattr(request, "tools", None)
    return [t.model_dump(exclude_none=True) if hasattr(t, "model_dump") else t for t in tools] if tools else None


def _wants_tools(request: Any) -> bool:
    return bool(request.tools) and request.tool_choice != "none"


class ConstrainedToolParser(ToolParser):
    dialect_name: str | None = None  # None: per request (parser `constrained`)
    # Required and named calls are written in the dialect's own syntax by our grammar: vLLM must
    # not force its JSON list format on them, and must hand them to extract_tool_calls.
    supports_required_and_named = False

    def __init__(self, tokenizer: Any, tools: Any = None):
        super().__init__(tokenizer, tools)
        if self.dialect_name is not None:
            registry.get(self.dialect_name)  # vLLM builds one parser at start-up: fail there on a bad name
        self._stream: StreamingParser | None = None
        self._eos = set(eos_token_ids(tokenizer))

    # -- request -> grammar ----------------------------------------------------------------------
    def adjust_request(self, request: Any) -> Any:
        if not _wants_tools(request):
            return request  # no tools or tool_choice "none": unconstrained, as in our server
        if not isinstance(request, ChatCompletionRequest):
            raise VLLMValidationError("constrained: tool calls are constrained for chat completions only; the Responses API is not supported",
                                      parameter="tools")
        so = request.structured_outputs
        if so is not None and any(getattr(so, k, None) is not None for k in ("json", "regex", "choice", "grammar", "structural_tag")):
            raise VLLMValidationError("constrained: structured_outputs cannot be combined with tools (the tool-call grammar is the constraint; "
                                      "response_format is folded into it)", parameter="structured_outputs")
        d = _dialect(self, request)
        choice = request.tool_choice if isinstance(request.tool_choice, str) or request.tool_choice is None else request.tool_choice.model_dump()
        try:
            grammar = request_grammar(
                d, marker_ids(self.model_tokenizer, d), tools=_tools(request), tool_choice=choice,
                parallel_tool_calls=request.parallel_tool_calls, messages=request.messages,
                response_format=request.response_format.model_dump(by_alias=True, exclude_none=True) if request.response_format is not None else None,
            )
        except (ToolSpecError, UnsupportedSchemaError) as err:
            raise _client_error(err) from None
        if grammar is None:
            return request
        request.structured_outputs = StructuredOutputsParams(grammar=grammar)
        request.response_format = None  # folded into the grammar (its content rule)
        request.skip_special_tokens = False  # the markers are special tokens: keep them in the text
        return request

    # -- output -> calls ---------------------------------------------------------------------------
    def extract_tool_calls(self, model_output: str, request: Any) -> ExtractedToolCallInformation:
        d = _dialect(self, request)
        result = parse_output(model_output, d, _first_index(request, d), _tools(request))
        calls = [
            ToolCall(id=c["id"], type="function", function=FunctionCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"]))
            for c in result.tool_calls
        ]
        content = result.content
        if result.reasoning is not None and d.reasoning:
            # No reasoning parser split the think block off first (run with --reasoning-parser
            # constrained_<dialect>): the tool parser's answer has no reasoning field, so keep it
            # as the content it was rather than drop it.
            content = f"{d.reasoning[0]}{result.reasoning}{d.reasoning[1]}" + (content or "")
        return ExtractedToolCallInformation(tools_called=bool(calls), tool_calls=calls, content=content)

    def extract_tool_calls_streaming(
        self, previous_text: str, current_text: str, delta_text: str, previous_token_ids: Sequence[int], current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int], request: Any,
    ) -> DeltaMessage | None:
        if self._stream is None:
            d = _dialect(self, request)
            self._stream = StreamingParser(d, _first_index(request, d), _tools(request))
        deltas = self._stream.feed(delta_text)
        if self._eos.intersection(delta_token_ids):  # the model stopped: flush what was held back
            deltas += self._stream.finish()
        self._bookkeeping()
        return _delta_message(deltas)

    def _bookkeeping(self) -> None:
        """vLLM's end-of-stream step reads these to send arguments a parser parsed but did not stream:
        ours streams everything, so they say so."""
        calls = self._stream.calls if self._stream is not None else []
        self.prev_tool_call_arr = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
        self.streamed_args_for_tool = [c["arguments"] for c in calls]
        self.current_tool_id = len(calls) - 1


def _delta_message(deltas: list[dict]) -> DeltaMessage | None:
    """Our parser's deltas (OpenAI chunk deltas) as one vLLM DeltaMessage. Tool-call deltas keep
    their order and shape: a call's first one has index, id, type and name (arguments ""), later
    ones only argument fragments."""
    if not deltas:
        return None
    content = "".join(d.get("content", "") for d in deltas)
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    calls = []
    for d in deltas:
        for tc in d.get("tool_calls", ()):
            header = {k: tc[k] for k in ("id", "type") if k in tc}
            calls.append(DeltaToolCall(index=tc["index"], function=DeltaFunctionCall(**tc["function"]), **header))
    if not (content or reasoning or calls):
        return None
    fields: dict[str, Any] = {"tool_calls": calls}
    if content:
        fields["content"] = content
    if reasoning:
        fields["reasoning"] = reasoning
    return DeltaMessage(**fields)


class ConstrainedReasoningParser(ReasoningParser):
    dialect_name: str | None = None

    def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any):
        super().__init__(tokenizer, *args, **kwargs)
        if self.dialect_name is not None:
            registry.get(self.dialect_name)

    @property
    def reasoning_start_str(self) -> str | None:
        """With the end string, what vLLM's `thinking_token_budget` counts from and forces when the
        budget is spent: our grammar allows the closing marker at every point of the think block."""
        d = registry.get(self.dialect_name) if self.dialect_name else None
        return d.reasoning[0] if d is not None and d.reasoning else None

    @property
    def reasoning_end_str(self) -> str | None:
        d = registry.get(self.dialect_name) if self.dialect_name else None
        return d.reasoning[1] if d is not None and d.reasoning else None

    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        return True  # the grammar covers the think block: constrain from the first token

    def is_reasoning_end_streaming(self, input_ids: Sequence[int], delta_ids: Any) -> bool:
        return True

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        return list(input_ids)

    def extract_reasoning(self, model_output: str, request: Any) -> tuple[str | None, str | None]:
        reasoning, rest = split_reasoning(model_output, _dialect(self, request))
        if reasoning is None:
            return None, model_output
        return reasoning, rest if rest.strip() else None

    def extract_reasoning_streaming(self, previous_text: str, current_text: str, delta_text: str, previous_token_ids: Sequence[int],
                                    current_token_ids: Sequence[int], delta_token_ids: Sequence[int]) -> DeltaMessage | None:
        # Not reached: reasoning "ends in the prompt", so vLLM streams everything through the tool
        # parser, whose deltas carry the reasoning.
        return DeltaMessage(content=delta_text) if delta_text else None


_CLASSES: dict[str, type] = {}
_CLASSES_LOCK = threading.Lock()


def __getattr__(name: str) -> type:
    """`ConstrainedToolParser_<dialect>` and `ConstrainedReasoningParser_<dialect>` for every
    registered dialect, made on first use (vLLM's lazy registry and pickle look them up by name)."""
    for template, base in ((TOOL_PARSER_CLASS, ConstrainedToolParser), (REASONING_PARSER_CLASS, ConstrainedReasoningParser)):
        prefix = template.format(dialect="")
        if name.startswith(prefix) and name != prefix:
            try:
                d = registry.get(name[len(prefix) :])
            except ValueError as err:
                raise AttributeError(str(err)) from None
            with _CLASSES_LOCK:  # one class per name, or pickle would find another object
                if name not in _CLASSES:
                    _CLASSES[name] = type(name, (base,), {"dialect_name": d.name, "__module__": __name__, "__qualname__": name})
                return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

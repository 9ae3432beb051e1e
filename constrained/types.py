"""The typed boundary: OpenAI tools, tool_choice and tool calls as the library takes them.

Requests become these objects once, at the edge (the server's request models, the public
functions that accept OpenAI dicts); everything below takes them, not dicts re-checked at every
layer. Output stays OpenAI-shaped (`OpenAIToolCall`), because that is what users consume.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from .errors import ToolSpecError

# What becomes of calls a token budget cut short (constrained.budget): returned and flagged
# (`truncated`), or left out. Here, not in budget.py, so that the CLIs read it without torch.
BUDGET_CALLS = ("flag", "drop")

# Grammar text (characters of the EBNF `constrained.grammar` writes) from which a grammar is served
# by llguidance, with masks computed per token (`constrained.lazy`). xgrammar compiled ~100 KB of
# grammar text in ~0.1 s on this project's CPU machine (2 cores; measured on 340 grammars before
# deep objects were hoisted, `constrained.schema.hoist`, which shortens the text of deep schemas);
# llguidance's masks cost tens of µs per token more than xgrammar's precomputed ones, so below this
# the compile it saves is repaid within a few thousand tokens. Here, not in lazy.py, so that the
# CLIs read it without torch.
LAZY_FROM_CHARS = 100_000

# What a grammar cache's compiled grammars may hold in all (`compiler.GrammarCache`, `--grammar-cache-mb`):
# a small tool set's grammar holds well under 1 MiB, a 300 KB configuration schema's 10 MiB in
# llguidance and 67 MiB in xgrammar. Beside 256 entries, this bounds what a stream of new large
# schemas can pin.
GRAMMAR_CACHE_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Tool:
    """A function tool: its name and JSON-schema parameters (None: it takes no arguments)."""

    name: str
    parameters: Any = None
    description: str | None = None
    strict: bool | None = None

    @classmethod
    def from_openai(cls, obj: Tool | Mapping, index: int = 0) -> Tool:
        """`{"type": "function", "function": {...}}`, the bare function object (MiniMax-M1's seed
        style), or a Tool."""
        if isinstance(obj, Tool):
            return obj
        where = f"tools[{index}]"
        fn = obj.get("function") if isinstance(obj, Mapping) else None
        if fn is None and isinstance(obj, Mapping) and "name" in obj:
            fn = obj
        if not isinstance(fn, Mapping):
            raise ToolSpecError("each tool must be an object with a function", where)
        name = fn.get("name")
        if not isinstance(name, str):
            raise ToolSpecError(f"tool name {name!r} must be a string", f"{where}.function.name")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, (Mapping, bool)):
            raise ToolSpecError("parameters must be a JSON schema object", f"{where}.function.parameters")
        return cls(name, params, fn.get("description"), fn.get("strict"))

    def to_openai(self) -> dict:
        fn: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            fn["description"] = self.description
        if self.parameters is not None:
            fn["parameters"] = self.parameters
        if self.strict is not None:
            fn["strict"] = self.strict
        return {"type": "function", "function": fn}


def as_tools(tools: Iterable[Tool | Mapping] | None) -> tuple[Tool, ...]:
    """OpenAI tools (or Tools) -> Tools; errors name the tool's index."""
    return tuple(Tool.from_openai(t, i) for i, t in enumerate(tools or ()))


ToolChoiceMode = Literal["auto", "none", "required", "named"]


@dataclass(frozen=True)
class ToolChoice:
    mode: ToolChoiceMode = "auto"
    name: str | None = None  # the tool, when mode is "named"

    @classmethod
    def parse(cls, value: Any) -> ToolChoice:
        """OpenAI's `tool_choice`: "auto" | "none" | "required" | {"type": "function",
        "function": {"name": N}} (None means auto)."""
        if isinstance(value, ToolChoice):
            return value
        if value is None or value == "auto":
            return cls("auto")
        if value in ("none", "required"):
            return cls(value)
        if isinstance(value, Mapping) and value.get("type") == "function":
            name = (value.get("function") or {}).get("name")
            if isinstance(name, str):
                return cls("named", name)
        raise ToolSpecError(f"tool_choice must be auto, none, required or a named function, got {value!r}", "tool_choice")

    def to_openai(self) -> Any:
        return {"type": "function", "function": {"name": self.name}} if self.mode == "named" else self.mode


class OpenAIFunction(TypedDict):
    name: str
    arguments: str  # JSON text


class OpenAIToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: OpenAIFunction


@dataclass(frozen=True)
class ToolCall:
    """A call in the chat history (input): arguments as a dict."""

    name: str
    arguments: Mapping[str, Any]
    id: str | None = None

    @classmethod
    def from_openai(cls, obj: ToolCall | Mapping, param: str = "tool_calls[0]") -> ToolCall:
        """`{"id", "type": "function", "function": {"name", "arguments": JSON text or dict}}`,
        or the bare `{"name", "arguments"}`."""
        if isinstance(obj, ToolCall):
            return obj
        fn = obj.get("function", obj) if isinstance(obj, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ToolSpecError(f"{param} must have a function with a name", param)
        args = fn.get("arguments") or {}
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                raise ToolSpecError(f"{param}.function.arguments is not valid JSON", param) from None
        if not isinstance(args, Mapping):
            raise ToolSpecError(f"{param}.function.arguments must be a JSON object", param)
        call_id = obj.get("id") if isinstance(obj, Mapping) else None
        return cls(fn["name"], dict(args), call_id if isinstance(call_id, str) else None)

    def to_openai(self, call_id: str | None = None) -> OpenAIToolCall:
        return {"id": call_id or self.id or "", "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(dict(self.arguments), ensure_ascii=False)}}


__all__ = ["OpenAIToolCall", "Tool", "ToolCall", "ToolChoice", "as_tools"]

"""constrained: tool calls that are correct by construction.

A model family's tool-call syntax (a dialect, see `grammars/`) becomes a grammar built from the
tools' JSON schemas and enforced by logits masking (xgrammar); output parses back to OpenAI
`tool_calls`. Importing this package is cheap: xgrammar, torch and transformers load when a
grammar is compiled or the logits processor is asked for.
"""

from . import dialect as _registry
from .dialect import Dialect, register
from .errors import ToolSpecError, UnsupportedSchemaError
from .grammar import GrammarOptions
from .parsing import ParseResult, StreamingParser, parse
from .types import Tool, ToolCall, ToolChoice

__all__ = [
    "Dialect",
    "GrammarOptions",
    "ParseResult",
    "StreamingParser",
    "Tool",
    "ToolCall",
    "ToolCallLogitsProcessor",
    "ToolChoice",
    "ToolSpecError",
    "UnsupportedSchemaError",
    "dialect_names",
    "get_dialect",
    "jump_forward",
    "parse",
    "register",
]


def get_dialect(name: "str | Dialect") -> Dialect:
    """The registered dialect of that name (`grammars/`, entry points, `register`)."""
    return _registry.get(name)


def dialect_names() -> list[str]:
    return _registry.names()


def __getattr__(name: str):
    # The processor pulls in torch and transformers: import it only when asked for.
    if name == "ToolCallLogitsProcessor":
        from .processor import ToolCallLogitsProcessor

        return ToolCallLogitsProcessor
    if name == "jump_forward":  # model.generate(..., custom_generate=constrained.jump_forward)
        from .jump import jump_forward

        return jump_forward
    raise AttributeError(f"module 'constrained' has no attribute {name!r}")

"""constrained: tool calls that are correct by construction.

A model family's tool-call syntax (a dialect, see `grammars/`) becomes a grammar built from the
tools' JSON schemas and enforced by logits masking (xgrammar); output parses back to OpenAI
`tool_calls`.
"""

from .dialect import Dialect
from .errors import ToolSpecError
from .grammar import GrammarOptions
from .parsing import ParseResult, StreamingParser, parse
from .schema import UnsupportedSchemaError

__all__ = [
    "Dialect",
    "GrammarOptions",
    "ParseResult",
    "StreamingParser",
    "ToolCallLogitsProcessor",
    "ToolSpecError",
    "UnsupportedSchemaError",
    "get_dialect",
    "parse",
]


def get_dialect(name):
    from constrained.grammars import get_dialect as _get

    return _get(name)


def __getattr__(name):
    # The processor pulls in torch and transformers: import it only when asked for.
    if name == "ToolCallLogitsProcessor":
        from .processor import ToolCallLogitsProcessor

        return ToolCallLogitsProcessor
    raise AttributeError(f"module 'constrained' has no attribute {name!r}")

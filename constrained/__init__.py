"""constrained: tool calls that are correct by construction.

A model family's tool-call syntax (a dialect, see `grammars/`) becomes a grammar built from the
tools' JSON schemas and enforced by logits masking (xgrammar); output parses back to OpenAI
`tool_calls`.
"""

from .dialect import Dialect
from .errors import ToolSpecError
from .grammar import GrammarOptions
from .parsing import ParseResult, StreamingParser, parse
from .processor import ToolCallLogitsProcessor
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

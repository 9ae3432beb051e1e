"""IBM Granite 3.x: <|tool_call|> then a JSON array of {"name", "arguments"} (no closing marker)."""

from constrained import chat_format
from constrained.dialect import Dialect

GRANITE = Dialect(
    name="granite",
    models="Granite 3.0, 3.1, 3.x",
    description='<|tool_call|>[{"name": ..., "arguments": {...}}, ...]',
    section_begin="<|tool_call|>[",
    section_end="]",
    call_template='{{"name": "{name}", "arguments": {arguments}}}',
    call_separator=", ",
    special_tokens=("<|tool_call|>",),
    chat=chat_format.GRANITE3,
)

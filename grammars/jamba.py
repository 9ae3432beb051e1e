"""AI21 Jamba 1.5/1.6: a JSON array of calls inside <tool_calls> (both single tokens)."""

from constrained import chat_format
from constrained.dialect import Dialect

JAMBA = Dialect(
    name="jamba",
    models="Jamba 1.5, 1.6",
    description='<tool_calls>[{"name": ..., "arguments": {...}}, ...]</tool_calls>',
    section_begin="<tool_calls>[",
    section_end="]</tool_calls>",
    call_template='{{"name": "{name}", "arguments": {arguments}}}',
    call_separator=", ",
    special_tokens=("<tool_calls>", "</tool_calls>"),
    chat=chat_format.JAMBA,
)

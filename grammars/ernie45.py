"""Baidu ERNIE-4.5 (thinking): <tool_call> JSON blocks, each followed by a newline."""

from constrained import chat_format
from constrained.dialect import Dialect

ERNIE45 = Dialect(
    name="ernie45",
    models="ERNIE-4.5 (thinking)",
    description='<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>\\n',
    call_template='<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>\n',
    special_tokens=("<tool_call>", "</tool_call>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.ERNIE,
)

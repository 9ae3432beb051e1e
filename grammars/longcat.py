"""Meituan LongCat-Flash: hermes blocks with <longcat_tool_call> tags."""

from constrained import chat_format
from constrained.dialect import Dialect

LONGCAT = Dialect(
    name="longcat",
    models="LongCat-Flash",
    description='<longcat_tool_call>\\n{"name": ..., "arguments": {...}}\\n</longcat_tool_call>',
    call_template='<longcat_tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</longcat_tool_call>',
    call_separator="\n",
    special_tokens=("<longcat_tool_call>", "</longcat_tool_call>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.LONGCAT,
)

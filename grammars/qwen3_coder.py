"""Qwen3-Coder, Qwen3.5/3.6: XML parameters inside <tool_call><function=NAME>, values framed by
newlines (the Qwen3.5 template), typed by the tool schema."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect

QWEN3_CODER = Dialect(
    name="qwen3_coder",
    models="Qwen3-Coder(-Next), Qwen3.5, Qwen3.6",
    description="<tool_call>\\n<function=NAME>\\n<parameter=K>\\nV\\n</parameter>\\n</function>\\n</tool_call>",
    call_template="<tool_call>\n<function={name}>\n{arguments}</function>\n</tool_call>",
    call_separator="\n",
    arguments=XmlArguments("<parameter={key}>\n{value}\n</parameter>\n"),
    special_tokens=("<tool_call>", "</tool_call>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.QWEN3_CODER,
)

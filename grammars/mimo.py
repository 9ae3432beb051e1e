"""Xiaomi MiMo-V2: the Qwen3 XML layout with no newlines at all; values verbatim."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect

MIMO = Dialect(
    name="mimo",
    models="MiMo-V2.x",
    description="<tool_call><function=NAME><parameter=K>V</parameter></function></tool_call>",
    call_template="<tool_call><function={name}>{arguments}</function></tool_call>",
    arguments=XmlArguments("<parameter={key}>{value}</parameter>"),
    special_tokens=("<tool_call>", "</tool_call>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.CHATML,
)

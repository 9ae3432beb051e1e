"""Liquid LFM2 / LFM2.5: a Python call list between <|tool_call_start|> and <|tool_call_end|>."""

from constrained import chat_format
from constrained.dialect import Dialect

LFM2 = Dialect(
    name="lfm2",
    models="LFM2, LFM2.5",
    description="<|tool_call_start|>[f(a=1), g(b=\"x\")]<|tool_call_end|>",
    section_begin="<|tool_call_start|>[",
    section_end="]<|tool_call_end|>",
    call_template="{name}({arguments})",
    call_separator=", ",
    arguments="python",
    special_tokens=("<|tool_call_start|>", "<|tool_call_end|>"),
    chat=chat_format.LFM2,
)

"""Tencent Hunyuan-A13B: a JSON array of calls inside <tool_calls> (the template's layout)."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.jamba import JAMBA

HUNYUAN_A13B = replace(JAMBA, chat=chat_format.HUNYUAN, name="hunyuan_a13b", models="Hunyuan-A13B", special_tokens=("<tool_calls>", "</tool_calls>", "<think>", "</think>"),
                       reasoning=("<think>", "</think>"))

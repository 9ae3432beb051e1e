"""DeepSeek-V3.1(-Terminus), V3.2-Exp: `NAME<｜tool▁sep｜>{json}` per call, calls back to back."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.deepseek_v3 import DEEPSEEK_V3

DEEPSEEK_V31 = replace(
    DEEPSEEK_V3, chat=chat_format.DEEPSEEK_V31, name="deepseek_v31", models="DeepSeek-V3.1(-Terminus), V3.2-Exp",
    description="<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>",
    call_template="<｜tool▁call▁begin｜>{name}<｜tool▁sep｜>{arguments}<｜tool▁call▁end｜>", call_separator="",
)

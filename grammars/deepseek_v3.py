"""DeepSeek-V3 / V3-0324 / R1 / R1-0528: `function<｜tool▁sep｜>NAME` then the arguments in a json
fence. vLLM's regex has no DOTALL, so the arguments must be one line (the json codec's form)."""

from constrained import chat_format
from constrained.dialect import Dialect

DEEPSEEK_V3 = Dialect(
    name="deepseek_v3",
    models="DeepSeek-V3, V3-0324, R1, R1-0528",
    description="<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\n{...}\\n```<｜tool▁call▁end｜>",
    section_begin="<｜tool▁calls▁begin｜>",
    section_end="<｜tool▁calls▁end｜>",
    call_template="<｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}\n```json\n{arguments}\n```<｜tool▁call▁end｜>",
    call_separator="\n",
    special_tokens=("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>",
                    "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.DEEPSEEK_V3,
)

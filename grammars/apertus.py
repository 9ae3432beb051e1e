"""Swiss AI Apertus: a JSON list of one-key objects {NAME: arguments} between <|tools_prefix|> and
<|tools_suffix|> (examples/tool_chat_template_apertus.jinja)."""

from constrained import chat_format
from constrained.dialect import Dialect

APERTUS = Dialect(
    name="apertus",
    models="Apertus",
    description='<|tools_prefix|>[{"NAME": {...}}, ...]<|tools_suffix|>',
    section_begin="<|tools_prefix|>[",
    section_end="]<|tools_suffix|>",
    call_template='{{"{name}": {arguments}}}',
    call_separator=", ",
    special_tokens=("<|tools_prefix|>", "<|tools_suffix|>", "<|inner_prefix|>", "<|inner_suffix|>"),
    reasoning=("<|inner_prefix|>", "<|inner_suffix|>"),
    chat=chat_format.APERTUS,
)

"""MiniMax-M2 / M2.1 / M2.5: <minimax:tool_call> with one <invoke name="N"> per call and
<parameter name="K">V</parameter> per argument (the M2 template's newlines)."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect

MINIMAX_M2 = Dialect(
    name="minimax_m2",
    models="MiniMax-M2, M2.1, M2.5",
    description='<minimax:tool_call>\\n<invoke name="N">\\n<parameter name="K">V</parameter>\\n</invoke>\\n</minimax:tool_call>',
    section_begin="<minimax:tool_call>\n",
    section_end="</minimax:tool_call>",
    call_template='<invoke name="{name}">\n{arguments}</invoke>\n',
    arguments=XmlArguments('<parameter name="{key}">{value}</parameter>\n'),
    special_tokens=("<minimax:tool_call>", "</minimax:tool_call>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.MINIMAX_M2,
)

"""AllenAI OLMo 3: Python calls, one per line, inside <function_calls>."""

from constrained import chat_format
from constrained.dialect import Dialect

OLMO3 = Dialect(
    name="olmo3",
    models="OLMo 3",
    description="<function_calls>\\nf(a=1)\\ng(b='x')\\n</function_calls>",
    section_begin="<function_calls>\n",
    section_end="\n</function_calls>",
    call_template="{name}({arguments})",
    call_separator="\n",
    arguments="python",
    chat=chat_format.OLMO3,
)

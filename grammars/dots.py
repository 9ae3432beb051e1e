"""rednote dots.llm: <dots_function_call> with MiniMax-style <invoke>/<parameter> elements."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect

DOTS = Dialect(
    name="dots",
    models="dots.llm",
    description='<dots_function_call>\\n<invoke name="N">\\n<parameter name="K">V</parameter>\\n</invoke>\\n</dots_function_call>',
    section_begin="<dots_function_call>\n",
    section_end="</dots_function_call>",
    call_template='<invoke name="{name}">\n{arguments}</invoke>\n',
    arguments=XmlArguments('<parameter name="{key}">{value}</parameter>\n'),
    special_tokens=("<dots_function_call>", "</dots_function_call>"),
    chat=chat_format.DOTS,
)

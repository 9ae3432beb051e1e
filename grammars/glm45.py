"""GLM-4.5 / 4.6: <tool_call>NAME\\n<arg_key>K</arg_key>\\n<arg_value>V</arg_value>\\n...</tool_call>."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect

GLM45 = Dialect(
    name="glm45",
    models="GLM-4.5, GLM-4.6",
    description="<tool_call>NAME\\n<arg_key>K</arg_key>\\n<arg_value>V</arg_value>\\n</tool_call>",
    call_template="<tool_call>{name}\n{arguments}</tool_call>",
    call_separator="\n",
    arguments=XmlArguments("<arg_key>{key}</arg_key>\n<arg_value>{value}</arg_value>\n"),
    special_tokens=("<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.GLM,
)

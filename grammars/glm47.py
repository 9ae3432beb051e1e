"""GLM-4.7 / GLM-5.x: <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>, no
newlines (the GLM-4.7 template); values typed by the tool schema."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect

GLM47 = Dialect(
    name="glm47",
    models="GLM-4.7, GLM-5.x",
    description="<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>",
    call_template="<tool_call>{name}{arguments}</tool_call>",
    arguments=XmlArguments("<arg_key>{key}</arg_key><arg_value>{value}</arg_value>"),
    special_tokens=("<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "<think>", "</think>"),
    reasoning=("<think>", "</think>"),
    chat=chat_format.GLM,
)

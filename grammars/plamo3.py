"""PFN PLaMo 3: tool requests between <|plamo:...:plamo|> markers (vLLM's plamo3 structural tag).
The markers are several tokens each in the real vocabulary, so they stay text."""

from constrained import chat_format
from constrained.dialect import Dialect

PLAMO3 = Dialect(
    name="plamo3",
    models="PLaMo 3",
    description="<|plamo:begin_tool_requests:plamo|><|plamo:begin_tool_request:plamo|>... NAME ... {...} ...",
    section_begin="<|plamo:begin_tool_requests:plamo|>",
    section_end="<|plamo:end_tool_requests:plamo|>",
    call_template=("<|plamo:begin_tool_request:plamo|><|plamo:begin_tool_name:plamo|>{name}<|plamo:end_tool_name:plamo|>"
                   "<|plamo:begin_tool_arguments:plamo|><|plamo:constrain|>json<|plamo:msg|>{arguments}"
                   "<|plamo:end_tool_arguments:plamo|><|plamo:end_tool_request:plamo|>"),
    chat=chat_format.PLAMO,
)

"""ByteDance Seed-OSS: the Qwen3 XML layout inside <seed:tool_call>, values inline (no newlines)."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect

SEED_OSS = Dialect(
    name="seed_oss",
    models="Seed-OSS-36B",
    description="<seed:tool_call>\\n<function=NAME>\\n<parameter=K>V</parameter>\\n</function>\\n</seed:tool_call>",
    call_template="<seed:tool_call>\n<function={name}>\n{arguments}</function>\n</seed:tool_call>",
    call_separator="\n",
    arguments=XmlArguments("<parameter={key}>{value}</parameter>\n"),
    special_tokens=("<seed:tool_call>", "</seed:tool_call>", "<seed:think>", "</seed:think>"),
    reasoning=("<seed:think>", "</seed:think>"),
    chat=chat_format.SEED_OSS,
)

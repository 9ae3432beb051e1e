"""DeepSeek-V3.2 (DSML): <｜DSML｜invoke name="N"> with one <｜DSML｜parameter name="K" string="true|false">
per argument: "true" for a raw string, "false" for JSON (tokenizers/deepseek_v32_encoding.py)."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect

DEEPSEEK_V32 = Dialect(
    name="deepseek_v32",
    models="DeepSeek-V3.2",
    description='<｜DSML｜function_calls> <｜DSML｜invoke name="N"> <｜DSML｜parameter name="K" string="true|false">V</｜DSML｜parameter>',
    section_begin="\n\n<｜DSML｜function_calls>\n",
    section_end="\n</｜DSML｜function_calls>",
    call_template='<｜DSML｜invoke name="{name}">\n{arguments}\n</｜DSML｜invoke>',
    call_separator="\n",
    arguments=XmlArguments('<｜DSML｜parameter name="{key}" string="{string}">{value}</｜DSML｜parameter>', separator="\n"),
    reasoning=("<think>", "</think>"),
    # ｜DSML｜ is one token of the DeepSeek vocabulary; the tags around it are text
    special_tokens=("｜DSML｜", "<think>", "</think>"),
    chat=chat_format.DEEPSEEK_V32,
)

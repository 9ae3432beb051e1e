"""DeepSeek-V4.1: DSML with a space after the marker in every tag (`<｜DSML｜ calls>`,
`<｜DSML｜ invoke`, `<｜DSML｜ parameter`; tokenizers/deepseek_v41_encoding.py)."""

from constrained import chat_format
from constrained.codecs.xml import XmlArguments
from constrained.dialect import Dialect
from constrained.grammars.deepseek_v32 import DEEPSEEK_V32

DEEPSEEK_V41 = Dialect(
    name="deepseek_v41",
    models="DeepSeek-V4.1",
    description='<｜DSML｜ calls> <｜DSML｜ invoke name="N"> <｜DSML｜ parameter name="K" string="true|false">V</｜DSML｜ parameter>',
    section_begin="\n\n<｜DSML｜ calls>\n",
    section_end="\n</｜DSML｜ calls>",
    call_template='<｜DSML｜ invoke name="{name}">\n{arguments}\n</｜DSML｜ invoke>',
    call_separator="\n",
    arguments=XmlArguments('<｜DSML｜ parameter name="{key}" string="{string}">{value}</｜DSML｜ parameter>', separator="\n"),
    reasoning=DEEPSEEK_V32.reasoning,
    special_tokens=DEEPSEEK_V32.special_tokens,
    chat=chat_format.DEEPSEEK_V32,
)

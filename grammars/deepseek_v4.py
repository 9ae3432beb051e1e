"""DeepSeek-V4: DSML like V3.2, in a <｜DSML｜tool_calls> block (tokenizers/deepseek_v4_encoding.py)."""

from dataclasses import replace

from constrained import chat_format
from constrained.grammars.deepseek_v32 import DEEPSEEK_V32

DEEPSEEK_V4 = replace(DEEPSEEK_V32, chat=chat_format.DEEPSEEK_V32, name="deepseek_v4", models="DeepSeek-V4",
                      description='<｜DSML｜tool_calls> <｜DSML｜invoke name="N"> <｜DSML｜parameter name="K" string="true|false">V</｜DSML｜parameter>',
                      section_begin="\n\n<｜DSML｜tool_calls>\n", section_end="\n</｜DSML｜tool_calls>")

"""Chat formats: how a model family lays out a conversation around its tool calls, declared once.

A `Dialect` says how calls are written; its `chat` (a `ChatFormat`) says how the conversation
around them is written: the role markers, where the tool list goes, how tool results come back,
and which token ends the model's turn. `constrained.chat` renders a conversation from it, in
Python (the server's prompt, the demo model's training text) and as a Jinja chat template (HF
`apply_chat_template`, vLLM), the same text either way.

Each format follows its family's published chat template (the source named on it) in the parts
that shape a tool-use conversation. Two departures, the same for every family, because one small
demo model is trained on all of them:
- the tool block ends with a one-line example of a call in the dialect's own syntax (`{example}`);
  the real templates of most families carry such an instruction in their own words, and families
  that share a format (Qwen's JSON and XML calls, DeepSeek's versions) need it to be told apart;
- default system prompts, dates, reasoning switches and multimodal parts are left out.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

ToolList = Literal["functions", "tools", "array", "function_array"]


@dataclass(frozen=True)
class ChatFormat:
    family: str
    source: str  # the published template this one follows
    system: tuple[str, str]  # the text before and after a system message's content
    user: tuple[str, str]
    # Before an assistant turn (also the generation prompt), and after its stop token.
    assistant: tuple[str, str]
    # The token that ends an assistant turn: the model writes it, and it is the model's EOS.
    stop: str
    tool: tuple[str, str]  # around one tool result
    # The tool block: `{tools}` the tool list (see `tool_list`), `{example}` a call in the dialect's syntax.
    tools: str
    bos: str = ""  # the start of every prompt
    tool_result: str = "{content}"  # one result's text: {name} the tool, {id} the call id, {content}
    tool_run: tuple[str, str] = ("", "")  # around a run of consecutive tool results
    tool_separator: str = ""  # between two results of a run
    # The tool block as a message of its own (before and after it), first in the prompt (after the
    # system message when not `tools_first`); None: it ends the system message (one is made when
    # the conversation has none).
    tools_message: tuple[str, str] | None = None
    tools_first: bool = True
    # DeepSeek: the opening of an assistant turn (and the generation prompt) right after tool results; None: `assistant[0]`.
    assistant_after_tool: str | None = None
    # No system role (Mistral before v11): the system text opens the first user message instead.
    system_in_user: bool = False
    tools_join: str = "\n\n"  # between the system prompt and the tool block
    # "functions": each tool's function object, one per line; "tools": each OpenAI tool object
    # ({"type": "function", "function": ...}), one per line; "array": the OpenAI tool list as one
    # JSON array; "function_array": the function objects as one JSON array.
    tool_list: ToolList = "functions"
    # GLM: no end-of-turn token; the model stops by writing the next message's role marker (the
    # leading marker of `user[0]` or `tool_run[0]`), and `stop` is the one it writes at the end.
    stop_opens_next: bool = False
    # Which of these strings are single tokens in the family's vocabulary (the demo tokenizer adds them).
    special_tokens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.stop not in self.special_tokens:
            raise ValueError(f"chat format {self.family}: the stop {self.stop!r} must be a special token")
        if self.stop_opens_next:
            for opening in (self.user[0], self.tool_run[0] or self.tool[0]):
                if self.leading_marker(opening) is None:
                    raise ValueError(f"chat format {self.family}: {opening!r} must start with a special token (it is a stop)")

    def leading_marker(self, text: str) -> str | None:
        """The special token `text` starts with, if any (the longest)."""
        found = [t for t in self.special_tokens if text.startswith(t)]
        return max(found, key=len) if found else None

    @property
    def result_opening(self) -> str:
        """The text that opens the first tool result of a run, up to the result's first field."""
        literal = next(iter(string.Formatter().parse(self.tool_result)))[0]
        return self.tool_run[0] + self.tool[0] + literal

    @property
    def stop_tokens(self) -> tuple[str, ...]:
        """Every token that ends an assistant turn (the model's EOS set)."""
        if not self.stop_opens_next:
            return (self.stop,)
        markers = (self.leading_marker(self.user[0]), self.leading_marker(self.tool_run[0] or self.tool[0]), self.stop)
        return tuple(dict.fromkeys(m for m in markers if m))


# -- the families ---------------------------------------------------------------------------------
# Qwen's tool block, which several families copied (Granite 4, Ling, GLM): `{example}` replaces
# the JSON call format Qwen spells out, so that it fits every dialect that shares the layout.
_QWEN_TOOLS = ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
               "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
               "For each function call, respond in this format:\n{example}")

_CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


def _chatml(**fields) -> ChatFormat:
    """A format of the ChatML family: its roles and end of turn, with the family's own tool layout."""
    return ChatFormat(**{"system": ("<|im_start|>system\n", "<|im_end|>\n"), "user": ("<|im_start|>user\n", "<|im_end|>\n"),
                         "assistant": ("<|im_start|>assistant\n", "\n"), "stop": "<|im_end|>",
                         "special_tokens": _CHATML_TOKENS, **fields})


CHATML = _chatml(
    family="ChatML (Qwen2.5, Qwen3, Hermes)",
    source="Qwen/Qwen3-8B chat_template",
    tool_run=("<|im_start|>user", "<|im_end|>\n"),
    tool=("\n<tool_response>\n", "\n</tool_response>"),
    tools=_QWEN_TOOLS,
    tool_list="tools",
)

QWEN3_CODER = _chatml(
    family="Qwen3-Coder",
    source="Qwen/Qwen3-Coder-30B-A3B-Instruct chat_template (via ollama model/renderers/qwen3coder.go); the tool list is JSON, not its XML",
    tool_run=("<|im_start|>user\n", "<|im_end|>\n"),
    tool=("<tool_response>\n", "\n</tool_response>\n"),
    tools=("# Tools\n\nYou have access to the following functions:\n\n<tools>\n{tools}\n</tools>\n\n"
           "If you choose to call a function ONLY reply in the following format with NO suffix:\n\n{example}"),
)

XLAM = _chatml(
    family="xLAM-2 (Qwen template)",
    source="vllm examples/tool_chat_template_xlam_qwen.jinja",
    tool=("<|im_start|>tool\n", "<|im_end|>\n"),
    tools=("You have access to a set of tools. When using tools, make calls in a single JSON array: \n\n{example}\n\n"
           "If no tool is suitable, state that explicitly. The available tools are:\n{tools}"),
    tools_join="\n",
    tool_list="tools",
)

STEP = _chatml(
    family="StepFun Step-3.5",
    source="llama.cpp models/templates/StepFun3.7-Flash.jinja (the same family's template)",
    tool_run=("<|im_start|>tool_response\n", "<|im_end|>\n"),
    tool=("<tool_response>", "</tool_response>"),
    tools=("# Tools\n\nYou have access to the following functions in JSONSchema format:\n\n<tools>\n{tools}\n</tools>\n\n"
           "If you choose to call a function ONLY reply in the following format with NO suffix:\n\n{example}"),
    tool_list="tools",
)

LFM2 = _chatml(
    family="Liquid LFM2",
    source="llama.cpp models/templates/llama-cpp-lfm2.jinja",
    tool=("<|im_start|>tool\n<|tool_response_start|>", "<|tool_response_end|><|im_end|>\n"),
    tools="List of tools: <|tool_list_start|>{tools}<|tool_list_end|>",
    tools_join="\n",
    tool_list="function_array",
    special_tokens=(*_CHATML_TOKENS, "<|tool_list_start|>", "<|tool_list_end|>", "<|tool_response_start|>", "<|tool_response_end|>"),
)

OLMO3 = _chatml(
    family="OLMo 3",
    source="allenai/Olmo-3-7B-Instruct chat_template (via ollama model/renderers/olmo3.go)",
    tool=("<|im_start|>environment\n", "<|im_end|>\n"),
    tools=("You are provided with function signatures within <functions></functions> XML tags. You may call one or more "
           "functions to assist with the user query. Output any function calls within <function_calls></function_calls> XML "
           "tags. Do not make assumptions about what values to plug into functions.<functions>{tools}</functions>"),
    tools_join=" ",
    tool_list="array",
)

INTERNLM = _chatml(
    family="InternLM2",
    source="InternLM/InternLM chat/chat_format.md",
    tool=("<|im_start|>environment name=<|plugin|>\n", "<|im_end|>\n"),
    tools_message=("<|im_start|>system name=<|plugin|>\n", "<|im_end|>\n"),
    tools_first=False,
    tools="{tools}",
    tool_list="function_array",
    special_tokens=(*_CHATML_TOKENS, "<|plugin|>"),
)

ERNIE = ChatFormat(
    family="ERNIE-4.5 Thinking",
    source="ms-swift ernie_thinking template, PaddleFormers (the HF template itself unread); tool list unverified",
    system=("<|im_start|>system\n<system_setting>\n", "\n</system_setting><|im_end|>\n\n"),
    user=("<|im_start|>user\n", "<|im_end|>\n\n"),
    assistant=("<|im_start|>assistant\n", "\n\n"),
    stop="<|im_end|>",
    tool=("<|im_start|>tool\n", "<|im_end|>\n\n"),
    tools=_QWEN_TOOLS,
    tool_list="tools",
    special_tokens=("<|im_start|>", "<|im_end|>"),
)

KIMI = ChatFormat(
    family="Kimi-K2",
    source="moonshotai/Kimi-K2-Instruct-0905 and K2-Thinking chat_template.jinja (llama.cpp models/templates)",
    tools_message=("<|im_system|>tool_declare<|im_middle|>", "<|im_end|>"),
    tools="{tools}",
    tool_list="array",
    system=("<|im_system|>system<|im_middle|>", "<|im_end|>"),
    user=("<|im_user|>user<|im_middle|>", "<|im_end|>"),
    assistant=("<|im_assistant|>assistant<|im_middle|>", ""),
    stop="<|im_end|>",
    tool=("<|im_system|>tool<|im_middle|>", "<|im_end|>"),
    tool_result="## Return of {id}\n{content}",
    special_tokens=("<|im_system|>", "<|im_user|>", "<|im_assistant|>", "<|im_middle|>", "<|im_end|>"),
)

MINIMAX_M1 = ChatFormat(
    family="MiniMax-M1",
    source="MiniMaxAI/MiniMax-M1 tokenizer_config.json chat_template; one result per tool message, as vLLM's variant",
    bos="<begin_of_document>",
    system=("<beginning_of_sentence>system ai_setting=assistant\n", "<end_of_sentence>\n"),
    tools_message=("<beginning_of_sentence>system tool_setting=tools\n", "<end_of_sentence>\n"),
    tools_first=False,
    tools=("You are provided with these tools:\n<tools>\n{tools}\n</tools>\n\n"
           "If you need to call tools, please respond with <tool_calls></tool_calls> XML tags, and provide tool-name and "
           "json-object of arguments, following the format below:\n{example}"),
    user=("<beginning_of_sentence>user name=user\n", "<end_of_sentence>\n"),
    assistant=("<beginning_of_sentence>ai name=assistant\n", "\n"),
    stop="<end_of_sentence>",
    tool=("<beginning_of_sentence>tool name=tools\n", "\n\n<end_of_sentence>\n"),
    tool_result="tool name: {name}\ntool result: {content}",
    special_tokens=("<begin_of_document>", "<beginning_of_sentence>", "<end_of_sentence>"),
)

MINIMAX_M2 = ChatFormat(
    family="MiniMax-M2",
    source="MiniMaxAI/MiniMax-M2 chat_template.jinja (llama.cpp models/templates/unsloth-MiniMax-M2.jinja); tools one per line, without <tool> tags",
    bos="]~!b[",
    system=("]~b]system\n", "[e~[\n"),
    user=("]~b]user\n", "[e~[\n"),
    assistant=("]~b]ai\n", "\n"),
    stop="[e~[",
    tool_run=("]~b]tool", "[e~[\n"),
    tool=("\n<response>", "</response>"),
    tools=("\n\n# Tools\nYou may call one or more tools to assist with the user query.\n"
           "Here are the tools available in JSONSchema format:\n\n<tools>\n{tools}\n</tools>\n\n"
           "When making tool calls, use XML format to invoke tools and pass parameters:\n\n{example}"),
    tools_join="",
    special_tokens=("]~!b[", "]~b]", "[e~["),
)

GLM = ChatFormat(
    family="GLM-4.5 / 4.6 / 4.7",
    source="zai-org/GLM-4.6 chat_template (llama.cpp models/templates/GLM-4.6.jinja), thinking off",
    bos="[gMASK]<sop>",
    tools_message=("<|system|>\n", ""),
    tools=("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
           "For each function call, output the function name and arguments within the following XML format:\n{example}"),
    tool_list="tools",
    system=("<|system|>\n", ""),
    user=("<|user|>\n", ""),
    assistant=("<|assistant|>\n<think></think>\n", ""),
    stop="<|user|>",
    stop_opens_next=True,
    tool_run=("<|observation|>", ""),
    tool=("\n<tool_response>\n", "\n</tool_response>"),
    special_tokens=("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"),
)

_DEEPSEEK_TOKENS = ("<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>")
# The official V3 / V3.1 templates write no tools; this is vLLM's block (examples/tool_chat_template_deepseekv31.jinja).
_DEEPSEEK_TOOLS = ("## Tools\nYou have access to the following tools:\n\n{tools}\n\n"
                   "IMPORTANT: ALWAYS adhere to this exact format for tool use:\n{example}")

DEEPSEEK_V3 = ChatFormat(
    family="DeepSeek-V3 / R1",
    source="deepseek-ai/DeepSeek-V3-0324 chat_template; tools as vLLM's deepseekv31 template",
    bos="<｜begin▁of▁sentence｜>",
    system=("", ""),
    user=("<｜User｜>", ""),
    assistant=("<｜Assistant｜>", ""),
    assistant_after_tool="",
    stop="<｜end▁of▁sentence｜>",
    tool_run=("<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>"),
    tool=("<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"),
    tool_separator="\n",
    tools=_DEEPSEEK_TOOLS,
    special_tokens=(*_DEEPSEEK_TOKENS, "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"),
)

DEEPSEEK_V31 = ChatFormat(
    family="DeepSeek-V3.1",
    source="deepseek-ai/DeepSeek-V3.1 chat_template (llama.cpp models/templates), thinking off; tools as vLLM's deepseekv31 template",
    bos="<｜begin▁of▁sentence｜>",
    system=("", ""),
    user=("<｜User｜>", ""),
    assistant=("<｜Assistant｜></think>", ""),
    assistant_after_tool="",
    stop="<｜end▁of▁sentence｜>",
    tool=("<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"),
    tools=_DEEPSEEK_TOOLS,
    special_tokens=(*_DEEPSEEK_TOKENS, "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"),
)

DEEPSEEK_V32 = ChatFormat(
    family="DeepSeek-V3.2 / V4 (DSML)",
    source="deepseek-ai/DeepSeek-V3.2 encoding/encoding_dsv32.py (sglang's copy), thinking off",
    bos="<｜begin▁of▁sentence｜>",
    system=("", ""),
    user=("<｜User｜>", ""),
    assistant=("<｜Assistant｜></think>", ""),
    assistant_after_tool="\n\n</think>",
    stop="<｜end▁of▁sentence｜>",
    tool_run=("\n\n<function_results>", "\n</function_results>"),
    tool=("\n<result>", "</result>"),
    tools=("## Tools\n\nYou have access to a set of tools you can use to answer the user's question.\n"
           "You can invoke functions by writing a \"<｜DSML｜function_calls>\" block like the following as part of your reply to the user:\n"
           "{example}\n\nHere are the functions available in JSONSchema format:\n<functions>\n{tools}\n</functions>\n"),
    special_tokens=_DEEPSEEK_TOKENS,
)

LLAMA3 = ChatFormat(
    family="Llama 3.1 / 3.2 / 3.3",
    source="meta-llama/Llama-3.3-70B-Instruct chat_template with tools_in_user_message=false (llama.cpp models/templates)",
    system=("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
    user=("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
    assistant=("<|start_header_id|>assistant<|end_header_id|>\n\n", ""),
    stop="<|eot_id|>",
    tool=("<|start_header_id|>ipython<|end_header_id|>\n\n", "<|eot_id|>"),
    tools=("Environment: ipython\nYou have access to the following functions. To call a function, please respond with "
           "a function call.Respond in the format {example}.Do not use variables.\n\n{tools}"),
    tools_join="\n\n",
    tool_list="tools",
    special_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
)

LLAMA4 = ChatFormat(
    family="Llama 4",
    source="meta-llama/Llama-4-Scout-17B-16E-Instruct chat_template (transformers convert_llama4_weights_to_hf.py), tools in the system message",
    system=("<|header_start|>system<|header_end|>\n\n", "<|eot|>"),
    user=("<|header_start|>user<|header_end|>\n\n", "<|eot|>"),
    assistant=("<|header_start|>assistant<|header_end|>\n\n", ""),
    stop="<|eot|>",
    tool=("<|header_start|>ipython<|header_end|>\n\n", "<|eot|>"),
    tools=("Environment: ipython\nYou have access to the following functions. To call a function, please respond with "
           "a function call.Respond in the format {example}.Do not use variables.\n\n{tools}"),
    tools_join="\n\n",
    tool_list="tools",
    special_tokens=("<|header_start|>", "<|header_end|>", "<|eot|>"),
)

MISTRAL = ChatFormat(
    family="Mistral (tokenizer v3: Mistral-7B-v0.3, Mixtral, Nemo)",
    source="mistralai/Mistral-Nemo-Instruct-2407 chat_template (llama.cpp models/templates); tools and system before the first user message, not the last",
    system=("", ""),
    system_in_user=True,
    user=("[INST]", "[/INST]"),
    assistant=("", ""),
    stop="</s>",
    tool=("[TOOL_RESULTS]", "[/TOOL_RESULTS]"),
    tool_result='{{"content": {content}, "call_id": "{id}"}}',
    tools_message=("[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"),
    tools="{tools}",
    tool_list="array",
    special_tokens=("[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "</s>"),
)

MISTRAL_V11 = ChatFormat(
    family="Mistral (tokenizer v11+: Mistral-Small-3.2, Magistral, Devstral)",
    source="mistralai/Mistral-Small-3.2-24B-Instruct-2506 chat_template (llama.cpp models/templates); tools after the system prompt, not before the last user message",
    system=("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"),
    user=("[INST]", "[/INST]"),
    assistant=("", ""),
    stop="</s>",
    tool=("[TOOL_RESULTS]", "[/TOOL_RESULTS]"),
    tool_result="{id}[TOOL_CONTENT]{content}",
    tools_message=("[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"),
    tools_first=False,
    tools="{tools}",
    tool_list="array",
    special_tokens=("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CONTENT]", "</s>"),
)

PHI4_MINI = ChatFormat(
    family="Phi-4-mini",
    source="microsoft/Phi-4-mini-instruct chat_template (tools as in its model card; results as llama.cpp's Phi-4-mini template)",
    system=("<|system|>", "<|end|>"),
    user=("<|user|>", "<|end|>"),
    assistant=("<|assistant|>", ""),
    stop="<|end|>",
    tool=("<|tool_response|>", "<|end|>"),
    tools="<|tool|>{tools}<|/tool|>",
    tools_join="",
    tool_list="function_array",
    special_tokens=("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|tool|>", "<|/tool|>", "<|tool_response|>"),
)

HARMONY = ChatFormat(
    family="gpt-oss (Harmony)",
    source="openai/harmony docs/format.md; the tool list is JSON, not its TypeScript",
    bos="<|start|>system<|message|># Valid channels: analysis, commentary, final. Channel must be included for every message.\n"
        "Calls to these tools must go to the commentary channel: 'functions'.<|end|>",
    system=("<|start|>developer<|message|># Instructions\n\n", "<|end|>"),
    user=("<|start|>user<|message|>", "<|end|>"),
    assistant=("<|start|>assistant", ""),
    stop="<|return|>",
    tool=("", "<|end|>"),
    tool_result="<|start|>functions.{name} to=assistant<|channel|>commentary<|message|>{content}",
    tools="# Tools\n\n## functions\n\n{tools}",
    tool_list="functions",
    special_tokens=("<|start|>", "<|message|>", "<|end|>", "<|return|>", "<|channel|>", "<|call|>"),
)

GRANITE3 = ChatFormat(
    family="Granite 3.x",
    source="ibm-granite/granite-3.0-8b-instruct chat_template (vllm examples/tool_chat_template_granite.jinja)",
    system=("<|start_of_role|>system<|end_of_role|>", "<|end_of_text|>\n"),
    user=("<|start_of_role|>user<|end_of_role|>", "<|end_of_text|>\n"),
    assistant=("<|start_of_role|>assistant<|end_of_role|>", "\n"),
    stop="<|end_of_text|>",
    tool=("<|start_of_role|>tool_response<|end_of_role|>", "<|end_of_text|>\n"),
    tools_message=("<|start_of_role|>available_tools<|end_of_role|>\n", "<|end_of_text|>\n"),
    tools="{tools}",
    tool_list="tools",
    special_tokens=("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"),
)

GRANITE4 = ChatFormat(
    family="Granite 4.0",
    source="ibm-granite/granite-4.0 chat_template (llama.cpp models/templates/ibm-granite-granite-4.0.jinja)",
    system=("<|start_of_role|>system<|end_of_role|>", "<|end_of_text|>\n"),
    user=("<|start_of_role|>user<|end_of_role|>", "<|end_of_text|>\n"),
    assistant=("<|start_of_role|>assistant<|end_of_role|>", "\n"),
    stop="<|end_of_text|>",
    tool_run=("<|start_of_role|>user<|end_of_role|>", "<|end_of_text|>\n"),
    tool=("\n<tool_response>\n", "\n</tool_response>"),
    tools=("You are a helpful assistant with access to the following tools. You may call one or more tools to assist with the user query.\n\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
           "For each tool call, respond in this format:\n{example}"),
    tool_list="tools",
    special_tokens=("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"),
)

GRANITE_20B_FC = ChatFormat(
    family="granite-20b-functioncalling",
    source="vllm examples/tool_chat_template_granite_20b_fc.jinja",
    system=("SYSTEM: ", "\n"),
    user=("\nUSER: ", "\n"),
    assistant=("\nASSISTANT: ", "\n"),
    stop="<|endoftext|>",
    tool=("<function_response> ", "\n"),
    tools=("You are a helpful assistant with access to the following function calls. You may use the following function "
           "calls to understand how to respond to the user query.\n<|function_call_library|>\n{tools}\n"
           "If none of the functions are relevant, answer in text. Call them in this format:\n{example}"),
    tools_join="\n",
    tool_list="functions",
    special_tokens=("<|endoftext|>",),
)

JAMBA = ChatFormat(
    family="Jamba 1.5 / 1.6",
    source="ai21labs/AI21-Jamba-Mini-1.7 chat_template (a GGUF's copy)",
    system=("<|bom|><|system|> ", "<|eom|>"),
    user=("<|bom|><|user|> ", "<|eom|>"),
    assistant=("<|bom|><|assistant|> ", ""),
    stop="<|eom|>",
    tool=("<|bom|><|tool|> ", "<|eom|>"),
    tools="<tool_definitions>\n# Tools\n\n## Functions\n\n{tools}\n</tool_definitions>",
    tool_list="functions",
    special_tokens=("<|bom|>", "<|eom|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"),
)

HUNYUAN = ChatFormat(
    family="Hunyuan-A13B",
    source="vllm examples/tool_chat_template_hunyuan_a13b.jinja (tools branch)",
    system=("<|startoftext|>", "<|extra_4|>"),
    user=("用户：", "<|extra_0|>"),
    assistant=("助手：", ""),
    stop="<|eos|>",
    tool=("<tool_response>", "</tool_response><|extra_0|>"),
    tools=("你是一位函数组合专家。你会得到一个问题和一组可能的函数。如果你决定调用任何函数，你必须将其格式化为{example}。"
           "以下是你可以调用的函数列表，格式为JSON。\n\n{tools}\n"),
    tools_join="\n额外要求：\n",
    tool_list="array",
    special_tokens=("<|startoftext|>", "<|extra_0|>", "<|extra_4|>", "<|eos|>"),
)

SEED_OSS = ChatFormat(
    family="Seed-OSS",
    source="ByteDance-Seed/Seed-OSS-36B-Instruct chat_template (llama.cpp models/templates/ByteDance-Seed-OSS.jinja), use_json_tooldef",
    system=("<seed:bos>system\n", "<seed:eos>"),
    user=("<seed:bos>user\n", "<seed:eos>"),
    assistant=("<seed:bos>assistant\n", ""),
    stop="<seed:eos>",
    tool=("<seed:bos>tool\n", "<seed:eos>"),
    tools=("Tool List:\nYou are authorized to use the following tools (described in JSON Schema format).\n{tools}\n"
           "工具调用请遵循如下格式:\n{example}"),
    tool_list="array",
    special_tokens=("<seed:bos>", "<seed:eos>"),
)

APERTUS = ChatFormat(
    family="Apertus",
    source="swiss-ai/apertus_format src/templates/chat_template.jinja; results in a turn of their own, not inside the assistant's",
    system=("<|system_start|>", "<|system_end|>"),
    user=("<|user_start|>", "<|user_end|>"),
    assistant=("<|assistant_start|>", ""),
    stop="<|assistant_end|>",
    tool_run=("<|developer_start|>[", "]<|developer_end|>"),
    tool_separator=", ",
    tool=("", ""),
    tools_message=("<|developer_start|>Deliberation: disabled\nTool Capabilities:\n", "<|developer_end|>"),
    tools_first=False,
    tools="{tools}",
    tool_list="functions",
    special_tokens=("<|system_start|>", "<|system_end|>", "<|developer_start|>", "<|developer_end|>", "<|user_start|>", "<|user_end|>",
                    "<|assistant_start|>", "<|assistant_end|>"),
)

GIGACHAT = ChatFormat(
    family="GigaChat 3",
    source="llama.cpp models/templates/GigaChat3-10B-A1.8B.jinja; the turn ends with </s>, since <|message_sep|> opens a call",
    system=("system<|role_sep|>\n", "<|message_sep|>\n\n"),
    user=("user<|role_sep|>\n", "<|message_sep|>\n\n"),
    assistant=("assistant<|role_sep|>\n", "\n\n"),
    stop="</s>",
    tool=("function result<|role_sep|>\n", "<|message_sep|>\n\n"),
    tools_message=("function descriptions<|role_sep|>\n", "\n\n<|message_sep|>\n\n"),
    tools_first=False,
    tools="{tools}",
    tool_list="functions",
    special_tokens=("<|role_sep|>", "<|message_sep|>", "</s>"),
)

LING = ChatFormat(
    family="Ling 3",
    source="inclusionAI Ling (BailingMoE V3) chat_template (via ollama model/renderers/bailing.go)",
    system=("<role>SYSTEM</role>", "<|role_end|>"),
    user=("<role>HUMAN</role>", "<|role_end|>"),
    assistant=("<role>ASSISTANT</role>", ""),
    stop="<|role_end|>",
    tool_run=("<role>OBSERVATION</role>", "<|role_end|>"),
    tool=("\n<tool_response>\n", "\n</tool_response>"),
    tools=("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
           "If you need to use a function, for each function call, output the function name and arguments within the following XML format:\n{example}"),
    tools_join="\n",
    tool_list="tools",
    special_tokens=("<|role_end|>",),
)

LONGCAT = ChatFormat(
    family="LongCat-Flash",
    source="meituan-longcat/LongCat-Flash-Chat README; rounds are not numbered, and the result wrapper is unverified",
    system=("SYSTEM:", " "),
    user=("[Round] USER:", " "),
    assistant=("ASSISTANT:", " "),
    stop="</longcat_s>",
    tool_run=("[Round] USER:", " "),
    tool=("<longcat_tool_response>\n", "\n</longcat_tool_response>"),
    tools_message=("## Tools\nYou have access to the following tools: \n\n", "\n\n## Messages\n"),
    tools=("{tools}\n\n**Note**: For each function call, return a json object with function name and arguments within "
           "<longcat_tool_call></longcat_tool_call> XML tags as follows:\n{example}"),
    tool_list="functions",
    special_tokens=("</longcat_s>",),
)

PLAMO = ChatFormat(
    family="PLaMo 3",
    source="unverified: no PLaMo 3 template found; PLaMo 2's prompts (<|plamo:op|>ROLE\\n...)",
    system=("<|plamo:op|>system\n", "\n"),
    user=("<|plamo:op|>user\n", "\n"),
    assistant=("<|plamo:op|>assistant\n", ""),
    stop="<|plamo:op|>",
    stop_opens_next=True,
    tool=("<|plamo:op|>tool\n", "\n"),
    tools="{tools}",
    tools_join="\n",
    tool_list="functions",
    special_tokens=("<|plamo:op|>",),
)

DOTS = ChatFormat(
    family="dots.llm1",
    source="rednote-hilab/dots.llm1.inst chat_template (via ms-swift, llama.cpp); it has no tool support, so tools go in the system prompt and results in a user prompt",
    system=("<|system|>", "<|endofsystem|>"),
    user=("<|userprompt|>", "<|endofuserprompt|>"),
    assistant=("<|response|>", ""),
    stop="<|endofresponse|>",
    tool=("<|userprompt|>", "<|endofuserprompt|>"),
    tool_result="<tool_response>{content}</tool_response>",
    tools="{tools}",
    tools_join="\n",
    tool_list="functions",
    special_tokens=("<|system|>", "<|endofsystem|>", "<|userprompt|>", "<|endofuserprompt|>", "<|response|>", "<|endofresponse|>"),
)

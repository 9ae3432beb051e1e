"""Chat history -> prompt text, with assistant tool calls written in the dialect's own syntax.

Two jobs:
1. `prepare_history`: make an OpenAI message list ready for any template: content parts joined,
   tool-call arguments checked, and for dialects whose ids carry meaning (Kimi's
   `functions.NAME:IDX`) history ids rewritten to that form, with `role: tool` messages re-pointed
   by the id the client sent. Also counts the calls so far (the next call's IDX).
2. `render_segments` / `render_prompt`: the conversation in the dialect's chat format
   (`constrained.chat_format`), for the demo model and a checkpoint without a template (a real
   checkpoint uses its own `tokenizer.apply_chat_template` on the prepared history), and
   `jinja_chat_template`: the same as a Jinja chat template.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .chat_format import ChatFormat
from .codecs import jinja_raw
from .dialect import Dialect
from .errors import ToolSpecError
from .types import Tool, ToolCall, as_tools


def content_text(content: Any, param: str = "content") -> str:
    """OpenAI content (string, null, or a list of parts) -> text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                # M1 tool results are parts {"name", "type": "text", "text"} (seed 003)
                out.append(f"tool name: {part['name']}\ntool result: {part['text']}" if part.get("name") else part["text"])
            else:
                raise ToolSpecError(f"content part {i} has no text (only text parts are supported)", f"{param}[{i}]")
        return "\n".join(out)
    raise ToolSpecError("content must be a string, null or a list of parts", param)


@dataclass
class History:
    messages: list[dict]
    calls_so_far: int  # number of tool calls in the conversation: Kimi's next IDX


def prepare_history(messages: Sequence[Mapping], dialect: Dialect) -> History:
    out: list[dict] = []
    renamed: dict[str, str] = {}
    count = 0
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or "role" not in msg:
            raise ToolSpecError(f"messages[{i}] must be an object with a role", f"messages[{i}]")
        role = msg["role"]
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise ToolSpecError(f"messages[{i}].role {role!r} is not one of system, developer, user, assistant, tool", f"messages[{i}].role")
        content = msg.get("content")
        if role == "tool" and isinstance(content, list) and len(content) == 1 and isinstance(content[0], Mapping) and content[0].get("name"):
            msg = {**msg, "name": msg.get("name") or content[0]["name"]}  # one named result part (seed 003): its name is the tool's
            content = [{**content[0], "name": None}]
        m: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": content_text(content, f"messages[{i}].content")}
        if role == "assistant" and msg.get("tool_calls"):
            calls = []
            for j, raw in enumerate(msg["tool_calls"]):
                call = ToolCall.from_openai(raw, f"messages[{i}].tool_calls[{j}]")
                new_id = call.id or f"call_{count}"
                if not dialect.is_call_id(new_id):
                    new_id = dialect.make_call_id(call.name, count)
                renamed[call.id or new_id] = new_id
                # arguments as a dict: what chat templates iterate over
                calls.append({"id": new_id, "type": "function", "function": {"name": call.name, "arguments": dict(call.arguments)}})
                count += 1
            m["tool_calls"] = calls
        if role == "tool":
            client_id = msg.get("tool_call_id")
            if client_id is not None and client_id not in renamed and not _names_its_call(dialect, client_id):
                # as OpenAI: a result must answer a call made earlier (MiniMax-style results without an id are fine;
                # so are ids that name their call, `functions.NAME:IDX`: Kimi's own streaming guide sends
                # the results without the assistant message, and Kimi's template renders them by that id)
                raise ToolSpecError(f"messages[{i}].tool_call_id {client_id!r} matches no tool call of an earlier assistant message",
                                    f"messages[{i}].tool_call_id")
            m["tool_call_id"] = renamed.get(client_id, client_id) if isinstance(client_id, str) else client_id
            if msg.get("name"):
                m["name"] = msg["name"]
        out.append(m)
    return History(out, count)


def _names_its_call(dialect: Dialect, call_id: Any) -> bool:
    """Is `call_id` in the dialect's own id form, which names the tool and the call's index?"""
    if dialect.fresh_call_ids or not isinstance(call_id, str):
        return False
    pattern = re.escape(dialect.call_id).replace(r"\{name\}", r"[^\s]+").replace(r"\{index\}", r"\d+")
    return re.fullmatch(pattern, call_id) is not None


def tool_list(fmt: ChatFormat, tools: Sequence[Tool]) -> str:
    """The tools as the format lists them (`ChatFormat.tool_list`), as `tojson` writes them."""
    objects = [t.to_openai() for t in tools]
    if fmt.tool_list in ("array", "function_array"):
        return json.dumps(objects if fmt.tool_list == "array" else [o["function"] for o in objects], ensure_ascii=False)
    return "\n".join(json.dumps(o if fmt.tool_list == "tools" else o["function"], ensure_ascii=False) for o in objects)


def format_example(dialect: Dialect, index: int) -> str:
    """One call in the dialect's syntax, the format line of the tool block."""
    return dialect.render_calls([{"function": {"name": "NAME", "arguments": {"ARG": "VALUE"}}}], index)


Segment = tuple[str, bool]  # text, and whether the model writes it (an assistant turn and its stop)


def render_segments(dialect: Dialect, history: History, tools: Sequence[Tool | Mapping] | None = None,
                    add_generation_prompt: bool = True, *, close_last_turn: bool = False) -> list[Segment]:
    """The conversation in the dialect's chat format (`Dialect.chat`), as runs that alternate
    between what the model reads and what it writes (an assistant turn and its stop).
    `close_last_turn`: a conversation that ends with an assistant turn gets that turn's stop even
    where the format writes it as the next message's opening (GLM)."""
    fmt = dialect.chat
    tools = as_tools(tools)
    out: list[Segment] = [(fmt.bos, False)]
    system = "\n".join(m["content"] for m in history.messages if m["role"] == "system")
    tools_message = ""
    if tools:
        block = fmt.tools.format(tools=tool_list(fmt, tools), example=format_example(dialect, history.calls_so_far))
        if fmt.tools_message:
            tools_message = fmt.tools_message[0] + block + fmt.tools_message[1]
        else:
            system = system + fmt.tools_join + block if system else block
    if fmt.tools_first:
        out.append((tools_message, False))
    if system and not fmt.system_in_user:
        out.append((fmt.system[0] + system + fmt.system[1], False))
    if not fmt.tools_first:
        out.append((tools_message, False))
    turns = [m for m in history.messages if m["role"] != "system"]
    pending_stop = False  # a stop_opens_next turn ended: the next opening's marker is its stop
    index = 0
    for i, m in enumerate(turns):
        role = m["role"]
        if role == "tool":
            first = i == 0 or turns[i - 1]["role"] != "tool"
            last = i == len(turns) - 1 or turns[i + 1]["role"] != "tool"
            result = fmt.tool_result.format(name=m.get("name") or "", id=m.get("tool_call_id") or "", content=m["content"])
            text = ((fmt.tool_run[0] if first else fmt.tool_separator) + fmt.tool[0] + result + fmt.tool[1]
                    + (fmt.tool_run[1] if last else ""))
        elif role == "user":
            text = fmt.user[0] + (system + "\n\n" if fmt.system_in_user and system else "") + m["content"] + fmt.user[1]
            system = "" if fmt.system_in_user else system
        else:
            text = _assistant_opening(fmt, turns[i - 1] if i else None)
        if pending_stop:
            marker = fmt.leading_marker(text) or ""
            out += [(marker, True), (text[len(marker):], False)]
            pending_stop = False
        else:
            out.append((text, False))
        if role == "assistant":
            body = m["content"]
            if body and dialect.content_wrapper:
                body = dialect.content_wrapper[0] + body + dialect.content_wrapper[1]  # as the grammar writes text
            if m.get("tool_calls"):
                body += dialect.render_calls(m["tool_calls"], index, tools)
                index += len(m["tool_calls"])
            out.append((body, True))
            if fmt.stop_opens_next:
                pending_stop = True
            else:
                out += [(fmt.stop, True), (fmt.assistant[1], False)]
    if pending_stop and close_last_turn:
        out.append((fmt.stop, True))
    if add_generation_prompt:
        out.append((_assistant_opening(fmt, turns[-1] if turns else None), False))
    runs: list[Segment] = []
    for text, written in out:
        if runs and runs[-1][1] == written:
            runs[-1] = (runs[-1][0] + text, written)
        elif text:
            runs.append((text, written))
    return runs


def after_tool_results(dialect: Dialect, prompt: str) -> bool:
    """Does `prompt` (text in the dialect's chat format) end with tool results rather than a user
    turn? Read from the last opening of each (a result's opening may begin with the user's, as in
    Qwen's format, so a tie is a result)."""
    tool = prompt.rfind(dialect.chat.result_opening)
    return tool >= 0 and tool >= prompt.rfind(dialect.chat.user[0])


def _assistant_opening(fmt: ChatFormat, previous: Mapping | None) -> str:
    if fmt.assistant_after_tool is not None and previous is not None and previous["role"] == "tool":
        return fmt.assistant_after_tool
    return fmt.assistant[0]


def render_prompt(dialect: Dialect, history: History, tools: Sequence[Tool | Mapping] | None = None, add_generation_prompt: bool = True) -> str:
    """The prompt text in the dialect's chat format (what `jinja_chat_template` writes too)."""
    return "".join(text for text, _ in render_segments(dialect, history, tools, add_generation_prompt))


# -- the same template as Jinja (a checkpoint saved from the demo model, e.g. for vLLM) ------------
def _jinja_fields(template: str, fields: Mapping[str, str]) -> str:
    """A `str.format` template of the chat format as Jinja: literal text raw, each field by its expression."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(jinja_raw(literal))
        if name is not None:
            out.append(fields[name])
    return "".join(out)


_TOOL_LIST_JINJA = {
    "function_array": "{{ tools | map(attribute='function') | list | tojson }}",
    "functions": "{{ tools | map(attribute='function') | map('tojson') | join('\\n') }}",
    "tools": "{{ tools | map('tojson') | join('\\n') }}",
    "array": "{{ tools | tojson }}",
}


def jinja_chat_template(dialect: Dialect) -> str:
    """`render_prompt` as a Jinja chat template (HF `apply_chat_template`, vLLM): the same text for
    the same conversation, with calls written in the dialect's syntax and numbered across the
    conversation (Kimi's IDX)."""
    fmt = dialect.chat
    sentinel = 987654321  # where the format example's index goes
    example = "{{ ns.calls }}".join(jinja_raw(part) for part in format_example(dialect, sentinel).split(str(sentinel)))
    call = []
    for piece in dialect.pieces:  # type: ignore[attr-defined]
        if isinstance(piece, str):
            call.append(jinja_raw(piece))
        elif piece.name == "name":
            call.append("{{ tc.function.name }}")
        elif piece.name == "index":
            call.append("{{ ns.idx }}")
        else:
            call.append(dialect.codec.jinja("tc.function.arguments"))
    calls = (jinja_raw(dialect.section_begin) + "{% for tc in m.tool_calls %}" + (f"{{% if not loop.first %}}{jinja_raw(dialect.call_separator)}{{% endif %}}")
             + "".join(call) + "{% set ns.idx = ns.idx + 1 %}{% endfor %}" + jinja_raw(dialect.section_end))
    content = "{{ m.content or '' }}"
    if dialect.content_wrapper:  # assistant text as the grammar writes it
        open_, close = (jinja_raw(part) for part in dialect.content_wrapper)
        content = f"{{% if m.content %}}{open_}{{{{ m.content }}}}{close}{{% endif %}}"
    block = _jinja_fields(fmt.tools, {"tools": _TOOL_LIST_JINJA[fmt.tool_list], "example": example})
    if fmt.tools_message:
        tools_part = "{% if tools %}" + jinja_raw(fmt.tools_message[0]) + block + jinja_raw(fmt.tools_message[1]) + "{% endif %}"
        system = "{% set ns.text = ns.system | join('\\n') %}"
    else:
        tools_part = ""
        system = ("{% set text %}{{ ns.system | join('\\n') }}{% if tools %}{% if ns.system %}" + jinja_raw(fmt.tools_join)
                  + "{% endif %}" + block + "{% endif %}{% endset %}{% set ns.text = text %}")
    system_message = "" if fmt.system_in_user else "{% if ns.text %}" + jinja_raw(fmt.system[0]) + "{{ ns.text }}" + jinja_raw(fmt.system[1]) + "{% endif %}"
    head = system + (tools_part + system_message if fmt.tools_first else system_message + tools_part)
    user_system = "{% if ns.text %}{{ ns.text }}\n\n{% set ns.text = '' %}{% endif %}" if fmt.system_in_user else ""
    result = _jinja_fields(fmt.tool_result, {"name": "{{ m.name or '' }}", "id": "{{ m.tool_call_id or '' }}", "content": "{{ m.content or '' }}"})
    stop = "" if fmt.stop_opens_next else jinja_raw(fmt.stop) + jinja_raw(fmt.assistant[1])

    def opening(after_tool: str) -> str:  # `_assistant_opening`: `after_tool` is the test that a tool result came before
        if fmt.assistant_after_tool is None:
            return jinja_raw(fmt.assistant[0])
        return f"{{% if {after_tool} %}}{jinja_raw(fmt.assistant_after_tool)}{{% else %}}{jinja_raw(fmt.assistant[0])}{{% endif %}}"
    return (
        "{%- set ns = namespace(calls=0, idx=0, system=[], text='', last='') -%}"
        "{%- for m in messages %}{% if m.role == 'assistant' and m.tool_calls %}{% set ns.calls = ns.calls + m.tool_calls | length %}{% endif %}"
        "{% if m.role in ('system', 'developer') %}{% set ns.system = ns.system + [m.content or ''] %}{% endif %}{% endfor -%}"
        + jinja_raw(fmt.bos) + head
        + "{%- for m in messages if m.role not in ('system', 'developer') %}{% set ns.last = m.role %}"
        "{% if m.role == 'user' %}" + jinja_raw(fmt.user[0]) + user_system + "{{ m.content or '' }}" + jinja_raw(fmt.user[1])
        + "{% elif m.role == 'tool' %}{% if loop.first or loop.previtem.role != 'tool' %}" + jinja_raw(fmt.tool_run[0])
        + "{% else %}" + jinja_raw(fmt.tool_separator) + "{% endif %}"
        + jinja_raw(fmt.tool[0]) + result + jinja_raw(fmt.tool[1])
        + "{% if loop.last or loop.nextitem.role != 'tool' %}" + jinja_raw(fmt.tool_run[1]) + "{% endif %}"
        "{% else %}" + opening("loop.previtem is defined and loop.previtem.role == 'tool'") + content + "{% if m.tool_calls %}" + calls
        + "{% endif %}" + stop + "{% endif %}"
        "{% endfor -%}"
        "{%- if add_generation_prompt %}" + opening("ns.last == 'tool'") + "{% endif %}"
    )

"""Chat history -> prompt text, with assistant tool calls written in the dialect's own syntax.

Two jobs:
1. `prepare_history`: make an OpenAI message list ready for any template: content parts joined,
   tool-call arguments checked, and for dialects whose ids carry meaning (Kimi's
   `functions.NAME:IDX`) history ids rewritten to that form, with `role: tool` messages re-pointed
   by the id the client sent. Also counts the calls so far (the next call's IDX).
2. `render_prompt`: our chat template (ChatML-like) for the demo model; a real checkpoint uses its
   own `tokenizer.apply_chat_template` on the prepared history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .codecs import jinja_raw
from .dialect import Dialect
from .errors import ToolSpecError
from .types import Tool, ToolCall, as_tools

CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]


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
        m: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": content_text(msg.get("content"), f"messages[{i}].content")}
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


def tools_block(tools: Sequence[Tool]) -> str:
    return "\n".join(json.dumps(t.to_openai()["function"], ensure_ascii=False) for t in tools)


def render_prompt(dialect: Dialect, history: History, tools: Sequence[Tool | Mapping] | None = None, add_generation_prompt: bool = True) -> str:
    """Our chat template: tools in the system prompt, calls and results in the dialect's syntax."""
    system_parts = [m["content"] for m in history.messages if m["role"] == "system"]
    tools = as_tools(tools)
    if tools:
        example = dialect.render_calls([{"function": {"name": "NAME", "arguments": {"ARG": "VALUE"}}}], history.calls_so_far)
        system_parts.append(
            "You are provided with these tools:\n<tools>\n" + tools_block(tools) + "\n</tools>\n"
            f"To call tools, respond in this format:\n{example}"
        )
    out = []
    if system_parts:
        out.append(f"<|im_start|>system\n{chr(10).join(system_parts)}<|im_end|>\n")
    index = 0
    for m in history.messages:
        if m["role"] == "system":
            continue
        body = m["content"]
        if m["role"] == "assistant" and body and dialect.content_wrapper:
            body = dialect.content_wrapper[0] + body + dialect.content_wrapper[1]  # as the grammar writes text
        if m["role"] == "assistant" and m.get("tool_calls"):
            body = body + dialect.render_calls(m["tool_calls"], index, tools)
            index += len(m["tool_calls"])
        if m["role"] == "tool":
            body = f"tool name: {m.get('name', '')}\ntool call id: {m.get('tool_call_id')}\ntool result: {body}"
        out.append(f"<|im_start|>{m['role']}\n{body}<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


# -- the same template as Jinja (a checkpoint saved from the demo model, e.g. for vLLM) ------------
def jinja_chat_template(dialect: Dialect) -> str:
    """`render_prompt` as a Jinja chat template (HF `apply_chat_template`, vLLM): the same text for
    the same conversation, with calls written in the dialect's syntax and numbered across the
    conversation (Kimi's IDX)."""
    sentinel = 987654321  # where the format example's index goes
    example = dialect.render_calls([{"function": {"name": "NAME", "arguments": {"ARG": "VALUE"}}}], sentinel)
    example_jinja = "{{ ns.calls }}".join(jinja_raw(part) for part in example.split(str(sentinel)))
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
        content = f"{{% if m.role == 'assistant' and m.content %}}{open_}{{{{ m.content }}}}{close}{{% else %}}{content}{{% endif %}}"
    return (
        "{%- set ns = namespace(calls=0, idx=0, system=[]) -%}"
        "{%- for m in messages %}{% if m.role == 'assistant' and m.tool_calls %}{% set ns.calls = ns.calls + m.tool_calls | length %}{% endif %}"
        "{% if m.role in ('system', 'developer') %}{% set ns.system = ns.system + [m.content or ''] %}{% endif %}{% endfor -%}"
        "{%- if tools %}{% set ns.system = ns.system + ['You are provided with these tools:\\n<tools>\\n' + "
        "(tools | map(attribute='function') | map('tojson') | join('\\n')) + '\\n</tools>\\nTo call tools, respond in this format:\\n'] %}{% endif -%}"
        "{%- if ns.system %}<|im_start|>system\n{{ ns.system | join('\\n') }}" + ("{% if tools %}" + example_jinja + "{% endif %}") + "<|im_end|>\n{% endif -%}"
        "{%- for m in messages %}{% if m.role not in ('system', 'developer') %}<|im_start|>{{ m.role }}\n"
        "{% if m.role == 'tool' %}tool name: {{ m.name or '' }}\ntool call id: {{ m.tool_call_id }}\ntool result: {% endif %}"
        + content + "{% if m.role == 'assistant' and m.tool_calls %}" + calls + "{% endif %}<|im_end|>\n{% endif %}{% endfor -%}"
        "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )

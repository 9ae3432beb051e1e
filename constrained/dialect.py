"""A dialect: one model family's tool-call syntax, declared once.

Everything that must agree with the syntax derives from a `Dialect`:
- the grammar (`constrained.grammar`) walks `call_template` and the markers,
- the parser (`constrained.parsing`) walks the same pieces over text,
- the renderer (`Dialect.render_calls`) fills the template.

A call template is a format string with three fields: `{name}`, `{index}` (the call's number in the
whole conversation, for Kimi ids) and `{arguments}` (written by the argument codec). Literal braces
are doubled, as in `str.format`.
"""

from __future__ import annotations

import json
import re
import string
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

from .codecs import ArgumentCodec, get_codec
from .errors import ToolSpecError

FieldName = Literal["name", "index", "arguments"]
# OpenAI names are [A-Za-z0-9_-]{1,64}; MCP adds '.', so we accept it too.
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class Field:
    name: FieldName


def _split_template(template: str) -> tuple[str | Field, ...]:
    pieces: list[str | Field] = []
    for literal, field_name, spec, conv in string.Formatter().parse(template):
        if literal:
            pieces.append(literal)
        if field_name is not None:
            if field_name not in ("name", "index", "arguments") or spec or conv:
                raise ValueError(f"call template field {{{field_name}}} is not one of name/index/arguments")
            pieces.append(Field(field_name))  # type: ignore[arg-type]
    names = [p.name for p in pieces if isinstance(p, Field)]
    if names.count("name") != 1 or names.count("arguments") != 1 or names.count("index") > 1:
        raise ValueError("a call template needs exactly one {name} and one {arguments}")
    for a, b in zip(pieces, pieces[1:]):
        if isinstance(a, Field) and isinstance(b, Field):
            raise ValueError("two fields must be separated by a literal so that they can be parsed apart")
    return tuple(pieces)


@dataclass(frozen=True)
class Dialect:
    name: str
    description: str
    call_template: str
    arguments: str = "json"  # codec name, see constrained.codecs
    section_begin: str = ""  # "" when calls stand alone (Hermes)
    section_end: str = ""
    call_separator: str = ""
    # Markers that are single special tokens in the model's vocabulary: the grammar forces the token
    # itself, never the same characters spelled by ordinary tokens.
    special_tokens: tuple[str, ...] = ()
    reasoning: tuple[str, str] | None = None  # ("<think>", "</think>")
    # Kimi K2.6 opens the tool section before closing </think>: the section ends reasoning.
    section_ends_reasoning: bool = False
    # Pythonic: a call list is only a call list when it is the whole output (vLLM's rule too).
    calls_are_whole_output: bool = False
    # How the OpenAI tool_call.id is made: "functions.{name}:{index}" or "random".
    call_id: str = "random"
    example_tools: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pieces", _split_template(self.call_template))
        get_codec(self.arguments)  # fail at declaration time on a typo

    # -- derived facts ---------------------------------------------------------------------------
    @property
    def codec(self) -> ArgumentCodec:
        return get_codec(self.arguments)

    @property
    def uses_index(self) -> bool:
        return any(isinstance(p, Field) and p.name == "index" for p in self.pieces)  # type: ignore[attr-defined]

    @property
    def trigger(self) -> str:
        """The text that opens tool calls: the section marker, or the first line of the call."""
        head = self.section_begin or self.pieces[0]  # type: ignore[attr-defined]
        if not isinstance(head, str) or not head.strip():
            raise ValueError(f"dialect {self.name}: a call with no section must start with a literal")
        return head.strip().splitlines()[0]

    @property
    def text_excludes(self) -> tuple[str, ...]:
        """Strings that free text (content, not reasoning) must not spell, or the parser would take
        them for structure: only the trigger, since the parser looks for nothing else in content
        (special tokens are barred separately, see compiler.MARKER_BYTE; reasoning markers only
        count at the start). Each exclude costs compile time, so the list stays minimal. A
        whole-output dialect's trigger is handled by the grammar instead."""
        return () if self.calls_are_whole_output else (self.trigger,)

    @property
    def vocab_markers(self) -> tuple[str, ...]:
        """Tag-like markers a real model of this family has as tokens (the demo tokenizer adds them)."""
        literals = [self.section_begin, self.section_end, *(p for p in self.pieces if isinstance(p, str))]  # type: ignore[attr-defined]
        tags = [t for lit in literals for t in re.findall(r"<[^<>\s]{1,40}>", lit)]
        return tuple(dict.fromkeys([*self.special_tokens, *tags, *(self.reasoning or ())]))

    def make_call_id(self, name: str, index: int) -> str:
        if self.call_id == "random":
            return "call_" + uuid.uuid4().hex[:24]
        return self.call_id.format(name=name, index=index)

    # -- renderer ----------------------------------------------------------------------------------
    def render_call(self, name: str, arguments: dict, index: int) -> str:
        out = []
        for piece in self.pieces:  # type: ignore[attr-defined]
            if isinstance(piece, str):
                out.append(piece)
            elif piece.name == "name":
                out.append(name)
            elif piece.name == "index":
                out.append(str(index))
            else:
                out.append(self.codec.encode(arguments))
        return "".join(out)

    def render_calls(self, tool_calls: Sequence[dict], first_index: int = 0) -> str:
        """OpenAI `tool_calls` (arguments as JSON strings or dicts) -> the model's own text."""
        rendered = []
        for i, call in enumerate(tool_calls):
            fn = call["function"] if "function" in call else call
            args = fn.get("arguments") or {}
            if isinstance(args, str):
                args = json.loads(args) if args.strip() else {}
            rendered.append(self.render_call(fn["name"], args, first_index + i))
        return self.section_begin + self.call_separator.join(rendered) + self.section_end


def check_tool_names(dialect: Dialect, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
            raise ToolSpecError(
                f"tool name {name!r} must match {TOOL_NAME_RE.pattern}", f"tools[{i}].function.name"
            )
        if name in seen:
            raise ToolSpecError(f"duplicate tool name {name!r}", f"tools[{i}].function.name")
        seen.add(name)
        dialect.codec.check_name(name, f"tools[{i}].function.name")

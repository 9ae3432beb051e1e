"""A dialect: one model family's tool-call syntax, declared once.

Everything that must agree with the syntax derives from a `Dialect`:
- the grammar (`constrained.grammar`) walks `call_template` and the markers,
- the parser (`constrained.parsing`) walks the same pieces over text,
- the renderer (`Dialect.render_calls`) fills the template.

A call template is a format string with three fields: `{name}`, `{index}` (the call's number in the
whole conversation, for Kimi ids) and `{arguments}` (written by the argument codec). Literal braces
are doubled, as in `str.format`. Fields are separated by literals, except that `{arguments}` may
follow `{name}` directly (GLM-4.7: `<tool_call>NAME<arg_key>...`): a name ends at the first
character a tool name cannot have.

The registry lives here too. Every module of the `constrained.grammars` package (the top-level
`grammars/` folder) is imported the first time a name is looked up, and every `Dialect` it defines
at module level is registered under its name: a new dialect is one new file and nothing else.
Third-party packages can add dialects through the `constrained.dialects` entry-point group (each
entry point names a module, loaded the same way), and code can call `register` directly. The
library itself takes `Dialect` objects; names are resolved only at the edges (CLI, server, the
public functions that accept a name).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import random
import re
import string
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import Literal

from .chat_format import CHATML, ChatFormat
from .codecs import ArgumentCodec, get_codec
from .types import Tool, ToolCall, as_tools

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
        if isinstance(a, Field) and isinstance(b, Field) and (a.name, b.name) != ("name", "arguments"):
            raise ValueError("two fields must be separated by a literal so that they can be parsed apart")
    return tuple(pieces)


@lru_cache(maxsize=1024)
def _normalized(parameters_json: str) -> dict | None:
    from .schema import normalize  # here: the schema package is not needed to declare a dialect

    try:
        return normalize(json.loads(parameters_json)).schema
    except ValueError:
        return None


def argument_schemas(tools: Sequence[Tool | Mapping] | None) -> dict[str, dict]:
    """Tool name -> its normalised parameters schema (what a codec that writes strings raw reads
    values by); a tool whose schema cannot be normalised is left out (its values stay strings)."""
    out = {}
    for tool in as_tools(tools):
        schema = _normalized(json.dumps(tool.parameters, sort_keys=True))
        if schema is not None:
            out[tool.name] = schema
    return out


_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Dialect:
    name: str
    description: str
    call_template: str
    # codec name ("json", "python"), or a codec instance with the dialect's settings (XmlArguments)
    arguments: str | ArgumentCodec = "json"
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
    # How the OpenAI tool_call.id is made: "functions.{name}:{index}", "random" (call_ + 24 hex)
    # or "alnum9" (9 letters and digits: Mistral's tokenizer refuses other ids in history).
    call_id: str = "random"
    # The format's own bound on calls per turn (Harmony: `<|call|>` stops generation); the request's
    # max_calls applies below it.
    max_calls: int | None = None
    # Markers that wrap free text (Harmony's final channel); only with calls_are_whole_output.
    content_wrapper: tuple[str, str] | None = None
    models: str = ""  # the model families that write this format (README table)
    # How the family lays out the conversation around the calls (roles, tool list, results, end of turn).
    chat: ChatFormat = CHATML
    example_tools: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pieces", _split_template(self.call_template))
        assert self.codec is not None  # fail at declaration time on a typo
        if self.content_wrapper and not self.calls_are_whole_output:
            raise ValueError(f"dialect {self.name}: a content wrapper needs calls_are_whole_output")

    # -- derived facts ---------------------------------------------------------------------------
    @property
    def codec(self) -> ArgumentCodec:
        return self.arguments if isinstance(self.arguments, ArgumentCodec) else get_codec(self.arguments)

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
        (special tokens are barred separately, see tokenizer.MARKER_BYTE; reasoning markers only
        count at the start). Each exclude costs compile time, so the list stays minimal. A
        whole-output dialect's text may not start like calls (the grammar sees to it), and may
        hold a one-character trigger (pythonic `[`: a call list counts only as the whole output)
        but not a longer one: Llama's JSON parser takes `{"name": ` anywhere for a call."""
        if self.calls_are_whole_output and len(self.trigger) == 1:
            return ()
        return (self.trigger,)

    @property
    def vocab_markers(self) -> tuple[str, ...]:
        """Markers a real model of this family has as tokens (the demo tokenizer adds them): its
        chat format's and its calls' special tokens. Other markup stays text, so a tokenizer that
        knows only the declared tokens spells it as the real one does."""
        return tuple(dict.fromkeys((*self.chat.special_tokens, *self.special_tokens)))

    def name_problems(self, name: str, argument_names: Sequence[str] = ()) -> list[str]:
        """What this dialect cannot write about a tool's name and argument names ([]: nothing)."""
        if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
            return [f"tool name {name!r} must match {TOOL_NAME_RE.pattern}"]
        return [f"{p}, so the {self.name} dialect cannot write it" for p in self.codec.name_problems(name, list(argument_names))]

    @property
    def fresh_call_ids(self) -> bool:
        """Ids are made up for each response ("random", "alnum9"), not derived from the call's name
        and index: two parses of one text give different ids."""
        return self.call_id in ("random", "alnum9")

    def is_call_id(self, call_id: str) -> bool:
        """May the history keep `call_id` as the client sent it? Any id where ids are "random"; for
        alnum9, one of nine letters and digits; never where ids are derived (Kimi's name and index)."""
        if self.call_id == "alnum9":
            return len(call_id) == 9 and all(c in _ALNUM for c in call_id)
        return self.call_id == "random"

    def make_call_id(self, name: str, index: int) -> str:
        if self.call_id == "random":
            return "call_" + uuid.uuid4().hex[:24]
        if self.call_id == "alnum9":
            return "".join(random.choices(_ALNUM, k=9))
        return self.call_id.format(name=name, index=index)

    # -- renderer ----------------------------------------------------------------------------------
    def render_call(self, name: str, arguments: dict, index: int, schema: dict | None = None) -> str:
        out = []
        for piece in self.pieces:  # type: ignore[attr-defined]
            if isinstance(piece, str):
                out.append(piece)
            elif piece.name == "name":
                out.append(name)
            elif piece.name == "index":
                out.append(str(index))
            else:
                out.append(self.codec.encode(arguments, schema))
        return "".join(out)

    def render_calls(self, tool_calls: Sequence[ToolCall | Mapping], first_index: int = 0,
                     tools: Sequence[Tool | Mapping] | None = None) -> str:
        """Calls (ToolCall, or OpenAI `tool_calls` with arguments as JSON text or dicts) -> the
        model's own text. With `tools`, values are written as their schemas type them (the xml
        encoding reads them back by the schema)."""
        calls = [ToolCall.from_openai(c, f"tool_calls[{i}]") for i, c in enumerate(tool_calls)]
        schemas = argument_schemas(tools)
        rendered = [self.render_call(c.name, dict(c.arguments), first_index + i, schemas.get(c.name)) for i, c in enumerate(calls)]
        return self.section_begin + self.call_separator.join(rendered) + self.section_end


# -- the registry ----------------------------------------------------------------------------------
# The package whose modules declare the built-in dialects (installed from the top-level grammars/).
BUILTIN_PACKAGE = "constrained.grammars"
ENTRY_POINT_GROUP = "constrained.dialects"

_REGISTRY: dict[str, Dialect] = {}
_DISCOVERED = False
_LOCK = threading.RLock()


def register(dialect: Dialect, *, replace: bool = False) -> Dialect:
    """Make `dialect` known by its name. Registering another dialect under a taken name is an
    error unless `replace`; registering the same declaration again is a no-op."""
    with _LOCK:
        known = _REGISTRY.get(dialect.name)
        if known is not None and known != dialect and not replace:
            raise ValueError(f"dialect {dialect.name!r} is already registered (by another declaration)")
        _REGISTRY[dialect.name] = dialect
    return dialect


def register_module(module: ModuleType) -> list[Dialect]:
    """Register every `Dialect` a module defines at its top level."""
    found = [v for v in vars(module).values() if isinstance(v, Dialect)]
    for d in found:
        register(d)
    return found


def _discover() -> None:
    global _DISCOVERED
    with _LOCK:
        if _DISCOVERED:
            return
        package = importlib.import_module(BUILTIN_PACKAGE)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                register_module(importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}"))
        from importlib.metadata import entry_points  # here: ~0.1 s to import

        for entry in entry_points(group=ENTRY_POINT_GROUP):
            register_module(importlib.import_module(entry.value))
        _DISCOVERED = True


def get(name: str | Dialect) -> Dialect:
    """The dialect of that name (a `Dialect` is returned as it is)."""
    if isinstance(name, Dialect):
        return name
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; known dialects: {', '.join(names())}") from None


def names() -> list[str]:
    """Registered dialect names, sorted."""
    _discover()
    return sorted(_REGISTRY)


def all_dialects() -> list[Dialect]:
    return [_REGISTRY[n] for n in names()]

"""Grammar build: dialect x tools x options -> one EBNF for xgrammar.

Shape of every grammar (rules in brackets depend on the options):

    root      ::= [reasoning] (text [section] | section | text)     # auto | required/named | none
    reasoning ::= "" | OPEN think CLOSE                              # left free: never constrained
    text      ::= any text that does not spell a marker
    section   ::= SECTION_BEGIN call_0 (SEP call_1 (SEP call_2 ...)?)? SECTION_END
    call_k    ::= the call template, one alternative per tool, {index} fixed to first_index + k

Markers that are special tokens in the tokenizer are written `Token(id)`, so the model must emit the
token itself. Text may not spell a marker, so whatever the parser later finds is exactly what the
grammar produced. Each tool's argument rules are defined once and shared by every call position.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import ebnf as E
from .codecs import WHITESPACE
from .dialect import Dialect
from .errors import ToolSpecError, UnsupportedSchemaError
from .schema import ADDITIONAL_PROPERTIES, NormalizedSchema, normalize
from .schema.extra_keys import GUARDED_KEY_RULE
from .schema.strings import GUARDED_LENGTH_RULE
from .types import Tool, ToolChoice, as_tools

_INDEX = "\0index"  # where a call's index goes among its grammar elements (Builder._call_sequences)


def _common_length(seqs: Sequence[Sequence[str]], limit: int) -> int:
    """How many leading elements all `seqs` share, at most `limit`."""
    n = 0
    while n < limit and len({seq[n] for seq in seqs}) == 1:
        n += 1
    return n

# The longest run of whitespace the grammar lets through between reasoning and a forced section.
MAX_GAP_WHITESPACE = 2


@dataclass(frozen=True)
class GrammarOptions:
    # ToolChoice, or OpenAI's form: "auto" | "none" | "required" | {"type": "function", "function": {"name": N}}
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    first_index: int = 0  # tool calls earlier in the conversation (Kimi's functions.NAME:IDX)
    max_calls: int = 8  # calls per turn: bounds the grammar so a weak model cannot loop
    reasoning: bool = True  # allow the dialect's reasoning block first (left unconstrained)
    # the prompt already opened the think block (a thinking template ends with `<think>`): the
    # output starts inside it and must close it
    think_open: bool = False
    # response_format: None (free text), True (any JSON object) or a JSON schema the content must match
    content_schema: Any = None
    # properties a schema does not declare (constrained.schema): "forbid" (never generated) or
    # "schema" (JSON Schema's meaning: allowed unless additionalProperties says otherwise)
    additional_properties: str = "forbid"  # tool arguments
    content_additional_properties: str = "schema"  # response_format (its `strict: true` -> "forbid")

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_choice", ToolChoice.parse(self.tool_choice))
        for name in ("additional_properties", "content_additional_properties"):
            if getattr(self, name) not in ADDITIONAL_PROPERTIES:
                raise ToolSpecError(f"{name} must be one of {', '.join(ADDITIONAL_PROPERTIES)}, got {getattr(self, name)!r}", name)

    def key(self) -> str:
        return json.dumps(
            [self.tool_choice.to_openai(), self.parallel_tool_calls, self.first_index, self.max_calls, self.reasoning,
             self.content_schema, self.additional_properties, self.content_additional_properties, self.think_open],
            sort_keys=True,
        )


def content_from_response_format(response_format: Mapping | None) -> tuple[Any, str]:
    """OpenAI `response_format` -> (GrammarOptions.content_schema, .content_additional_properties).

    As with OpenAI, `json_schema.strict: true` closes every object to its declared properties;
    otherwise the schema means what JSON Schema says."""
    if not response_format or response_format.get("type", "text") == "text":
        return None, "schema"
    if response_format["type"] == "json_object":
        return True, "schema"
    if response_format["type"] == "json_schema":
        spec = response_format.get("json_schema") or {}
        if not isinstance(spec.get("schema"), Mapping):
            raise ToolSpecError("response_format.json_schema.schema must be a JSON schema object", "response_format")
        return dict(spec["schema"]), "forbid" if spec.get("strict") is True else "schema"
    raise ToolSpecError(f"response_format type {response_format['type']!r} is not one of text, json_object, json_schema", "response_format")


@dataclass(frozen=True)
class PreparedTool:
    """A tool whose name the dialect can write and whose parameters are normalised."""

    name: str
    schema: NormalizedSchema


def prepare_tools(dialect: Dialect, tools: Sequence[Tool | Mapping] | None, additional_properties: str = "forbid") -> list[PreparedTool]:
    """Check names and normalise each tool's parameters; errors name the tool and the keyword path."""
    typed = as_tools(tools)
    seen: set[str] = set()
    out = []
    for i, tool in enumerate(typed):
        param = f"tools[{i}].function.name"
        problems = dialect.name_problems(tool.name)
        if problems:
            raise ToolSpecError(problems[0], param)
        if tool.name in seen:
            raise ToolSpecError(f"duplicate tool name {tool.name!r}", param)
        seen.add(tool.name)
        try:
            schema = normalize(tool.parameters, additional_properties=additional_properties)
        except UnsupportedSchemaError as err:
            raise err.with_context(source="tool", tool=tool.name, tool_index=i) from None
        problems = dialect.name_problems(tool.name, argument_names(schema.schema))
        if problems:
            raise ToolSpecError(problems[0], f"tools[{i}].function.parameters")
        out.append(PreparedTool(tool.name, schema))
    return out


def argument_names(schema: Any) -> list[str]:
    """The top-level property names of a parameters schema."""
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    return list(props) if isinstance(props, Mapping) else []


def selected_tools(tools: list[PreparedTool], tool_choice: ToolChoice) -> tuple[str, list[PreparedTool]]:
    """-> (mode, tools the grammar may call); mode is auto | none | required | named."""
    if tool_choice.mode == "auto":
        return ("auto", tools) if tools else ("none", [])
    if tool_choice.mode == "none":
        return "none", []
    if tool_choice.mode == "required":
        if not tools:
            raise ToolSpecError("tool_choice 'required' needs at least one tool", "tool_choice")
        return "required", tools
    for tool in tools:
        if tool.name == tool_choice.name:
            return "named", [tool]
    raise ToolSpecError(f"tool_choice names {tool_choice.name!r}, which is not in tools", "tool_choice")


def token_element(token_id: int) -> str:
    """The grammar element for a marker that is one token: ``Token(id)``, with a dead alternative
    that spells the id. xgrammar 0.2.8 hashes a rule for its cross-grammar mask cache without the
    ids of its ``Token`` edges, so two rules alike but for a marker's id would share masks (one
    grammar would allow the other's marker). The alternative makes the hash depend on the id, and
    matches nothing: it begins with two `tokenizer.MARKER_BYTE`s, which no token of the grammar's
    vocabulary spells (`compiler.marker_tokenizer_info`)."""
    return f'(Token({token_id}) | "\\x01\\x01" {E.literal(str(token_id))})'


class _Builder:
    def __init__(self, dialect: Dialect, token_ids: Mapping[str, int]):
        self.d = dialect
        self.token_ids = {m: i for m, i in token_ids.items() if m in dialect.special_tokens}
        self.rules: dict[str, str] = {}

    def lit(self, text: str) -> str:
        """A literal, with each special-token marker in it forced as its token."""
        parts, i = [], 0
        while i < len(text):
            hit = min(((text.find(m, i), m) for m in self.token_ids if text.find(m, i) >= 0), default=None)
            if hit is None:
                parts.append(E.literal(text[i:]))
                break
            pos, marker = hit
            if pos > i:
                parts.append(E.literal(text[i:pos]))
            parts.append(self.marker(self.token_ids[marker]))
            i = pos + len(marker)
        return " ".join(parts) if parts else '""'

    def marker(self, token_id: int) -> str:
        """A rule per marker token, referenced wherever the marker comes: xgrammar makes a rule of
        every parenthesized choice written inline, so `token_element` written into each call
        alternative would be ~3 rules per tool and position (Kimi, 100 tools: 2,400 of 3,021)."""
        rule = f"marker_{token_id}"
        self.rules.setdefault(rule, token_element(token_id))
        return rule

    def free_text(self, rule: str, excludes: Sequence[str]) -> str:
        # special tokens are spelled with \x01 in the grammar's vocabulary (compiler.py): never text
        excludes = [*excludes, "\x01"]
        ex = ", ".join(E.literal(x) for x in excludes)
        self.rules[rule] = f"TagDispatch(loop_after_dispatch=false, excludes=({ex}{',' if len(excludes) == 1 else ''}))"
        return rule

    def call(self, tools: list[PreparedTool], arg_roots: dict[str, str]) -> str:
        """The call rule of a dialect whose calls carry no index: one for every position."""
        self.rules["call"] = self._factored_calls(self._call_sequences(tools, arg_roots))
        return "call"

    def indexed_call(self, calls: tuple[list[str], list[tuple[str, str]]], k: int, first_index: int) -> str:
        """The call rule of position `k` for a dialect whose calls carry their index (Kimi), from
        `_indexed_calls`."""
        prefix, alternatives = calls
        # the index as a rule of its own: the alternatives then hold no literal, and xgrammar
        # computes the index's masks once per position instead of once per tool and position
        index = f"call_index_{k}"
        self.rules[index] = self.lit(str(first_index + k))
        body = " | ".join("(" + " ".join(p for p in (head, index, tail) if p) + ")" for head, tail in alternatives)
        self.rules[f"call_{k}"] = " ".join([*prefix, f"({body})"])
        return f"call_{k}"

    def _call_sequences(self, tools: list[PreparedTool], arg_roots: dict[str, str]) -> list[list[str]]:
        """Each tool's call as grammar elements, `_INDEX` where the call's index goes."""
        rows = []
        for tool in tools:
            seq, pending = [], ""
            for piece in self.d.pieces:  # type: ignore[attr-defined]
                if isinstance(piece, str):
                    pending += piece
                    continue
                if pending:
                    seq.append(self.lit(pending))
                    pending = ""
                if piece.name == "name":
                    seq.append(self.lit(tool.name))  # its own element: the text around it is the same for every tool
                else:
                    seq.append(_INDEX if piece.name == "index" else arg_roots[tool.name])
            if pending:
                seq.append(self.lit(pending))
            rows.append(seq)
        return rows

    def _factored_calls(self, rows: list[list[str]]) -> str:
        """One call rule for every tool: `P (A1 | A2 | ...) S`, where P and S are the elements every
        tool's call begins and ends with (markers, `{"name": "`), and an element all the
        alternatives have at the same place (`", "arguments": `) is a rule they share. xgrammar
        computes masks for each character of each literal of each alternative: written whole, the
        dialect's text would be computed once per tool (hermes, 100 tools: compile ~116 -> ~66 ms)."""
        if len(rows) == 1:
            return " ".join(rows[0])
        shortest = min(len(r) for r in rows)
        pre = _common_length(rows, shortest - 1)
        suf = _common_length([r[::-1] for r in rows], shortest - 1 - pre)
        middles = [r[pre:len(r) - suf] for r in rows]
        if len({len(m) for m in middles}) == 1:
            for j in range(1, len(middles[0])):  # (not the first: xgrammar inlines a literal rule that begins a sequence)
                if len({m[j] for m in middles}) == 1 and middles[0][j].startswith('"'):
                    self.rules[f"call_part_{j}"] = middles[0][j]
                    for m in middles:
                        m[j] = f"call_part_{j}"
        body = "(" + " | ".join("(" + " ".join(m) + ")" for m in middles) + ")"
        return " ".join([*rows[0][:pre], body, *rows[0][len(rows[0]) - suf:]])

    def _indexed_calls(self, tools: list[PreparedTool], arg_roots: dict[str, str]) -> tuple[list[str], list[tuple[str, str]]]:
        """For a dialect whose calls carry their position's index (Kimi), each position has a call
        rule of its own. What comes before and after the index is the same at every position: one
        rule per tool for each side, shared by the positions, so xgrammar computes the masks of a
        name's characters once, not once per position (Kimi, 100 tools x 8 positions), and the
        prefix every tool shares is written once. -> (that prefix, each tool's (head, tail)); worked
        out once per grammar, for all positions."""
        rows = self._call_sequences(tools, arg_roots)
        common = _common_length(rows, min(seq.index(_INDEX) for seq in rows))
        heads = [seq[common:seq.index(_INDEX)] for seq in rows]
        # What every head ends with (Kimi: the ':' after the name) becomes a rule the heads refer to.
        # xgrammar inlines a rule that refers to no other rule where it begins a sequence, which
        # would copy each name back into every position (a compile of 100 tools took ~2.5x as long).
        shared = _common_length([h[::-1] for h in heads], min(len(h) for h in heads) - 1)
        if shared:
            self.rules["call_before_index"] = " ".join(heads[0][-shared:])
            heads = [h[:-shared] + ["call_before_index"] for h in heads]
        alternatives = []
        for i, (seq, head) in enumerate(zip(rows, heads)):
            at = seq.index(_INDEX)
            sides = []
            for side, part in (("head", head), ("tail", seq[at + 1:])):
                if len(part) > 1 or (side == "head" and part):  # (a head spells the tool's name)
                    self.rules[f"tool_{side}_{i}"] = " ".join(part)
                    part = [f"tool_{side}_{i}"]
                sides.append(" ".join(part))
            alternatives.append((sides[0], sides[1]))
        return rows[0][:common], alternatives

    def section(self, tools: list[PreparedTool], options: GrammarOptions, single: bool) -> str:
        arg_roots = {}
        for i, tool in enumerate(tools):
            frag = self.d.codec.ebnf(tool.schema.schema, f"t{i}_", self.lit)
            self.rules.update(frag.rules)
            arg_roots[tool.name] = frag.root
        n = 1 if single or not options.parallel_tool_calls else max(1, min(options.max_calls, self.d.max_calls or options.max_calls))
        sep = self.lit(self.d.call_separator) if self.d.call_separator else ""
        if self.d.uses_index:
            # Each position has its own index, so positions are nested rules: calls_k ::= call_k (SEP calls_k+1)?
            indexed = self._indexed_calls(tools, arg_roots)
            tail = ""
            for k in range(n - 1, -1, -1):
                call = self.indexed_call(indexed, k, options.first_index)
                self.rules[f"calls_{k}"] = f"{call} {tail}".strip()
                tail = f'("" | ({sep} calls_{k}))'
            calls = "calls_0"
        else:
            call = self.call(tools, arg_roots)
            self.rules["calls"] = f"{call} ({sep} {call}){{0, {n - 1}}}" if n > 1 else call
            calls = "calls"
        body = [self.lit(self.d.section_begin)] if self.d.section_begin else []
        body.append(calls)
        if self.d.section_end:
            body.append(self.lit(self.d.section_end))
        self.rules["section"] = " ".join(body)
        return "section"

    def text(self, content_schema: Any = None, additional_properties: str = "schema") -> str:
        """Free text that cannot be mistaken for calls, or JSON when response_format asks for it."""
        if content_schema is not None:
            if content_schema is True:
                schema = {"type": "object", "additionalProperties": True}
            else:
                try:
                    schema = normalize(content_schema, additional_properties=additional_properties).schema
                except UnsupportedSchemaError as err:
                    raise err.with_context(source="response_format") from None
            fragment = E.json_schema_rules(schema, "content_")
            self.rules.update(fragment.rules)
            return self.wrapped(fragment.root)
        rule = self.free_text("text", self.d.text_excludes)
        if self.d.content_wrapper:
            return self.wrapped(rule)
        if self.d.calls_are_whole_output:
            # A call list is the whole output, so text must not start like one.
            first = E.char_class(self.d.trigger[0] + WHITESPACE)
            self.rules["text_start"] = f'"" | ({first} {rule})'
            return "text_start"
        return rule

    def wrapped(self, rule: str) -> str:
        """Content inside the dialect's content wrapper (Harmony's final channel), if it has one."""
        if not self.d.content_wrapper:
            return rule
        open_, close = self.d.content_wrapper
        self.rules["content"] = " ".join([self.lit(open_), rule] + ([self.lit(close)] if close else []))
        return "content"


# A grammar of this many rules or more, of which this share repeat another's body, has its equal
# rules merged (`ebnf.merge_equal_rules`). Side by side on a loaded machine, merging every grammar:
# the shared corpus (one tool per grammar, most under 500 rules) wrote its text in 1.43 ms instead
# of 0.81 (p50) and compiled no faster; 100-tool sets (490-715 rules, 7-10 % repeated) compiled alike with and
# without; the generated large schemas (20-33 % repeated) compiled up to a third faster.
MERGE_RULES_FROM, MERGE_SHARE_FROM = 500, 0.15


def build_ebnf(
    dialect: Dialect, tools: Sequence[Tool | Mapping] | None, options: GrammarOptions, token_ids: Mapping[str, int]
) -> str:
    mode, chosen = selected_tools(prepare_tools(dialect, tools, options.additional_properties), options.tool_choice)
    b = _Builder(dialect, token_ids)
    head = ""
    if options.reasoning and dialect.reasoning:
        open_, close = dialect.reasoning
        # Where a section may end reasoning (Kimi), reasoning must not spell the section marker,
        # or the parser would end the think block there.
        think = b.free_text("think", [close] + ([dialect.trigger] if dialect.section_ends_reasoning else []))
        if options.think_open:
            b.rules["reasoning"] = f"{think} {b.lit(close)}"
        else:
            b.rules["reasoning"] = f'"" | ({b.lit(open_)} {think} {b.lit(close)})'
        head = "reasoning "
    if mode == "none":
        root = f"{head}{b.text(options.content_schema, options.content_additional_properties)}"
    elif mode == "auto":
        section = b.section(chosen, options, single=False)
        text = b.text(options.content_schema, options.content_additional_properties)
        whole = dialect.calls_are_whole_output or options.content_schema is not None  # JSON content XOR calls
        root = f"{head}({section} | {text})" if whole else f'{head}{text} ("" | {section})'
    else:
        section = b.section(chosen, options, single=(mode == "named"))
        gap = f"[ \\n]{{0, {MAX_GAP_WHITESPACE}}} " if head else ""
        root = f"{head}{gap}{section}"
    rules = {"root": root, **b.rules}
    if len(rules) >= MERGE_RULES_FROM:
        # merged for llguidance too: configs_5 merged in 0.11 s saves 0.11 s of translation and
        # 0.22 s of llguidance's matcher build (its text: 2.1 MB instead of 3.0)
        rules = E.merge_equal_rules(rules, _keeps_its_name, MERGE_SHARE_FROM)
    return "".join(f"{name} ::= {body}\n" for name, body in rules.items())


def _keeps_its_name(rule: str) -> bool:
    """The root, and rules whose name carries what their run-time guard checks."""
    return rule == "root" or GUARDED_KEY_RULE in rule or GUARDED_LENGTH_RULE in rule

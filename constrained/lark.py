"""Our grammars in llguidance's Lark: the same language, for a matcher that computes masks lazily.

xgrammar computes every rule position's token masks before the first token, so a grammar of
thousands of distinct rules (a 300 KB configuration schema: ~7,000 rules) costs seconds to compile
whatever the request (issue 15). llguidance builds its parser in a fraction of that and computes
each mask when it is asked for. This module translates the EBNF that `constrained.grammar` writes
(xgrammar's dialect) into llguidance's Lark, **exactly or not at all**: a construct it cannot
translate without changing the language raises `NotTranslatable`, naming it, so that a caller
keeps xgrammar for that grammar. `tests/test_lark.py` walks both matchers side by side and
compares their masks at every step.

xgrammar parses characters; llguidance splits text into *lexemes* (each string literal or regex
is one) and its lexer is greedy: where two lexemes could both go on, it follows the longer and
never comes back. Two lexemes that can start alike at one position would lose strings xgrammar
accepts (`[ \\n]{0,2}` then `"\\n\\n<"` loses three newlines). So the translation chooses lexemes
that never compete that way:
- a literal is split into one-character lexemes, except a quoted string (`"\\"name\\""`, a JSON
  key or enum value), which stays whole: at a position where quoted strings compete (declared
  keys, an extra key, enum values, a free string), each is one lexeme from quote to quote, so none
  is the beginning of another. A split literal is one rule (`spelled_N`) wherever it is used;
- a JSON string is one lexeme from its opening quote: xgrammar's character loop (`X_sub`) becomes
  a regex, and the quote before it joins it;
- the run-time guarded rules become exact regexes, since llguidance's lexer counts and excludes
  lazily: a guarded length (`json_strlen_g{lo}_{hi}`, `constrained.lengths`) is a string of `lo`
  to `hi` characters (an escape and a surrogate pair are one, as `json.loads` counts), a guarded
  key (`json_keyx_{hex}`, `constrained.keys`) is any key but the declared names, in every spelling
  that decodes to one of them (`"\\u0074ype"` is `type`);
- free text (`TagDispatch` without tags) is one lexeme of text without the excluded strings. It is
  joined with a literal that follows it, and ends with it; otherwise what follows must be a marker
  token (never text to the lexer) or the end.

Other changes of form: `Token(id)` is `<[id]>` (llguidance matches a special token only there, as
our marker vocabulary does for xgrammar, `constrained.compiler`), and the dead alternative written
beside it for xgrammar's cache (`grammar.token_element`) is dropped. xgrammar's lookahead after a
string (`(= ...)`) only prunes its parser's work: our grammars put one of its characters there.

Two differences remain, both stricter on llguidance's side (`tests/test_lark.py` allows exactly
these): llguidance never lets a special token of the vocabulary stand for its text (xgrammar
lets any special token other than the dialect's markers into a string), and it keeps text valid
UTF-8 (xgrammar lets a stray continuation byte into free text).
"""

from __future__ import annotations

import functools
import json
import re

from .ebnf import parse_rules
from .schema.extra_keys import GUARDED_KEY_RULE, decode_names
from .schema.strings import GUARDED_LENGTH_RULE


class NotTranslatable(ValueError):
    """The grammar uses a construct this translation does not keep exact (named in the message)."""


_ELEMENTS = (
    r'"(?:[^"\\]|\\.)*"'  # a string literal
    r"|\[(?:[^\]\\]|\\.)*\]"  # a character class
    r"|Token\(\d+\)"
    r'|Regex\("(?:[^"\\]|\\.)*"(?:,\s*json_string=(?:true|false))?\)'
    r"|TagDispatch\((?:[^()\"]|\"(?:[^\"\\]|\\.)*\"|\((?:[^()\"]|\"(?:[^\"\\]|\\.)*\")*\))*\)"
    r"|\{\s*\d+\s*,\s*-?\d+\s*\}"  # a repetition
    r"|\(="  # a lookahead
    r"|[A-Za-z_][A-Za-z0-9_]*"
)
_TOKEN = re.compile(_ELEMENTS + r"|\s+|.", re.S)
_SIGNIFICANT = re.compile(r"\s*(" + _ELEMENTS + r"|\S)", re.S)  # the tokens but spaces, in one C call
_LOWER_NAME = re.compile(r"[a-z_][a-z0-9_]*$")
_MARKER_RULE = re.compile(r"marker_\d+$")
_DEAD_MARKER = re.compile(r'\|\s*"\\x01\\x01"\s*"\d+"')
_LENGTH = re.compile(r"\w*" + GUARDED_LENGTH_RULE + r"(\d+)_(\d+|n)$")
_KEY = re.compile(r"\w*" + GUARDED_KEY_RULE + r"([0-9a-f]+)$")
_GUARDED_LOOP = re.compile(r"\w*(?:" + GUARDED_LENGTH_RULE + r"\d+_(?:\d+|n)|" + GUARDED_KEY_RULE + r"[0-9a-f]+)_\d+$")
_CLASS = r"\[(?:[^\]\\]|\\.)*\]"
# xgrammar's string loop: the closing quote, or a character and the loop, or an escape and the loop
_STRING_LOOP = re.compile(r'^\(\("\\""\) \| \((' + _CLASS + r') (\w+)\) \| \("\\\\" (\w+) (\w+)\)\)( \(=.*\))?$', re.S)
_ESCAPE_RULE = re.compile(r'^\(\((' + _CLASS + r')\) \| \("u" \[A-Fa-f0-9\] \[A-Fa-f0-9\] \[A-Fa-f0-9\] \[A-Fa-f0-9\]\)\)$')

_H = "[0-9A-Fa-f]"
# One decoded character of JSON string content, as `constrained.schema.strings` writes it for
# guarded rules: a surrogate pair is one character, a lone surrogate is not written.
JSON_CHAR = (rf'(?:[^\x00-\x1f"\\]|\\["\\\/bfnrt]|\\u[0-9A-Ca-cEeFf]{_H}{{3}}|\\u[Dd][0-7]{_H}{{2}}'
             rf"|\\u[Dd][89ABab]{_H}{{2}}\\u[Dd][C-Fc-f]{_H}{{2}})")
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_META = set(r"\.+*?()|[]{}^$#&-~/")


@functools.lru_cache(maxsize=65536)  # a large grammar repeats its few separators thousands of times
def decode_literal(token: str) -> str:
    """The text of an xgrammar string literal (`"..."` with its escapes)."""
    body = token[1:-1]
    if "\\" not in body.replace('\\"', ""):  # no escape but quotes (most keys, `"\\"name\\""`)
        return body.replace('\\"', '"')
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        width = {"x": 2, "u": 4, "U": 8}.get(n)
        if width:
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        else:
            out.append({"n": "\n", "r": "\r", "t": "\t", "0": "\0", "b": "\b", "f": "\f"}.get(n, n))
            i += 2
    return "".join(out)


@functools.lru_cache(maxsize=65536)
def _literal(token: str) -> tuple[str, bool]:
    """The Lark of an xgrammar string literal, and whether it is spelled by characters: one lexeme
    per character, or whole where it is a quoted string or one character (see the module's
    docstring)."""
    text = decode_literal(token)
    if _quoted(text) or len(text) <= 1:
        return json.dumps(text), False
    return " ".join(json.dumps(c) for c in text), True


def regex_escape(text: str) -> str:
    """`text` as a Rust regex that matches it literally (inside Lark's `/.../`)."""
    return "".join("\\" + c if c in _META else c if 0x20 <= ord(c) < 0x7F else _code_point(ord(c)) for c in text)


def _code_point(cp: int) -> str:
    """An escaped code point, in the syntax Rust's regex and Python's re share."""
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def _class_regex(token: str) -> str:
    """An xgrammar character class as a Rust regex class: `[`, `&` and `~` are escaped (Rust reads
    them as nested classes and set operations), `\\0` is NUL, `/` ends Lark's regex."""
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            escaped = body[i:i + 2]
            out.append({"\\0": "\\x00", '\\"': '"', "\\/": "\\/"}.get(escaped, escaped))
            i += 2
            continue
        out.append("\\" + c if c in "[&~/" else c)
        i += 1
    return "[" + "".join(out) + "]"


def spellings(name: str) -> str:
    """A regex of every JSON spelling of the string content `name`: each character as itself where
    JSON allows it, its short escape, or its `\\u` escape in either case."""
    parts = []
    for ch in name:
        cp = ord(ch)
        forms = [regex_escape(ch)] if ch not in '"\\' and cp >= 0x20 else []
        if ch in _SHORT_ESCAPES:
            forms.append(regex_escape(_SHORT_ESCAPES[ch]))
        units = [cp] if cp <= 0xFFFF else [0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)]
        forms.append("".join("\\\\u" + "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{u:04x}") for u in units))
        parts.append("(?:" + "|".join(forms) + ")")
    return "".join(parts)


def _text_regex(excludes: list[str], repeat: str) -> str:
    """A terminal expression: text (`repeat`: "*" or "+" characters) that holds none of `excludes`."""
    text = f"/(?s:.{repeat})/"
    banned = "|".join(regex_escape(x) for x in excludes)
    return f"{text} & ~/(?s:.*(?:{banned}).*)/" if banned else text


def _excludes(tag_dispatch: str) -> list[str]:
    if "loop_after_dispatch=false" not in tag_dispatch or re.search(r"TagDispatch\(\s*\(", tag_dispatch):
        raise NotTranslatable(f"tag dispatch with tags: {tag_dispatch[:80]!r}")
    return [decode_literal(x) for x in re.findall(r'"(?:[^"\\]|\\.)*"', tag_dispatch)]


_PATTERN_RULE = re.compile(r'^Regex\("(?:[^"\\]|\\.)*", json_string=true\)$')
# A string pattern translates as it is when it can match no character that JSON escapes: only
# literal characters and classes of them, and these escapes (xgrammar writes the rest raw, Rust
# regex reads \d and \w as Unicode classes)
_SAFE_ESCAPE = re.compile(r"\\[.\-+*?()|\[\]{}^$/]")


def _regex_text(element: str) -> str:
    """The pattern of a `Regex("...")` element (its literal decoded)."""
    m = re.match(r'Regex\(("(?:[^"\\]|\\.)*")', element)
    if m is None:
        raise NotTranslatable(f"grammar construct {element[:60]!r}")
    return decode_literal(m.group(1))


def _unanchored(pattern: str) -> str:
    """`pattern` without its leading `^` and trailing `$` (a grammar matches it whole anyway)."""
    return re.sub(r"^\^|(?<!\\)\$$", "", pattern)


def _json_pattern(rule_body: str) -> str:
    pattern = _regex_text(rule_body)
    core = _unanchored(pattern)
    plain = _SAFE_ESCAPE.sub("", core)
    if "\\" in plain or "." in plain or "[^" in plain or any(c == '"' or ord(c) < 0x20 for c in core):
        raise NotTranslatable(f"a string pattern that may need JSON escapes: {pattern[:60]!r}")
    for cls in re.findall(r"\[((?:[^\]\\]|\\.)*)\]", core):
        for a, b in re.findall(r"(.)-(.)", cls):
            if ord(a) <= 0x22 <= ord(b) or ord(a) <= 0x5C <= ord(b) or ord(a) < 0x20:
                raise NotTranslatable(f"a string pattern whose class spans characters JSON escapes: {pattern[:60]!r}")
    return core.replace("/", "\\/")


def _quoted(text: str) -> bool:
    return len(text) >= 2 and text[0] == text[-1] == '"'


def _json_string(text: str) -> bool:
    """Is `text` one whole JSON string, quotes and all (so no such text begins another)?"""
    if not _quoted(text):
        return False
    try:
        return isinstance(json.loads(text), str)
    except ValueError:
        return False


class _Translation:
    def __init__(self, ebnf: str):
        self.rules = parse_rules(ebnf)
        self.tokens = {name: _significant(body) for name, body in self.rules.items()}  # each body tokenized once
        # Lark rule names are lower case: others get a name of their own
        self.names = {n: n if _LOWER_NAME.match(n) else f"r{k}_{n.lower()}" for k, n in enumerate(self.rules)}
        self.terminals: dict[str, str] = {}  # terminal expression -> its name
        # free-text rules (a TagDispatch without tags) -> the strings their text excludes
        self.free_text = {name: _excludes(body) for name, body in self.rules.items() if body.startswith("TagDispatch(")}
        # string rules -> the regex of a string's content and closing quote (the opening quote is the user's)
        self.strings: dict[str, str] = {}
        self.excluded_keys: dict[str, str] = {}  # guarded key rules -> the regex of the names they exclude
        for name, body in self.rules.items():
            if m := _LENGTH.match(name):
                self.strings[name] = f'{JSON_CHAR}{{{m.group(1)},{"" if m.group(2) == "n" else m.group(2)}}}"'
            elif m := _KEY.match(name):
                self.strings[name] = f'{JSON_CHAR}*"'
                self.excluded_keys[name] = "|".join(spellings(n) for n in sorted(decode_names(m.group(1))))
            elif (loop := self._string_loop(name, body)) is not None:
                self.strings[name] = loop
        # rules of a string pattern (`Regex(..., json_string=true)`) -> its regex, quotes excluded
        self.patterns = {name: _json_pattern(body) for name, body in self.rules.items() if _PATTERN_RULE.match(body)}
        self._regular: dict[str, str | None] = {}  # `regular`'s answers
        # literals spelled by characters -> the one rule that spells each (see `literal`)
        self.spelled: dict[str, str] = {}
        self._taken = set(self.names.values())
        # references that `element` writes as the rule's own name (most tokens of a large grammar)
        self.plain = {n: self.names[n] for n in self.rules if n not in self.free_text and n not in self.patterns}

    def _string_loop(self, name: str, body: str) -> str | None:
        """xgrammar's character loop of a string (`json_string_sub`) as a regex, or None."""
        m = _STRING_LOOP.match(body)
        if not m or m.group(2) != name or m.group(4) != name:
            return None
        escape = _ESCAPE_RULE.match(self.rules.get(m.group(3), ""))
        if not escape:
            return None
        return f'(?:{_class_regex(m.group(1))}|\\\\(?:{_class_regex(escape.group(1))}|u{_H}{{4}}))*"'

    def terminal(self, expression: str) -> str:
        if expression not in self.terminals:
            self.terminals[expression] = f"T{len(self.terminals)}"
        return self.terminals[expression]

    def string_terminal(self, rule: str, opening: str = "") -> str:
        """The terminal of a string rule, with the literal `opening` before it joined."""
        regex = f"/{regex_escape(opening)}{self.strings[rule]}/"
        if rule in self.excluded_keys:
            regex += f" & ~/{regex_escape(opening)}(?:{self.excluded_keys[rule]})\"/"
        return self.terminal(regex)

    def lark(self) -> str:
        # no_forcing: where text is forced, every token that spells a prefix of it stays allowed
        # (xgrammar's mask), not only the forced text's own tokenization
        lines = ['%llguidance {"no_forcing": true}', "start: root"]
        for name, body in self.rules.items():
            if _GUARDED_LOOP.match(name):
                continue  # the loop of a guarded rule: the guarded rule's regex holds it
            lines.append(f"{self.names[name]}: {self.rule(name, body)}")
        self.check_free_text()
        lines += [f"{n}: {spelling}" for spelling, n in self.spelled.items()]
        lines += [f"{t}: {d}" for d, t in self.terminals.items()]
        return "\n".join(lines) + "\n"

    def rule(self, name: str, body: str) -> str:
        if name in self.strings:
            return self.string_terminal(name)
        if name in self.patterns:
            return self.terminal(f"/{self.patterns[name]}/")
        if _MARKER_RULE.match(name):
            return self.body(_significant(_DEAD_MARKER.sub("", body)))
        quoted = self.quoted_choice(name)
        if quoted is not None:
            return quoted
        return self.body(self.tokens[name])

    def quoted_choice(self, name: str) -> str | None:
        """A rule that is a choice of quoted strings (an enum) as one lexeme: quoted strings are
        never the beginning of one another, so one regex holds them all, and llguidance's parser
        gets one item where it would get one per value (it refuses rows of over 2,000 items)."""
        tokens = self.tokens[name]
        if "|" not in tokens or not all(t in ("(", ")", "|") or t[0] == '"' for t in tokens):
            return None  # (most rules: a cheap test before the alternatives are taken apart)
        alternatives = _flat_alternatives(tokens)
        if len(alternatives) < 2 or not all(len(a) == 1 and a[0][0] == '"' and _json_string(decode_literal(a[0])) for a in alternatives):
            return None
        return self.terminal("/" + "|".join(regex_escape(decode_literal(a[0])) for a in alternatives) + "/")

    def body(self, tokens: list[str]) -> str:
        out: list[str] = []  # elements, joined by spaces; an operator joins the element before it
        starts: list[int] = []  # where each open group began in `out`
        choices: list[bool] = []  # whether each open group has a `|` of its own
        last_atom = 0  # where the last complete atom began in `out`
        i = 0
        while i < len(tokens):
            t = tokens[i]
            i += 1
            if t == "|":
                out.append(t)
                if choices:
                    choices[-1] = True
            elif t in ("*", "+", "?"):  # postfix operators read the same in Lark
                out[-1] += t
            elif t == "(":
                starts.append(len(out))
                choices.append(False)
                out.append(t)
            elif t == ")":
                # a group nothing repeats is written without its parentheses where that reads the
                # same: it has no choice, or it is a whole alternative (xgrammar writes every body
                # as `((A) | (B))`; llguidance parses and builds ~20 % faster without them)
                start, choice = starts.pop(), choices.pop()
                after = tokens[i] if i < len(tokens) else "|"
                if after[0] != "{" and after not in ("*", "+", "?") and (
                        not choice or ((start == 0 or out[start - 1] in ("|", "(")) and after in ("|", ")"))):
                    del out[start]
                    if choice and choices:  # its `|` is now the enclosing group's own
                        choices[-1] = True
                else:
                    out.append(t)
                last_atom = start
            elif t[0] == "{":
                lo, hi = (int(x) for x in t[1:-1].split(","))
                atom = " ".join(out[last_atom:])
                del out[last_atom:]
                out.append(f"({atom})*" if (lo, hi) == (0, -1) else f"({atom})+" if (lo, hi) == (1, -1)
                           else f"({atom}){{{lo}}} ({atom})*" if hi < 0 else f"({atom}){{{lo},{hi}}}")
            elif t in self.plain:
                last_atom = len(out)
                out.append(self.plain[t])
            else:
                last_atom = len(out)
                element, consumed = self.element(t, tokens, i)
                out.append(element)
                i += consumed
        return " ".join(out)

    def element(self, t: str, tokens: list[str], i: int) -> tuple[str, int]:
        """The Lark of the element `t` (`tokens[i:]` follow it), and how many tokens after `t` it
        took in (a string's closing quote, the literal that ends free text)."""
        after = tokens[i:i + 2]
        if (t == '"\\""' and len(after) == 2 and after[1] == t and not _repeated(tokens, i + 1)
                and (inner := self.between_quotes(after[0])) is not None):
            return self.terminal(f'/"(?:{inner})"/'), 2  # a pattern or a regular rule between quotes, quotes and all
        if t[0] == '"' and after and after[0] in self.strings and not _repeated(tokens, i):
            return self.string_terminal(after[0], decode_literal(t)), 1  # a string and its opening
        if t in self.free_text and _joins(tokens, i):
            literal = decode_literal(after[0])  # free text, ended by the literal after it
            return self.terminal(f"({_text_regex(self.free_text[t], '*')}) {json.dumps(literal)}"), 1
        if t in self.patterns:
            raise NotTranslatable(f"a string pattern ({t}) used without its quotes")
        return self.atom(t), 0

    def between_quotes(self, name: str) -> str | None:
        """The regex of what rule `name` writes between two quotes: a string pattern's, or a
        regular rule's; None otherwise."""
        if name in self.patterns:
            return self.patterns[name]
        return self.regular(name) if name in self.rules else None

    def regular(self, name: str, active: frozenset[str] = frozenset()) -> str | None:
        """The regex of rule `name` where it is regular (characters, literals, repetitions, rules
        that are regular in turn, and right recursion `R ::= (P R) | B`, which is `P*B`); None
        otherwise. Memoized per rule."""
        if name in self._regular:
            return self._regular[name]
        if name in active or name in self.strings or name in self.free_text or name in self.patterns:
            return None
        looping, ending = [], []
        for alt in _flat_alternatives(self.tokens[name]):
            if alt and alt[-1] == name:
                looping.append(alt[:-1])
            else:
                ending.append(alt)
        parts = [self._regular_sequence(alt, active | {name}) for alt in looping + ending]
        if any(p is None for p in parts) or not ending:
            self._regular[name] = None
            return None
        loop = "|".join(parts[:len(looping)])  # type: ignore[arg-type]
        regex = (f"(?:{loop})*" if loop else "") + "(?:" + "|".join(parts[len(looping):]) + ")"  # type: ignore[arg-type]
        self._regular[name] = regex
        return regex

    def _regular_sequence(self, tokens: list[str], active: frozenset[str]) -> str | None:
        out: list[str] = []
        i = 0
        while i < len(tokens):
            t = tokens[i]
            i += 1
            if t == "(":
                alternatives, after = _alternatives(tokens, i - 1)
                parts = [self._regular_sequence(alt, active) for alt in alternatives]
                if any(p is None for p in parts):
                    return None
                out.append("(?:" + "|".join(parts) + ")")  # type: ignore[arg-type]
                i = after
            elif t[0] == "{":
                lo, hi = (int(x) for x in t[1:-1].split(","))
                out[-1] = f"(?:{out[-1]}){{{lo},{'' if hi < 0 else hi}}}"
            elif t in ("*", "+", "?"):
                out[-1] = f"(?:{out[-1]}){t}"
            elif t[0] == '"':
                out.append(regex_escape(decode_literal(t)))
            elif t[0] == "[":
                out.append(_class_regex(t))
            elif t in self.rules:
                inner = self.regular(t, active)
                if inner is None:
                    return None
                out.append(f"(?:{inner})")
            else:
                return None
        return "".join(out)

    def atom(self, t: str) -> str:
        if t[0] == '"':
            return self.literal(t)
        if t[0] == "[":
            return f"/{_class_regex(t)}/"
        if t.startswith("Token("):
            return f"<[{t[6:-1]}]>"
        if t.startswith("Regex("):
            if "json_string=true" in t:
                raise NotTranslatable(f"a string pattern outside its quotes: {t[:80]!r}")
            return self.regex(t)
        if t.startswith("TagDispatch("):
            return self.terminal(_text_regex(_excludes(t), "+")) + "?"
        if t in self.rules:
            return self.names[t]
        raise NotTranslatable(f"grammar construct {t!r}")

    def literal(self, token: str) -> str:
        """A literal whole, or the rule that spells it by characters: one rule for all its uses,
        not a group at each (llguidance makes a terminal of each character it is written with and
        a rule of each group: the 3,500 `", "` and 5,500 `": "` of a large schema's grammar were
        18,000 of its 26,000 terminals, and building it took ~25 % longer)."""
        lark, spelled = _literal(token)
        if not spelled:
            return lark
        if lark not in self.spelled:
            name = f"spelled_{len(self.spelled)}"
            while name in self._taken:
                name += "_"
            self.spelled[lark] = name
        return self.spelled[lark]

    def regex(self, t: str) -> str:
        return self.terminal(f"/{_unanchored(_regex_text(t)).replace('/', chr(92) + '/')}/")

    def check_free_text(self) -> None:
        """Free text is a greedy lexeme: a literal after it is joined to it (and must end it: hold
        an excluded string, or be followed by a marker token); otherwise a marker token, or the
        end, must follow it."""
        for owner, tokens in self.tokens.items():
            for k, t in enumerate(tokens):
                if t not in self.free_text:
                    continue
                after = tokens[k + 1:]
                if _joins(tokens, k + 1):
                    literal = decode_literal(after[0])
                    if any(x in literal for x in self.free_text[t]) or self.token_first(after[1:], owner):
                        continue
                stops = {x for x in self.free_text[t] if len(x) == 1}
                if not self.token_first(after, owner, stops=stops):
                    raise NotTranslatable(f"free text ({t}) followed by {' '.join(after[:3])!r}, not a marker token")

    def token_first(self, tokens: list[str], owner: str, depth: int = 0, stops: frozenset[str] | set[str] = frozenset()) -> bool:
        """Does every way through `tokens` (what follows an element in `owner`'s body) start with
        a marker token, a character of `stops` (one the free text before cannot hold, so its
        lexeme ends there), or end the grammar? Conservative: False when the search runs too deep."""
        if depth > 12:
            return False
        if not tokens or tokens[0] in (")", "|"):
            if owner == "root":
                return True
            uses = [(user, k) for user, tokens_ in self.tokens.items() for k, t in enumerate(tokens_) if t == owner]
            return all(self.token_first(self.tokens[user][k + 1:], user, depth + 1, stops) for user, k in uses)
        first = tokens[0]
        if _MARKER_RULE.match(first) or first.startswith("Token("):
            return True
        if first[0] == '"' and first != '""':
            return decode_literal(first)[0] in stops
        if first == "(":
            alternatives, end = _alternatives(tokens)
        elif first in self.rules:
            alternatives, end = _alternatives(["(", *self.tokens[first], ")"])[0], 1
        elif first == '""':
            alternatives, end = [[]], 1
        else:
            return False
        rest = tokens[end:]
        optional = bool(rest) and re.match(r"\{\s*0\s*,", rest[0]) is not None
        if rest and rest[0][0] == "{":
            rest = rest[1:]
        return all(self.token_first(alt + rest, owner, depth + 1, stops) for alt in alternatives) and (
            not optional or self.token_first(rest, owner, depth + 1, stops))


def _repeated(tokens: list[str], k: int) -> bool:
    """Is the element `tokens[k]` repeated (a `{m, n}` after it)? Such an element is not joined."""
    return k + 1 < len(tokens) and tokens[k + 1][0] == "{"


def _joins(tokens: list[str], k: int) -> bool:
    """Does free text before `tokens[k]` join it: a non-empty literal, not repeated?"""
    return k < len(tokens) and tokens[k][0] == '"' and tokens[k] != '""' and not _repeated(tokens, k)


def _flat_alternatives(tokens: list[str]) -> list[list[str]]:
    """The alternatives of a sequence, with groups around the whole of one opened (`((A) | (B))`
    is A, B)."""
    while tokens and tokens[0] == "(" and _alternatives(tokens)[1] == len(tokens):
        tokens = tokens[1:-1]
    alternatives = _top_level(tokens)
    if len(alternatives) == 1:
        return alternatives
    return [flat for alt in alternatives for flat in _flat_alternatives(alt)]


def _top_level(tokens: list[str]) -> list[list[str]]:
    """`tokens` split at their `|` outside groups."""
    if "|" not in tokens:
        return [tokens]
    alternatives: list[list[str]] = [[]]
    depth = 0
    for t in tokens:
        if t == "|" and depth == 0:
            alternatives.append([])
            continue
        depth += (t == "(") - (t == ")")
        alternatives[-1].append(t)
    return alternatives


def _significant(body: str) -> list[str]:
    """The tokens of a rule body without spaces and without lookaheads (`(= ...)`), which only
    prune xgrammar's parser: our grammars put one of their characters where they look."""
    if "(=" not in body:
        return _SIGNIFICANT.findall(body)
    out: list[str] = []
    depth = 0  # inside a lookahead: its open parentheses
    for t in _TOKEN.findall(body):
        if depth:
            depth += (t in ("(", "(=")) - (t == ")")
        elif t == "(=":
            depth = 1
        elif not t.isspace():
            out.append(t)
    return out


def _alternatives(tokens: list[str], start: int = 0) -> tuple[list[list[str]], int]:
    """The top-level alternatives of the group that `tokens[start]` opens, and the index after it."""
    alternatives: list[list[str]] = [[]]
    depth = 0
    for k in range(start + 1, len(tokens)):
        t = tokens[k]
        if t == "(":
            depth += 1
        elif t == ")":
            if depth == 0:
                return alternatives, k + 1
            depth -= 1
        if t == "|" and depth == 0:
            alternatives.append([])
        else:
            alternatives[-1].append(t)
    return alternatives, len(tokens)


def to_lark(ebnf: str) -> str:
    """`ebnf` (a grammar `constrained.grammar` wrote) in llguidance's Lark; `NotTranslatable` when
    a construct cannot be translated exactly."""
    return _Translation(ebnf).lark()

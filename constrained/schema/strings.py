"""String length bounds as exact EBNF: xgrammar's own rule for ``minLength``/``maxLength`` is
rewritten into one that counts decoded characters, escapes included.

xgrammar (0.2.8 and 0.2.9) writes ``{"type": "string", "maxLength": 8}`` as
``"\\"" root_characters{0, 8} "\\""`` with ``root_characters ::= [^"\\\\\\r\\n]`` (bounds {1, 1} and
{0, 1} with the class inline or in an optional rule; all three are rewritten): an escape
(``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX``) cannot appear at all, and raw control characters can.
JSON Schema counts the characters of the decoded string, so an escape is one character wherever a
character may be. `exact_string_lengths` replaces each such rule by a chain that does:

    strlen_m{k}_{tail} ::= CHAR strlen_m{k-1}_{tail}          # k more characters needed first
    strlen_s{k}        ::= "\\"" | CHAR strlen_s{k-1}            # then at most k more
    strlen_s0          ::= "\\""

where CHAR is one unescaped character (not a control character, quote or backslash) or one escape
(a ``\\uD8xx\\uDCxx`` surrogate pair is one character, as ``json.loads`` reads it; lone surrogates
are not characters and are not written). The chain ends in ``basic_string_sub`` (any rest) when
there is no maximum. Every rule carries the lookahead of xgrammar's own string rule, so a token
that closes the string is decided when the grammar is compiled.

Why a chain: every rule holds the whole rest of the string, so the token masks are computed when
the grammar is compiled and filling one costs tens of microseconds, as for a free string. The
price is compile time linear in the bound (one set of masks per character, ~25-35 ms on a 129k
vocabulary). Counted repetition decomposed into O(log n) rules compiles in ~5 ms at any bound,
but then each rule ends after a character or two and xgrammar 0.2.8 decides almost every token of
the vocabulary at run time: 25-160 ms per token inside such a string (benchmarks in
``benchmarks/results/coverage.md``). xgrammar 0.2.9's native repetition is fast only for a single
character class (no escapes); with an escape-aware unit it takes seconds per token. So the chain
is used up to ``LENGTH_CHAIN_LIMIT`` characters; a larger bound (either one) makes the string one
*guarded* rule, ``basic_strlen_g{lo}_{hi}`` (any content, then the quote), whose characters
`constrained.lengths` counts at run time beside xgrammar's matcher.

Rules are named ``basic_strlen_*``: like xgrammar's ``basic_*`` rules they depend only on the
bounds, so ``constrained.ebnf`` shares them between the tools of a request.
"""

from __future__ import annotations

import re

# Bounds up to this are written as an exact chain; larger ones as one guarded rule, counted at run
# time by `constrained.lengths`.
LENGTH_CHAIN_LIMIT = 8
GUARDED_LENGTH_RULE = "strlen_g"  # in a rule's name: its length guard (constrained.lengths) reads it


def guarded_rule_name(prefix: str, lo: int, hi: int) -> str:
    """The name of the guarded rule for ``lo``..``hi`` characters (``hi`` < 0: no maximum)."""
    return f"{prefix}{GUARDED_LENGTH_RULE}{lo}_{hi if hi >= 0 else 'n'}"

# xgrammar's printed rules for a string with length bounds: `"\"" NAME_characters{lo, hi} "\""`
# with the character rule below; for {1, 1} the class inline; for {0, 1} an optional rule.
_CLASS = r'\[\^\\"\\\\\\r\\n\]'
# One pattern for the three (from the rule's ` ::= `, so that the regex engine searches for its
# literal start instead of trying every line: 10x faster on a megabyte of grammar); group 1-3: a
# bounded character rule, none: the class inline ({1, 1}), 4: a wrapped rule ({0, 1} if optional)
_STRING_RULE = re.compile(r' ::= \(\("\\"" (?:(\w+)\{(\d+), (-?\d+)\}|' + _CLASS + r'|(\w+)) "\\""\)\)$', re.M)
_NAME = re.compile(r"\w+")
_CHARACTERS = re.compile(r'\(\(' + _CLASS + r'\)\)')  # the body of the character rule
_OPTIONAL = re.compile(r'\(""\s*\|\s*\(' + _CLASS + r'\)\)')  # the body of the optional character
_RULE = re.compile(r"^(\w+) ::= (.*)$", re.M)

_HEX = "[A-Fa-f0-9]"
# The follow set of a JSON string, as xgrammar's own basic_string_sub asserts it.
_LOOKAHEAD = r"(=([ \n\r\t]* [,}\]:]))"


def _char_alternatives(rest: str) -> list[str]:
    """One decoded character, then ``rest``: inlined so that the masks stay in one rule."""
    h = _HEX
    return [
        rf'([^\0-\x1f\"\\] {rest})',
        rf'("\\" [\"\\/bfnrt] {rest})',
        rf'("\\" "u" [0-9A-Ca-cEeFf] {h} {h} {h} {rest})',
        rf'("\\" "u" [Dd] [0-7] {h} {h} {rest})',
        rf'("\\" "u" [Dd] [89ABab] {h} {h} "\\" "u" [Dd] [C-Fc-f] {h} {h} {rest})',
    ]


def _at_most(k: int, rules: dict[str, str]) -> str:
    """Rule for: at most ``k`` more characters, then the closing quote."""
    name = f"basic_strlen_s{k}"
    if name not in rules:
        body = ['("\\"")'] + (_char_alternatives(_at_most(k - 1, rules)) if k else [])
        rules[name] = f"({' | '.join(body)}) {_LOOKAHEAD}"
    return name


def _at_least(k: int, tail: str, tag: str, rules: dict[str, str]) -> str:
    """Rule for: exactly ``k`` characters, then ``tail`` (named by ``tag``)."""
    if k == 0:
        return tail
    name = f"basic_strlen_m{k}_{tag}"
    if name not in rules:
        rules[name] = f"({' | '.join(_char_alternatives(_at_least(k - 1, tail, tag, rules)))}) {_LOOKAHEAD}"
    return name


def _guarded(low: int, high: int, rules: dict[str, str]) -> str:
    """Rule for any string content and the closing quote, named for the bounds that
    `constrained.lengths` counts at run time."""
    name = guarded_rule_name("basic_", low, high)
    if name not in rules:
        rules[name] = any_content_rule()
    return name


def any_content_rule() -> str:
    """The body of a guarded string rule: any characters (escapes whole), then the closing quote."""
    h = _HEX
    char = (rf'[^\0-\x1f\"\\] | "\\" [\"\\/bfnrt] | "\\" "u" [0-9A-Ca-cEeFf] {h} {h} {h} | "\\" "u" [Dd] [0-7] {h} {h}'
            rf' | "\\" "u" [Dd] [89ABab] {h} {h} "\\" "u" [Dd] [C-Fc-f] {h} {h}')
    return f'(({char})* "\\"") {_LOOKAHEAD}'


def string_rule(low: int, high: int, rules: dict[str, str]) -> str:
    """The rule (added to ``rules``) for the rest of a string after its opening quote, holding
    ``low`` to ``high`` decoded characters (``high == -1``: no maximum)."""
    if low > LENGTH_CHAIN_LIMIT or high > LENGTH_CHAIN_LIMIT:
        return _guarded(low, high, rules)
    if high < 0:
        return _at_least(low, "basic_string_sub", "f", rules)
    return _at_least(low, _at_most(high - low, rules), f"s{high - low}", rules)


def exact_string_lengths(ebnf: str) -> str:
    """xgrammar's printed grammar with every length-bounded string rule made exact (see above)."""
    added: dict[str, str] = {}
    unused: set[str] = set()  # xgrammar's character rules, replaced
    bodies: dict[str, str] = {}  # rule name -> body, read once when a rule refers to another

    def body(name: str) -> str:
        if not bodies:
            bodies.update(_RULE.findall(ebnf))
        return bodies.get(name, "")

    out: list[str] = []
    done = 0  # ebnf[:done] is in out
    for m in _STRING_RULE.finditer(ebnf):
        start = ebnf.rfind("\n", 0, m.start()) + 1
        name = ebnf[start:m.start()]
        if not _NAME.fullmatch(name):
            continue  # ` ::= ` inside another rule's literal
        if m.group(1) is not None:  # "\"" characters{lo, hi} "\""
            if _CHARACTERS.fullmatch(body(m.group(1))):
                unused.add(m.group(1))
            low, high = int(m.group(2)), int(m.group(3))
        elif m.group(4) is None:  # "\"" [class] "\"": exactly one character
            low, high = 1, 1
        elif _OPTIONAL.fullmatch(body(m.group(4))):  # "\"" optional "\"": {0, 1}
            unused.add(m.group(4))
            low, high = 0, 1
        else:
            continue
        out += [ebnf[done:start], f'{name} ::= (("\\"" {string_rule(low, high, added)}))']
        done = m.end()
    if not added:
        return ebnf
    out.append(ebnf[done:])
    text = "".join(out)
    if unused:
        text = "".join(line for line in text.splitlines(keepends=True) if line.split(" ::= ", 1)[0] not in unused)
    return text.rstrip("\n") + "\n" + "".join(f"{name} ::= {body}\n" for name, body in added.items())

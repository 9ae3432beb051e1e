"""The dialects, one declaration each. Add a dialect by writing a file here and listing it below."""

from constrained.dialect import Dialect

from .hermes import HERMES
from .kimi_k2 import KIMI_K2
from .minimax_m1 import MINIMAX_M1
from .pythonic import PYTHONIC

DIALECTS: dict[str, Dialect] = {d.name: d for d in (KIMI_K2, MINIMAX_M1, PYTHONIC, HERMES)}


def get_dialect(name: "str | Dialect") -> Dialect:
    if isinstance(name, Dialect):
        return name
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; known dialects: {', '.join(DIALECTS)}") from None

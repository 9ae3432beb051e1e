"""JSON Schema normalisation for xgrammar (tool-call arguments and response formats).

``normalize(schema)`` turns a user schema into one that
``xgrammar.Grammar.from_json_schema(s, any_whitespace=False, strict_mode=True)`` compiles and
enforces faithfully, and lists the constraints the grammar cannot enforce so that they are
checked after decoding by ``validate``. The package, by job:

- ``keywords``: the keyword-by-keyword table (what is enforced, rewritten, checked later, refused)
  and the vocabularies the passes share;
- ``canonical``: pass 1, the user's meaning as draft 2020-12 (type names mapped);
- ``build``: pass 2, the schema xgrammar gets; ``patterns``: regexes in full-match form;
- ``normalize``: the two passes behind one function; ``validate``: jsonschema after decoding.
"""

from __future__ import annotations

from ..errors import UnsupportedSchemaError
from .build import Unenforced
from .keywords import ADDITIONAL_PROPERTIES, DATE_PATTERN
from .normalize import NormalizedSchema, normalize
from .validate import unenforced_violations, validate

__all__ = [
    "ADDITIONAL_PROPERTIES",
    "DATE_PATTERN",
    "NormalizedSchema",
    "Unenforced",
    "UnsupportedSchemaError",
    "normalize",
    "unenforced_violations",
    "validate",
]

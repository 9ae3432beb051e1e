"""`normalize(schema)`: a user's schema -> the schema xgrammar compiles (`NormalizedSchema.schema`),
its draft 2020-12 meaning (`.validation`) and what the grammar cannot enforce (`.unenforced`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .build import Unenforced, _Builder, _is_free_object
from .canonical import _Canonicalizer, draft_of
from .checks import check_depth, check_schema
from .keywords import ADDITIONAL_PROPERTIES


@dataclass(frozen=True)
class NormalizedSchema:
    schema: dict
    unenforced: tuple[Unenforced, ...]
    original: Any
    # Draft 2020-12 form with the user's meaning (type names mapped); what ``validate`` checks.
    validation: Any = field(default=None, repr=False, compare=False)
    # Refs of ``validation`` to targets copied under ``$defs`` -> the user's path of the target.
    ref_paths: dict = field(default_factory=dict, repr=False, compare=False)
    # The draft the schema declares with ``$schema`` (3, 4, 6, 7, 2019, 2020; 2020 when none).
    draft: int = field(default=2020, compare=False)


def normalize(schema: dict | bool | None, *, additional_properties: str = "forbid") -> NormalizedSchema:
    """Normalise a tool's parameter schema for xgrammar (see the module docstring).

    ``additional_properties``: ``"forbid"`` generates declared properties only; ``"schema"``
    follows JSON Schema (an object without ``additionalProperties`` takes any other property)."""
    if additional_properties not in ADDITIONAL_PROPERTIES:
        raise ValueError(f"additional_properties must be one of {ADDITIONAL_PROPERTIES}, got {additional_properties!r}")
    if schema is not None:
        check_depth(schema)
    canonicalizer = _Canonicalizer()
    canonical = None if schema is None else canonicalizer.run(schema)
    check_schema(canonical, additional_properties)
    draft = draft_of(schema)
    open_objects = additional_properties == "schema"
    if canonical is None or (not open_objects and _takes_no_arguments(canonical)):
        # validation too: a tool without arguments gets ``{}``
        return NormalizedSchema(_no_arguments(), (), schema, _no_arguments(), draft=draft)
    if open_objects and (canonical is True or canonical == {}):
        canonical = {"type": "object"}  # arguments are an object, whatever the schema allows
    builder = _Builder(canonical, open_objects, canonicalizer.ref_paths)
    grammar_schema = builder.build()
    return NormalizedSchema(grammar_schema, tuple(builder.unenforced), schema, canonical, canonicalizer.ref_paths, draft)


def _takes_no_arguments(canonical: Any) -> bool:
    if canonical is None or canonical is True:
        return True
    return isinstance(canonical, dict) and _is_free_object(canonical)


def _no_arguments() -> dict:
    return {"type": "object", "properties": {}, "additionalProperties": False}

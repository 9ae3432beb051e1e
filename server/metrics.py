"""Counters of the server and the Prometheus text of /metrics."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .engine import GenerationRequest
from .memory import resident_bytes

if TYPE_CHECKING:
    from .state import ServerState


@dataclass
class Metrics:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict = field(default_factory=dict)  # (path, status) -> count
    latency_sum: float = 0.0
    latency_count: int = 0
    ttft_sum: float = 0.0
    ttft_count: int = 0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    tool_calls: int = 0
    violations: int = 0
    rejected_queue_full: int = 0

    def count(self, path: str, status: int) -> None:
        with self.lock:
            key = (path, status)
            self.requests[key] = self.requests.get(key, 0) + 1

    def finished(self, req: GenerationRequest, prompt_tokens: int, completion_tokens: int, calls: int = 0, violations: int = 0) -> None:
        now = time.perf_counter()
        with self.lock:
            self.latency_sum += now - req.submitted
            self.latency_count += 1
            if req.first_token_at is not None:
                self.ttft_sum += req.first_token_at - req.submitted
                self.ttft_count += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.tool_calls += calls
            self.violations += violations


def metrics_text(state: ServerState) -> str:
    m, e, c = state.metrics, state.engine.stats, state.cache.stats
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        # a sample's first element is its label set, or a suffix (`_sum`, `_count`) for summaries
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    with m.lock:
        reqs = sorted(m.requests.items())
        metric("constrained_http_requests_total", "counter", "HTTP requests by path and status.",
               [(f'{{path="{p}",status="{s}"}}', n) for (p, s), n in reqs] or [("", 0)])
        metric("constrained_request_duration_seconds", "summary", "Generation request latency (submit to last token).",
               [("_sum", round(m.latency_sum, 6)), ("_count", m.latency_count)])
        metric("constrained_time_to_first_token_seconds", "summary", "Time from submit to the first token.",
               [("_sum", round(m.ttft_sum, 6)), ("_count", m.ttft_count)])
        metric("constrained_tool_calls_total", "counter", "Tool calls returned.", [("", m.tool_calls)])
        metric("constrained_schema_violations_total", "counter", "Schema violations reported (keywords the grammar does not enforce).", [("", m.violations)])
        metric("constrained_rejected_requests_total", "counter", "Requests refused because the queue was full.", [("", m.rejected_queue_full)])
    metric("constrained_prompt_tokens_total", "counter", "Prompt tokens prefilled.", [("", e.prompt_tokens)])
    metric("constrained_generation_tokens_total", "counter", "Tokens generated.", [("", e.generated_tokens)])
    metric("constrained_engine_steps_total", "counter", "Decode steps.", [("", e.steps)])
    metric("constrained_jump_forward_tokens_total", "counter", "Tokens fed by jump-forward (forced by the grammar, not sampled).", [("", e.jump_forward_tokens)])
    metric("constrained_forward_seconds_total", "counter", "Time in decode forward passes.", [("", round(e.forward_seconds, 6))])
    metric("constrained_prefill_seconds_total", "counter", "Time in prefill forward passes.", [("", round(e.prefill_seconds, 6))])
    metric("constrained_mask_seconds_total", "counter", "Time filling and applying grammar masks.", [("", round(e.mask_seconds, 6))])
    metric("constrained_sample_seconds_total", "counter", "Time sampling.", [("", round(e.sample_seconds, 6))])
    metric("constrained_grammar_compiles_total", "counter", "Grammars compiled.", [("", c.compiles)])
    metric("constrained_grammar_lazy_compiles_total", "counter", "Grammars compiled for llguidance's lazy masks (large grammars).", [("", c.lazy_compiles)])
    metric("constrained_grammar_cache_hits_total", "counter", "Grammar cache hits.", [("", c.cache_hits)])
    entries, held = state.cache.held()
    metric("constrained_grammar_cache_entries", "gauge", "Compiled grammars in the cache.", [("", entries)])
    metric("constrained_grammar_cache_bytes", "gauge", "Memory the cached grammars hold (xgrammar's count; llguidance's estimated).", [("", held)])
    metric("constrained_grammar_compile_seconds_total", "counter", "Time compiling grammars.", [("", round(c.compile_seconds, 6))])
    metric("constrained_requests_submitted_total", "counter", "Requests accepted into the engine's queue.", [("", e.requests_submitted)])
    metric("constrained_requests_finished_total", "counter", "Requests the engine ended (stop, length or error).", [("", e.requests_finished)])
    metric("constrained_requests_cancelled_total", "counter", "Requests whose client went away.", [("", e.requests_cancelled)])
    metric("constrained_engine_errors_total", "counter", "Engine steps that failed.", [("", e.errors)])
    metric("constrained_queue_depth", "gauge", "Requests waiting for a batch slot.", [("", state.engine.queue_depth)])
    metric("constrained_running_requests", "gauge", "Requests in the running batch.", [("", state.engine.running)])
    metric("constrained_max_batch", "gauge", "Batch size limit.", [("", state.engine.config.max_batch)])
    rss = resident_bytes()
    if rss is not None:
        metric("process_resident_memory_bytes", "gauge", "Resident memory of the server process.", [("", rss)])
    return "\n".join(lines) + "\n"

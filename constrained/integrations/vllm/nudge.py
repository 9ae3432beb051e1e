"""`--demo-nudge` for vLLM: a vLLM logits processor that biases the random demo model toward
finishing what it opens (`constrained.demo.server_nudge`), so that its calls complete.

    CONSTRAINED_DEMO_NUDGE=kimi_k2 vllm serve DEMO_CHECKPOINT ... \\
        --logits-processors constrained.integrations.vllm.nudge:DemoNudge

vLLM applies logits processors after the grammar's mask: a bias never makes a forbidden token
possible (a masked logit stays -inf), the grammar alone decides what is allowed.

Every step: closing quotes and brackets, EOS. The first step of a request decides what the turn
does, per request (`vllm_xargs={"constrained_nudge": ...}`):
- "auto" (default): call a tool after a user turn, answer (stop) after tool results, so that a
  client's tool loop ends after one round, as a real model's would;
- "call" / "answer": always open the tool section / always stop at once;
- "off": no bias at all for this request.
The dialect is CONSTRAINED_DEMO_NUDGE's, or the request's `vllm_xargs.constrained_dialect`.
V1 logits-processor interface (vLLM's CPU build runs the V1 model runner).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from constrained import demo
from constrained import dialect as registry
from constrained.chat import after_tool_results

from .launch import NUDGE_ENV
from .request import DIALECT_XARG

NUDGE_XARG = "constrained_nudge"
MODES = ("auto", "call", "answer", "off")
FIRST_STEP_BIAS = 40.0


class DemoNudge(LogitsProcessor):
    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool):
        from transformers import AutoTokenizer

        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(vllm_config.model_config.tokenizer)
        self.default_dialect = os.environ.get(NUDGE_ENV) or None
        self._bias: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        # batch row -> (its output token list, live; every-step bias; first-step bias or None)
        self.rows: dict[int, tuple[list[int], tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]] = {}

    @classmethod
    def validate_params(cls, params: Any) -> None:
        mode = (params.extra_args or {}).get(NUDGE_XARG, "auto")
        if mode not in MODES:
            raise ValueError(f"vllm_xargs.{NUDGE_XARG} must be one of {', '.join(MODES)}, got {mode!r}")

    def is_argmax_invariant(self) -> bool:
        return False

    def _tensors(self, dialect: str, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = (dialect, which)
        if key not in self._bias:
            every, _ = demo.server_nudge(self.tokenizer, dialect)
            if which == "every":
                bias = every
            else:
                bias = demo.nudge_bias(self.tokenizer, dialect, [(("@trigger",) if which == "call" else ("@eos",), FIRST_STEP_BIAS)])
            self._bias[key] = (torch.tensor(list(bias), dtype=torch.long, device=self.device),
                               torch.tensor(list(bias.values()), dtype=torch.float32, device=self.device))
        return self._bias[key]

    def _row(self, params: Any, prompt: list[int] | None, output: list[int]) -> Any:
        xargs = params.extra_args or {}
        mode = xargs.get(NUDGE_XARG, "auto")
        dialect = xargs.get(DIALECT_XARG) or self.default_dialect
        if mode == "off" or dialect is None:
            return None
        if mode == "auto":
            text = str(self.tokenizer.decode((prompt or [])[-512:], skip_special_tokens=False))
            mode = "answer" if after_tool_results(registry.get(dialect), text) else "call"
        return output, self._tensors(dialect, "every"), self._tensors(dialect, mode)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, self._row)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for row, (output, every, first) in self.rows.items():
            ids, values = every
            logits[row, ids] += values.to(logits.dtype)
            if first is not None and not output:
                ids, values = first
                logits[row, ids] += values.to(logits.dtype)
        return logits

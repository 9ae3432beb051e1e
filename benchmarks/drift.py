"""A FORMAT-DRIFT model: it knows the right tool call for each prompt but writes it with the format
errors real models make, at a configurable rate.

It is a transformers model (`PreTrainedModel` + `GenerationMixin`, no logits processor): its logits
put a high score on the token it wants next and a small score on the reference token. The intended
text is the reference call rendered in the dialect (`dialect.render_calls`) with some pieces
replaced by an error ("edits"). Free decoding takes every error; under the grammar an error's
first wrong token is masked, the model falls back to the best allowed token (the reference token
when allowed), abandons that error and goes on, still attempting the later ones.

Error kinds (each attempted with probability `rate` where it applies):
- pretty      JSON dialects: the top-level arguments object pretty-printed over several lines
- missing_end the closing marker left out (section end; Hermes' last `</tool_call>`; `]`)
- prose       prose written inside the section, before the call
- wrong_key   an argument name misspelled
- wrong_type  a number or boolean argument written as a string
- wrong_name  a hallucinated tool name (`NAME_v2`)
- wrong_index Kimi: `functions.NAME:IDX` with the wrong conversation-wide IDX
- json_literal pythonic: `true`/`false`/`null` instead of `True`/`False`/`None`
- single_quote pythonic: a string argument in single quotes (valid Python, but not the grammar's)

Where the model lands on text that is neither its intention nor the reference (possible only under
the grammar), it is "lost" and favours closing tokens (quotes, brackets, end markers, EOS).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationMixin, LlamaConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .common import Case

KINDS = ("pretty", "missing_end", "prose", "wrong_key", "wrong_type", "wrong_name", "wrong_index", "json_literal", "single_quote")

W_WANT, W_REF, W_CLOSE, W_BASE = 10.0, 5.0, -10.0, -30.0
PROSE = "Sure, I will call the tool now.\n"


@dataclass
class Seg:
    orig: str
    alt: str | None = None  # None: no error here
    kind: str | None = None


@dataclass
class Plan:
    segs: list[Seg]
    kinds: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return "".join(s.orig for s in self.segs)

    @property
    def intended(self) -> str:
        return "".join(s.orig if s.alt is None else s.alt for s in self.segs)


# -- building the intended text ------------------------------------------------------------------
def _value_segs(dialect, key: str, value: Any, draw) -> list[Seg]:
    """`"key": value` (JSON) or `key=value` (python) as segments with possible edits."""
    py = dialect.arguments == "python"
    if py:
        from constrained.codecs.python import python_literal as lit

        key_text, sep = key, "="
    else:
        lit = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
        key_text, sep = json.dumps(key, ensure_ascii=False), ": "
    segs = []
    if draw("wrong_key") and len(key) > 1:
        bad = key[:-1] if len(key) > 3 else key + "s"
        segs.append(Seg(key_text, bad if py else json.dumps(bad), "wrong_key"))
    else:
        segs.append(Seg(key_text))
    segs.append(Seg(sep))
    text = lit(value)
    alt, kind = None, None
    if isinstance(value, bool) or value is None:
        if py and draw("json_literal"):
            alt, kind = json.dumps(value), "json_literal"
        elif value is not None and draw("wrong_type"):
            alt, kind = json.dumps(text), "wrong_type"
    elif isinstance(value, (int, float)):
        if draw("wrong_type"):
            alt, kind = json.dumps(text), "wrong_type"
    elif isinstance(value, str) and py and "'" not in value and "\\" not in text:
        if draw("single_quote"):
            alt, kind = "'" + value + "'", "single_quote"
    segs.append(Seg(text, alt, kind))
    return segs


def _arguments_segs(dialect, args: dict, draw) -> list[Seg]:
    py = dialect.arguments == "python"
    pretty = not py and bool(args) and draw("pretty")
    items = list(args.items())
    if py:
        segs = []
        for i, (k, v) in enumerate(items):
            if i:
                segs.append(Seg(", "))
            segs += _value_segs(dialect, k, v, draw)
        return segs
    if not items:
        return [Seg("{}")]
    segs = [Seg("{", "{\n  " if pretty else None, "pretty" if pretty else None)]
    for i, (k, v) in enumerate(items):
        if i:
            segs.append(Seg(", ", ",\n  " if pretty else None, "pretty" if pretty else None))
        segs += _value_segs(dialect, k, v, draw)
    segs.append(Seg("}", "\n}" if pretty else None, "pretty" if pretty else None))
    return segs


def make_plan(dialect, case: Case, rate: float, rng: random.Random) -> Plan:
    """The reference calls as segments, with errors drawn at `rate` for each kind where it applies."""
    def draw(kind: str) -> bool:  # noqa: ARG001 - the kind names the draw where it is made
        return rng.random() < rate

    segs: list[Seg] = []
    if dialect.section_begin:
        segs.append(Seg(dialect.section_begin))
    prose = draw("prose")
    for i, (name, args) in enumerate(case.calls):
        if i and dialect.call_separator:
            segs.append(Seg(dialect.call_separator))
        index = case.first_index + i
        if prose and i == 0 and dialect.section_begin:
            segs.append(Seg("", PROSE, "prose"))
        for k, piece in enumerate(dialect.pieces):  # type: ignore[attr-defined]
            if isinstance(piece, str):
                if prose and i == 0 and k == 0 and not dialect.section_begin:
                    # inside the first call's block, after its opening line (Hermes: "<tool_call>\n")
                    cut = piece.find("\n") + 1 or len(piece)
                    segs += [Seg(piece[:cut]), Seg("", PROSE, "prose"), Seg(piece[cut:])]
                else:
                    segs.append(Seg(piece))
            elif piece.name == "name":
                segs.append(Seg(name, name + "_v2", "wrong_name") if draw("wrong_name") else Seg(name))
            elif piece.name == "index":
                segs.append(Seg(str(index), str(index + 1), "wrong_index") if draw("wrong_index") else Seg(str(index)))
            else:
                segs += _arguments_segs(dialect, args, draw)
    end = dialect.section_end
    if end:
        segs.append(Seg(end, "", "missing_end") if draw("missing_end") else Seg(end))
    elif dialect.name == "hermes" or not end:
        # no section: the last call's closing literal (Hermes: "\n</tool_call>")
        last = segs[-1]
        tail = "</tool_call>" if last.orig.endswith("</tool_call>") else ""
        if tail and last.alt is None and draw("missing_end"):
            segs[-1] = Seg(last.orig[: -len(tail)])
            segs.append(Seg(tail, "", "missing_end"))
    plan = Plan(_merge(segs))
    plan.kinds = sorted({s.kind for s in plan.segs if s.kind})
    if plan.reference != dialect.render_calls(case.openai_calls(), case.first_index):
        raise AssertionError(f"drift plan does not render the reference: {plan.reference!r}")
    return plan


def _merge(segs: list[Seg]) -> list[Seg]:
    out: list[Seg] = []
    for s in segs:
        if out and s.alt is None and out[-1].alt is None:
            out[-1] = Seg(out[-1].orig + s.orig)
        else:
            out.append(s)
    return out


# -- where the model is, given what it wrote -----------------------------------------------------
LOST = object()


def locate(plan: Plan, written: bytes) -> tuple[bytes, bytes | None] | object:
    """-> (what it wants to write next, the reference continuation or None), or LOST.

    Reads `written` segment by segment, preferring at each edit the model's own intention (the
    error written in full, then in progress) over the reference text, and backtracking when an
    interpretation does not explain the rest of what was written."""
    segs = plan._bytes  # type: ignore[attr-defined]
    drift, ref_tail = plan._drift_tail, plan._ref_tail  # type: ignore[attr-defined]
    n = len(segs)

    def at(i: int, pos: int):
        g = written[pos:]
        if i == n:
            return (b"", b"") if not g else LOST
        orig, alt = segs[i]
        if not g:
            return (orig if alt is None else alt) + drift[i + 1], orig + ref_tail[i + 1]
        for c in (alt, orig):
            if c is None:
                continue
            if g.startswith(c):
                found = at(i + 1, pos + len(c))
                if found is not LOST:
                    return found
            elif len(g) < len(c) and c.startswith(g):
                return c[len(g):] + drift[i + 1], (orig[len(g):] + ref_tail[i + 1]) if orig.startswith(g) else None
        return LOST

    return at(0, 0)


def _prepare(plan: Plan) -> Plan:
    plan._bytes = [(s.orig.encode(), None if s.alt is None else s.alt.encode()) for s in plan.segs]  # type: ignore[attr-defined]
    n = len(plan._bytes)  # type: ignore[attr-defined]
    drift, ref = [b""] * (n + 1), [b""] * (n + 1)
    for i in range(n - 1, -1, -1):
        o, a = plan._bytes[i]  # type: ignore[attr-defined]
        drift[i] = (o if a is None else a) + drift[i + 1]
        ref[i] = o + ref[i + 1]
    plan._drift_tail, plan._ref_tail = drift, ref  # type: ignore[attr-defined]
    return plan


# -- the model -----------------------------------------------------------------------------------
class DriftModel(PreTrainedModel, GenerationMixin):
    """Plays the plan registered for each prompt. Use `generate(..., use_cache=False)`."""

    config_class = LlamaConfig
    main_input_name = "input_ids"
    _supports_cache_class = False

    def __init__(self, config: LlamaConfig, token_bytes: Sequence[bytes], eos_id: int, pad_id: int, close_ids: Sequence[int],
                 added: Sequence[bytes] = ()):
        super().__init__(config)
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self.eos_id, self.pad_id = eos_id, pad_id
        self.token_bytes = list(token_bytes)
        by_bytes: dict[bytes, int] = {}
        for i, b in enumerate(self.token_bytes):
            if b and i not in (eos_id, pad_id):
                by_bytes[b] = i  # later (added/special) tokens win
        self.by_bytes = by_bytes
        self.max_len = max(len(b) for b in by_bytes)
        # Added tokens (markers) are split off first, as the tokenizer does: no ordinary token may
        # run into one (`}<` then `|tool_call_end|>` spells the marker as text).
        self.added = tuple(sorted({a for a in added if len(a) > 1}, key=len, reverse=True))
        self.close_ids = torch.tensor(sorted(set(close_ids)))
        self.plans: dict[int, dict[tuple, Plan]] = {}
        self.lost_steps = 0

    @classmethod
    def for_tokenizer(cls, tok, vocab_size: int, token_bytes: Sequence[bytes]) -> DriftModel:
        config = LlamaConfig(vocab_size=vocab_size, hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
                             num_key_value_heads=1, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        close = [tok.eos_token_id]
        for s in ['"', "}", "]", ")", "\n"]:
            enc = tok.encode(s, add_special_tokens=False)
            if len(enc) == 1:
                close.append(enc[0])
        added = [content.encode() for content in tok.get_added_vocab()]
        model = cls(config, token_bytes, tok.eos_token_id, tok.pad_token_id, close, added).eval()
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        return model

    def register(self, prompt_ids: Sequence[int], plan: Plan) -> None:
        self.plans.setdefault(len(prompt_ids), {})[tuple(prompt_ids)] = _prepare(plan)

    def first_token(self, rest: bytes) -> int | None:
        """Greedy longest match of a vocabulary token at the start of `rest`."""
        if not rest:
            return self.eos_id
        limit = min(len(rest), self.max_len)
        for a in self.added:
            at = rest.find(a, 0, limit + len(a))
            if at == 0:
                return self.by_bytes.get(a)
            if 0 < at < limit:
                limit = at
        for k in range(limit, 0, -1):
            t = self.by_bytes.get(rest[:k])
            if t is not None:
                return t
        return None

    def _plan_for(self, ids: list[int]) -> tuple[Plan, int]:
        start = 0
        while start < len(ids) and ids[start] == self.pad_id:
            start += 1
        for length, table in self.plans.items():
            plan = table.get(tuple(ids[start:start + length]))
            if plan is not None:
                return plan, start + length
        raise KeyError("DriftModel: no plan registered for this prompt")

    def forward(self, input_ids: torch.LongTensor = None, attention_mask=None, **kwargs) -> CausalLMOutputWithPast:
        rows = input_ids.tolist()
        logits = torch.full((len(rows), 1, self.config.vocab_size), W_BASE, dtype=torch.float32)
        for r, ids in enumerate(rows):
            plan, begin = self._plan_for(ids)
            gen = ids[begin:]
            if self.eos_id in gen:  # finished row, padded by generate
                logits[r, 0, self.eos_id] = W_WANT
                continue
            written = b"".join(self.token_bytes[t] for t in gen)
            where = locate(plan, written)
            if where is LOST:
                self.lost_steps += 1
                logits[r, 0, self.close_ids] = W_CLOSE
                continue
            want, ref = where
            ref_tok = self.first_token(ref) if ref is not None else None
            want_tok = self.first_token(want)
            if ref_tok is not None:
                logits[r, 0, ref_tok] = W_REF
            if want_tok is not None:
                logits[r, 0, want_tok] = W_WANT
        return CausalLMOutputWithPast(logits=logits.to(self.anchor.device))

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}

"""`--dialect auto`: the dialect detected from a checkpoint's chat template.

The templates below follow each family's published format for tool calls (Qwen3, Qwen3-Coder /
Qwen3.5, GLM-4.7, DeepSeek-V3.1, Mistral v11 with its 9-character ids, Llama 3.1 JSON with its one
call per turn, MiniMax-M2, Kimi-K2), cut down to what the probe needs: system, user and assistant
turns. Each is set on a demo tokenizer that has the family's markers, and detection must name the
family; a template in no known format is refused with the closest candidates, or, when it writes
`prefix NAME sep JSON suffix`, a dialect is derived from it.
"""

from __future__ import annotations

import json

import pytest

from constrained import demo, parse
from constrained import dialect as registry
from constrained.chat import jinja_chat_template
from constrained.detect import Detection, DetectionError, detect
from constrained.dialect import Dialect

NL = "{{ '\\n' }}"  # a newline right after a block tag: HF renders templates with trim_blocks


def chatml(calls: str, sep: str = "") -> str:
    """A ChatML template whose assistant turn writes its tool calls with `calls` (a Jinja
    fragment over `tc` = tool_call.function), joined by `sep` (Jinja)."""
    return (
        "{%- for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content %}{{ m.content }}{% endif %}"
        "{%- if m.tool_calls %}{% for t in m.tool_calls %}{% set tc = t.function %}{% if not loop.first %}" + sep + "{% endif %}"
        + calls + "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


TEMPLATES = {
    # Qwen3: <tool_call> JSON blocks, "\n" between them
    "hermes": chatml('<tool_call>\n{"name": "{{ tc.name }}", "arguments": {{ tc.arguments | tojson }}}\n</tool_call>', NL),
    # Qwen3.5 / Qwen3-Coder: XML parameters, values framed by newlines, non-strings as text
    "qwen3_coder": chatml(
        "<tool_call>\n<function={{ tc.name }}>\n{% for k, v in tc.arguments.items() %}<parameter={{ k }}>\n"
        "{% if v is string %}{{ v }}{% else %}{{ v | tojson }}{% endif %}" + NL + "</parameter>\n{% endfor %}</function>\n</tool_call>", NL),
    # GLM-4.7: no newlines at all
    "glm47": chatml("<tool_call>{{ tc.name }}{% for k, v in tc.arguments.items() %}<arg_key>{{ k }}</arg_key>"
                    "<arg_value>{% if v is string %}{{ v }}{% else %}{{ v | tojson }}{% endif %}</arg_value>{% endfor %}</tool_call>"),
    # DeepSeek-V3.1
    "deepseek_v31": chatml("{% if loop.first %}<｜tool▁calls▁begin｜>{% endif %}<｜tool▁call▁begin｜>{{ tc.name }}<｜tool▁sep｜>"
                           "{{ tc.arguments | tojson }}<｜tool▁call▁end｜>{% if loop.last %}<｜tool▁calls▁end｜>{% endif %}"),
    # MiniMax-M2
    "minimax_m2": chatml('{% if loop.first %}<minimax:tool_call>\n{% endif %}<invoke name="{{ tc.name }}">\n'
                         '{% for k, v in tc.arguments.items() %}<parameter name="{{ k }}">{% if v is string %}{{ v }}{% else %}{{ v | tojson }}'
                         '{% endif %}</parameter>\n{% endfor %}</invoke>\n{% if loop.last %}</minimax:tool_call>{% endif %}'),
    # Kimi-K2: the id from history is the call's header
    "kimi_k2": (
        "{%- for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content %}{{ m.content }}{% endif %}"
        "{% if m.tool_calls %}<|tool_calls_section_begin|>{% for c in m.tool_calls %}<|tool_call_begin|>{{ c.id }}<|tool_call_argument_begin|>"
        "{{ c.function.arguments | tojson }}<|tool_call_end|>{% endfor %}<|tool_calls_section_end|>{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    # Mistral v11+: [TOOL_CALLS]NAME[ARGS]{json}; ids must be 9 alphanumerics, as mistral_common insists
    "mistral_v11": (
        "{%- for m in messages %}{% if m.role == 'user' %}[INST]{{ m.content }}[/INST]{% elif m.role == 'assistant' %}{{ m.content or '' }}"
        "{% for t in m.tool_calls or [] %}{% if t.id | length != 9 %}{{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}"
        "{% endif %}[TOOL_CALLS]{{ t.function.name }}[ARGS]{{ t.function.arguments | tojson }}{% endfor %}</s>{% endif %}{% endfor %}"
    ),
    # Llama 3.1 JSON: one call per turn only
    "llama3_json": (
        "{%- for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{% if m.tool_calls %}"
        "{% if m.tool_calls | length != 1 %}{{ raise_exception('This model only supports single tool-calls at once!') }}{% endif %}"
        "{% set tc = m.tool_calls[0].function %}{\"name\": \"{{ tc.name }}\", \"parameters\": {{ tc.arguments | tojson }}}"
        "{% else %}{{ m.content }}{% endif %}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
}


def tokenizer_with(template: str, markers_of: str):
    tok = demo.load_tokenizer.__wrapped__(markers_of)  # a fresh one: the cached tokenizer is shared
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("family", sorted(TEMPLATES))
def test_auto_detects_the_family_of_a_chat_template(family):
    found = detect(tokenizer_with(TEMPLATES[family], family))
    assert isinstance(found, Detection) and not found.derived
    assert found.dialect.name == family, found.reason
    assert "chat template" in found.reason


def test_a_template_in_no_known_format_is_refused_with_the_closest_candidates():
    template = chatml('<call name="{{ tc.name }}">{% for k, v in tc.arguments.items() %}{{ k }}={{ v }};{% endfor %}</call>')
    with pytest.raises(DetectionError) as err:
        detect(tokenizer_with(template, "hermes"))
    message = str(err.value)
    assert "no known dialect" in message and "closest:" in message and "--dialect" in message
    assert message.count("% alike") == 3


def test_a_dialect_is_derived_from_a_template_of_prefix_name_sep_arguments_suffix():
    template = chatml("<call>{{ tc.name }}|{{ tc.arguments | tojson }}</call>", NL)
    found = detect(tokenizer_with(template, "hermes"))
    assert found.derived and "derived from chat template" in found.reason
    d = found.dialect
    assert isinstance(d, Dialect) and d.call_template == "<call>{name}|{arguments}</call>" and d.call_separator == "\n"
    text = d.render_calls([{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
    assert text == '<call>get_weather|{"city": "Paris"}</call>'
    assert json.loads(parse("Sure. " + text, d).tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}


def test_a_template_that_fails_on_every_probe_is_a_clear_error():
    with pytest.raises(DetectionError, match="failed on every probe"):
        detect(tokenizer_with("{{ raise_exception('no tools here') }}", "hermes"))


@pytest.mark.parametrize("name", registry.names())
def test_each_dialects_own_chat_template_is_detected_as_that_dialect(name):
    """The chat template a dialect's checkpoint carries (`jinja_chat_template`, the family's chat
    format) names that dialect; formats that write calls alike (granite4 and hermes, step3p5 and
    qwen3_coder) are told apart by the conversation around the calls. Only declarations that are
    the same format under two names (qwen3_json and hermes) may come back as the other name."""
    d = registry.get(name)
    tok = demo.load_tokenizer.__wrapped__(d, demo.all_markers())  # a fresh one, with every dialect's markers
    tok.chat_template = jinja_chat_template(d)
    found = detect(tok).dialect
    probe = [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]
    assert found.chat == d.chat and found.render_calls(probe, 0) == d.render_calls(probe, 0), found.name
    same_format = {n for n in registry.names() if registry.get(n).chat == d.chat and registry.get(n).render_calls(probe, 0) == d.render_calls(probe, 0)}
    assert found.name == name or len(same_format) > 1

"""Synthetic tool-use dialogues: what the trained demo model learns from, and what the benchmark
scores it against.

A dialogue is OpenAI messages plus tools: a user request whose values (a city, a name, a number)
the fitting tool call copies into its arguments, the tool's result, and a short final answer that
reports it. Some dialogues have no fitting tool (the answer is text) or no tools at all; some turns
call two tools at once. `segments` writes a dialogue in the dialect's chat format
(`chat.render_segments`: the family's roles and end of turn, calls in the dialect's syntax exactly
as the grammar and the parser read them), and marks the text the model must learn to write.

Values come from word lists (cities, names, topics) and from a few hundred words of the
tokenizer's vocabulary. A value is spelled with other tokens in a request (` Beijing`) than in a
call (`"Beijing`), so a model copies the words it has learned both spellings of: a small model
copies these lists, not any word.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .chat import Segment, prepare_history, render_segments
from .dialect import Dialect

CITIES = (
    "Beijing", "Shanghai", "San Francisco", "Paris", "London", "Tokyo", "New York", "Berlin", "Madrid", "Rome",
    "Sydney", "Toronto", "Mumbai", "Cairo", "Lagos", "Lima", "Seoul", "Istanbul", "Moscow", "Dubai", "Singapore",
    "Hong Kong", "Shenzhen", "Chengdu", "Hangzhou", "Osaka", "Kyoto", "Bangkok", "Jakarta", "Manila", "Hanoi",
    "Nairobi", "Buenos Aires", "Santiago", "Bogota", "Mexico City", "Chicago", "Boston", "Seattle", "Austin",
    "Denver", "Miami", "Vancouver", "Montreal", "Dublin", "Oslo", "Stockholm", "Helsinki", "Copenhagen", "Vienna",
    "Prague", "Warsaw", "Budapest", "Athens", "Lisbon", "Zurich", "Amsterdam", "Brussels", "Munich", "Milan",
    "Wuhan", "Xi'an", "Nanjing", "Tianjin", "Chongqing", "Taipei", "Melbourne", "Auckland", "Cape Town", "Delhi",
)
NAMES = ("Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Oscar",
         "Peggy", "Trent", "Victor", "Wendy", "Li Wei", "Zhang San", "Maria", "José", "Yuki", "Priya", "Omar", "Anna")
TOPICS = ("quantum computing", "the French revolution", "solar panels", "python decorators", "black holes",
          "sourdough bread", "electric cars", "the stock market", "machine learning", "coral reefs", "jazz history",
          "renewable energy", "the Roman empire", "vaccines", "climate change", "chess openings", "tea ceremonies")
WEATHER = ("Sunny", "Cloudy", "Rainy", "Windy", "Snowy", "Foggy", "Clear", "Stormy")
SMALL_TALK = (
    ("Hello!", "Hello! How can I help you today?"),
    ("Thanks a lot.", "You're welcome!"),
    ("Who are you?", "I am a small demo assistant that can call tools."),
    ("Tell me a joke.", "Why did the function return early? It had no arguments."),
    ("What can you do?", "I can answer short questions and call the tools you give me."),
    ("Good morning", "Good morning! What can I do for you?"),
    ("How are you?", "I'm fine, thank you. How can I help?"),
)


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict
    value: Callable[[random.Random, Callable[[random.Random], str]], Any]  # (rng, free word) -> a value
    required: bool = True


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    params: tuple[Param, ...]
    requests: tuple[str, ...]  # user requests, with {param} placeholders
    answers: tuple[str, ...]   # final answers, with {param} and {result} placeholders
    result: Callable[[random.Random, dict], Any]

    def openai(self) -> dict:
        props = {p.name: p.schema for p in self.params}
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": {"type": "object", "properties": props, "required": [p.name for p in self.params if p.required]}}}


def _pick(values: Sequence[Any]) -> Callable[[random.Random, Any], Any]:
    return lambda rng, word: rng.choice(values)


def _city(rng: random.Random, word: Callable[[random.Random], str]) -> str:
    return rng.choice(CITIES) if rng.random() < 0.6 else word(rng).capitalize()


def _text(pool: Sequence[str]) -> Callable[[random.Random, Callable[[random.Random], str]], str]:
    return lambda rng, word: rng.choice(pool) if rng.random() < 0.6 else " ".join(word(rng) for _ in range(rng.randint(1, 3)))


def _int(lo: int, hi: int) -> Callable[[random.Random, Any], int]:
    return lambda rng, word: rng.randint(lo, hi)


_UNIT = {"type": "string", "enum": ["celsius", "fahrenheit"]}

TOOLS: tuple[ToolSpec, ...] = (
    # the seeds' tools: Kimi-K2's get_weather(city), MiniMax-M1's get_weather(location, unit)
    ToolSpec("get_weather", "Get weather information. Call this tool when the user needs to get weather information",
             (Param("city", {"type": "string", "description": "City name"}, _city),),
             ("What's the weather like in {city} today? Let's check using the tool.", "What's the weather like in {city} today?",
              "How is the weather in {city}?", "Is it raining in {city} right now?", "weather in {city}", "Check the weather for {city}, please.",
              "Will I need an umbrella in {city}?", "Tell me the current weather in {city}."),
             ("The weather in {city} is {result[weather]}.", "It is {result[weather]} in {city} today.",
              "Right now {city} is {result[weather]}."),
             lambda rng, args: {"weather": rng.choice(WEATHER)}),
    ToolSpec("get_weather", "Get the current weather in a given location",
             (Param("location", {"type": "string", "description": "City and state, e.g., 'San Francisco, CA'"}, _city),
              Param("unit", _UNIT, _pick(_UNIT["enum"]))),
             ("What's the weather like in {location}? use {unit}.", "Weather in {location} in {unit}, please.",
              "How warm is it in {location}? Answer in {unit}.", "Give me the {unit} temperature in {location}."),
             ("In {location} it is {result}.", "The weather in {location}: {result}."),
             lambda rng, args: f"{rng.randint(-5, 35) if args['unit'] == 'celsius' else rng.randint(30, 95)} degrees {args['unit']}, {rng.choice(WEATHER).lower()}"),
    ToolSpec("get_time", "Get the current local time in a city",
             (Param("city", {"type": "string", "description": "City name"}, _city),),
             ("What time is it in {city}?", "Current time in {city}?", "Tell me the local time in {city}."),
             ("It is {result[time]} in {city}.", "The local time in {city} is {result[time]}."),
             lambda rng, args: {"time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"}),
    ToolSpec("search_web", "Search the web and return the top results",
             (Param("query", {"type": "string", "description": "What to search for"}, _text(TOPICS)),
              Param("max_results", {"type": "integer", "minimum": 1, "maximum": 10}, _int(1, 10), required=False)),
             ("Search the web for {query}.", "Find articles about {query}.", "Look up {query} online.", "Can you search for {query}?"),
             ("I found {result[count]} results about {query}.", "Here is what I found about {query}: {result[top]}."),
             lambda rng, args: {"count": rng.randint(1, 9), "top": f"An introduction to {args['query']}"}),
    ToolSpec("send_email", "Send an email to a person",
             (Param("to", {"type": "string", "description": "Recipient name or address"}, _pick(NAMES)),
              Param("subject", {"type": "string"}, _text(TOPICS)),
              Param("urgent", {"type": "boolean"}, _pick([True, False]), required=False)),
             ("Send an email to {to} about {subject}.", "Email {to} with the subject {subject}.", "Please write to {to} regarding {subject}."),
             ("Done: the email to {to} was sent.", "I sent {to} an email about {subject}."),
             lambda rng, args: {"status": "sent"}),
    ToolSpec("convert_currency", "Convert an amount of money from one currency to another",
             (Param("amount", {"type": "number"}, _int(1, 5000)),
              Param("from_currency", {"type": "string", "enum": ["USD", "EUR", "CNY", "JPY", "GBP"]}, _pick(["USD", "EUR", "CNY", "JPY", "GBP"])),
              Param("to_currency", {"type": "string", "enum": ["USD", "EUR", "CNY", "JPY", "GBP"]}, _pick(["USD", "EUR", "CNY", "JPY", "GBP"]))),
             ("Convert {amount} {from_currency} to {to_currency}.", "How much is {amount} {from_currency} in {to_currency}?"),
             ("{amount} {from_currency} is {result[value]} {to_currency}.",),
             lambda rng, args: {"value": round(args["amount"] * rng.uniform(0.1, 9), 2)}),
    ToolSpec("set_timer", "Set a timer",
             (Param("minutes", {"type": "integer", "minimum": 1, "maximum": 180}, _int(1, 180)),
              Param("label", {"type": "string"}, _text(("tea", "pasta", "meeting", "laundry", "break")), required=False)),
             ("Set a timer for {minutes} minutes.", "Start a {minutes} minute timer.", "Remind me in {minutes} minutes."),
             ("Your timer for {minutes} minutes is set.", "Timer set: {minutes} minutes."),
             lambda rng, args: {"ok": True}),
    ToolSpec("get_stock_price", "Get the latest price of a stock",
             (Param("symbol", {"type": "string", "description": "Ticker symbol"}, _pick(["AAPL", "MSFT", "NVDA", "TSLA", "GOOG", "AMZN", "BABA", "META"])),),
             ("What is the price of {symbol}?", "How is {symbol} trading today?", "Stock price of {symbol}, please."),
             ("{symbol} trades at {result[price]} dollars.", "The latest price of {symbol} is {result[price]}."),
             lambda rng, args: {"price": round(rng.uniform(10, 900), 2)}),
    ToolSpec("translate", "Translate a text into another language",
             (Param("text", {"type": "string"}, _text(("good morning", "thank you", "where is the station", "I love tea"))),
              Param("target_language", {"type": "string", "enum": ["French", "German", "Chinese", "Japanese", "Spanish"]},
                    _pick(["French", "German", "Chinese", "Japanese", "Spanish"]))),
             ("Translate {text} into {target_language}.", "How do you say {text} in {target_language}?"),
             ("In {target_language}: {result[translation]}.",),
             lambda rng, args: {"translation": args["text"][::-1]}),
    ToolSpec("create_event", "Create a calendar event",
             (Param("title", {"type": "string"}, _text(("team meeting", "dentist", "lunch with Bob", "project review"))),
              Param("day", {"type": "string", "enum": ["monday", "tuesday", "wednesday", "thursday", "friday"]},
                    _pick(["monday", "tuesday", "wednesday", "thursday", "friday"])),
              Param("hour", {"type": "integer", "minimum": 0, "maximum": 23}, _int(8, 18))),
             ("Add {title} on {day} at {hour}:00 to my calendar.", "Schedule {title} for {day}, {hour} o'clock."),
             ("I added {title} on {day} at {hour}:00.",),
             lambda rng, args: {"id": rng.randint(100, 999)}),
    ToolSpec("lookup_user", "Look up a user's profile by name",
             (Param("name", {"type": "string"}, _pick(NAMES)),),
             ("Who is {name}?", "Find the profile of {name}.", "Look up {name} in the directory."),
             ("{name} works in {result[team]}.", "{name} is on the {result[team]} team."),
             lambda rng, args: {"team": rng.choice(["sales", "research", "support", "design"])}),
    ToolSpec("calculate", "Evaluate an arithmetic expression",
             (Param("expression", {"type": "string"}, lambda rng, word: f"{rng.randint(2, 99)} {rng.choice('+-*')} {rng.randint(2, 99)}"),),
             ("What is {expression}?", "Calculate {expression}.", "Compute {expression} for me."),
             ("{expression} = {result[value]}.",),
             lambda rng, args: {"value": rng.randint(0, 9999)}),
)


@dataclass
class Dialogue:
    """One conversation: `messages` ends with the assistant turns the model learns to write."""
    tools: list[dict]
    messages: list[dict]
    calls: list[dict] = field(default_factory=list)  # the first assistant turn's reference calls ([] for text)
    kind: str = "call"  # call | text | no_tools
    # the seeds' manual loop sends tool results without the assistant message that made the calls;
    # rendered so where the dialect's call ids name their call (Kimi's functions.NAME:IDX)
    results_without_call: bool = False


# A value is spelled with other tokens in a request (" Beijing") than in a call ('"Beijing'), so a
# model learns to copy words it has seen: a few hundred besides the lists above.
WORD_POOL = 150


def vocabulary_words(tokenizer: Any, limit: int = WORD_POOL) -> list[str]:
    """Words of the tokenizer's vocabulary (tokens that are a space and letters, from the most
    frequent merges on), values the model learns to copy."""
    out = []
    for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        text = tokenizer.convert_tokens_to_string([token])
        if text.startswith(" ") and 4 <= len(text) <= 12 and text[1:].isascii() and text[1:].isalpha():
            out.append(text[1:])
            if len(out) >= limit:
                break
    return out


def _format(template: str, args: dict, result: Any = None) -> str:
    return template.format(**args, result=result)


def _call(rng: random.Random, spec: ToolSpec, word: Callable[[random.Random], str]) -> dict:
    args = {}
    for p in spec.params:
        if p.required or rng.random() < 0.5:
            args[p.name] = p.value(rng, word)
    return args


def make_dialogue(rng: random.Random, words: Sequence[str], *, dropped_assistant: float = 0.1) -> Dialogue:
    """A random dialogue (see the module's docstring); `words` are the free values to copy."""
    word = (lambda r: r.choice(words)) if words else (lambda r: r.choice(CITIES))
    kind = rng.choices(("call", "parallel", "text", "no_tools"), (0.62, 0.08, 0.18, 0.12))[0]
    specs = rng.sample(TOOLS, rng.randint(1, 3))
    names = {s.name for s in specs}
    if len(names) < len(specs):  # both get_weather variants: keep one
        specs = list({s.name: s for s in specs}.values())
    tools = [s.openai() for s in specs]
    if kind in ("text", "no_tools"):
        asked, answer = rng.choice(SMALL_TALK)
        return Dialogue([] if kind == "no_tools" else tools, [{"role": "user", "content": asked}, {"role": "assistant", "content": answer}], [], kind)
    chosen = [rng.choice(specs)] if kind == "call" or len(specs) < 2 else rng.sample(specs, 2)
    args = [_call(rng, s, word) for s in chosen]
    request = " And ".join(_format(rng.choice(s.requests), _filled(s, a, rng, word)) for s, a in zip(chosen, args))
    calls = [{"name": s.name, "arguments": a} for s, a in zip(chosen, args)]
    # ids of nine letters and digits, drawn here: the form every made-up-id dialect keeps (chat.prepare_history)
    ids = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=9)) for _ in calls]
    messages: list[dict] = [{"role": "user", "content": request}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
        for i, c in zip(ids, calls)]}]
    answers = []
    for i, s, a in zip(ids, chosen, args):
        result = s.result(rng, a)
        messages.append({"role": "tool", "tool_call_id": i, "name": s.name,
                         "content": result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)})
        answers.append(_format(rng.choice(s.answers), _filled(s, a, rng, word), result))
    messages.append({"role": "assistant", "content": " ".join(answers)})
    return Dialogue(tools, messages, calls, "call", rng.random() < dropped_assistant)


def _filled(spec: ToolSpec, args: dict, rng: random.Random, word: Callable[[random.Random], str]) -> dict:
    """`args` plus a value for each optional parameter the call left out (the request's text names it anyway)."""
    return {p.name: args[p.name] if p.name in args else p.value(rng, word) for p in spec.params}


def segments(dialect: Dialect, dialogue: Dialogue) -> list[Segment]:
    """The whole conversation in the dialect's chat format, as runs that alternate between what
    the assistant reads and what it writes (each turn's text or calls, and the token that ends it)."""
    messages = dialogue.messages
    if dialogue.results_without_call and not dialect.fresh_call_ids and dialect.call_id != "random":
        names = [c["name"] for c in dialogue.calls]
        results = [m for m in messages if m["role"] == "tool"]
        messages = [messages[0]] + [{**m, "tool_call_id": dialect.make_call_id(n, k)} for k, (m, n) in enumerate(zip(results, names))] + [messages[-1]]
    return render_segments(dialect, prepare_history(messages, dialect), dialogue.tools, add_generation_prompt=False, close_last_turn=True)


def render(dialect: Dialect, dialogue: Dialogue) -> str:
    """The whole conversation in the dialect's chat format."""
    return "".join(text for text, _ in segments(dialect, dialogue))


def prompt_and_reference(dialect: Dialect, dialogue: Dialogue) -> tuple[str, str]:
    """(the prompt up to the first assistant turn, that turn's reference text with its end)."""
    (prompt, _), (reference, _), *_ = segments(dialect, dialogue)  # runs alternate; the first is read
    return prompt, reference

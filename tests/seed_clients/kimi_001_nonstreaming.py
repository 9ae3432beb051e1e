# Seed 001 (Kimi-K2 tool_call_guidance.md), "Chat with tools": the seed's code verbatim (indentation
# restored); only `endpoint` and `model_name` come from the environment.
import os

from kimi_001_tools import get_weather, tools, tool_map  # noqa: F401  (the seed's "Preparing Tools")

endpoint = os.environ["CONSTRAINED_ENDPOINT"]

# ---- seed code from here on ----------------------------------------------------------------
import json
from openai import OpenAI
model_name = os.environ.get("CONSTRAINED_MODEL", 'moonshotai/Kimi-K2-Instruct')
client = OpenAI(base_url=endpoint,
                api_key='xxx')
messages = [
    {"role": "user", "content": "What's the weather like in Beijing today? Let's check using the tool."}
]
finish_reason = None
while finish_reason is None or finish_reason == "tool_calls":
    completion = client.chat.completions.create(
        model=model_name,
        messages=messages,
        temperature=0.3,
        tools=tools,
        tool_choice="auto",
    )
    choice = completion.choices[0]
    finish_reason = choice.finish_reason
    # Note: The finish_reason when tool calls end may vary across different engines, so this condition check needs to be adjusted accordingly
    if finish_reason == "tool_calls":
        messages.append(choice.message)
        for tool_call in choice.message.tool_calls:
            tool_call_name = tool_call.function.name
            tool_call_arguments = json.loads(tool_call.function.arguments)
            tool_function = tool_map[tool_call_name]
            tool_result = tool_function(tool_call_arguments)
            print("tool_result", tool_result)
            messages.append({
                "role": "tool",
                "tool_call_id": tool_call.id,
                "name": tool_call_name,
                "content": json.dumps(tool_result),
            })
print('-' * 100)
print(choice.message.content)

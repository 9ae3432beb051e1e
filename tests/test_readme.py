"""The README's Python example runs as written (the README must stay true)."""

import re
from pathlib import Path


def test_readme_python_example_runs(capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README has a Python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})  # our own README, run as a doctest
    assert "functions.get_weather:0" in capsys.readouterr().out


def test_readme_dialect_table_is_the_declarations():
    """The README's dialect table is what `constrained dialects --readme` writes from grammars/."""
    from constrained import dialect as registry
    from constrained.tools.dialect_table import BEGIN, END, markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)]
    assert table.strip() == markdown_table().strip(), "run: constrained dialects --readme README.md"
    assert all(f"| `{name}` |" in table for name in registry.names())

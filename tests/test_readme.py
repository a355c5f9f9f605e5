"""The README's Python examples run as written (a newcomer copies them first)."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything an example saves lands here
    code = BLOCKS[index].replace("model.learn(200_000)", "model.learn(2048)")  # the same call, shorter
    namespace: dict = {}
    exec(compile(code, f"README.md python example {index}", "exec"), namespace)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 4

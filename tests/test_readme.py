"""The README's and the guide's examples run as written (a newcomer copies them first): every
Python block is executed, and every `oversight` command line parses with the real parser."""

import re
import shlex
from pathlib import Path

import pytest

from analysis.metrics import FINAL_METRICS, METRICS
from oversight_cli.main import build_parser

ROOT = Path(__file__).parents[1]
DOCS = {name: (ROOT / name).read_text() for name in ("README.md", "docs/guide.md")}
BLOCKS = [(name, block) for name, text in DOCS.items() for block in re.findall(r"```python\n(.*?)```", text, re.S)]
COMMANDS = [(name, line.split(" #")[0].strip()) for name, text in DOCS.items()
            for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()
            if line.startswith("oversight ") and "--help" not in line]
# The same calls, shorter, where an example trains.
SHORTER = {"model.learn(200_000)": "model.learn(2048)"}


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything an example saves lands here
    name, code = BLOCKS[index]
    for long, short in SHORTER.items():
        code = code.replace(long, short)
    registered = list(FINAL_METRICS)  # an example may register a metric: not for the other tests
    try:
        exec(compile(code, f"{name} python example {index}", "exec"), {})
    finally:
        FINAL_METRICS[:] = registered
        METRICS.clear()
        METRICS.update({m.name: m for m in registered})


@pytest.mark.parametrize("index", range(len(COMMANDS)))
def test_command_line_example_parses(index):
    name, line = COMMANDS[index]
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert args.command == shlex.split(line)[1], (name, line)


def test_the_docs_have_examples():
    assert len(BLOCKS) >= 4 and len(COMMANDS) >= 10
    assert len(DOCS["README.md"].splitlines()) < 300  # the README is for users; findings live in docs/

"""The README's Python API example runs as written."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_python_api_example_runs(tmp_path, capsys):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    # the whole-run record, then the stage-by-stage value: both well above chance (0.5) on
    # this simulation, and the record's p the smallest the permutations can give
    record = ast.literal_eval(re.search(r"^\{'value'.*\}$", out, re.M).group(0))
    assert record["chance"] == 0.5 and record["value"] > 0.7
    assert record["p_value"] == pytest.approx(1 / 1001)
    staged = float(re.search(r"^pairwise identification: ([0-9.]+)$", out, re.M).group(1))
    assert staged > 0.7

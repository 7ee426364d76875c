"""The README's snippets run: every ```python block (```py blocks need a real network or a person)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any, List

import pytest

import multipeer

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _snippets() -> List[str]:
    if not os.path.exists(README):
        return []
    with open(README, encoding="utf-8") as f:
        return re.findall(r"^```python\n(.*?)^```$", f.read(), flags=re.S | re.M)


@pytest.mark.skipif(not os.path.exists(README), reason="the README is not here")
@pytest.mark.parametrize("snippet", _snippets(), ids=lambda s: s.strip().splitlines()[-1][:40])
def test_snippet_runs(snippet: str, tmp_path: Any) -> None:
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(multipeer.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr

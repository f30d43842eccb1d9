"""The layers depend one way: the MSDA core needs torch alone; classifier imports no mixenv."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(script: str) -> set[str]:
    code = f"import sys; {script}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_the_msda_core_imports_neither_gymnasium_nor_stable_baselines3():
    modules = imported_modules("import mixenv.msda")
    assert "torch" in modules
    assert not {m for m in modules if m.split(".")[0] in ("gymnasium", "stable_baselines3")}


def test_classifier_imports_nothing_from_mixenv():
    assert not {m for m in imported_modules("import classifier") if m.startswith("mixenv")}
    for path in (ROOT / "classifier").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] in ("mixenv", "agents")], path

"""`kdkeras.distill` sits below the runs layer: it imports nothing from above it.

Layers point down (models <- losses <- distill <- training <- reproduce <-
experiments); `kdkeras.export` imports `kdkeras.training`, so it counts as above.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ABOVE = ("kdkeras.training", "kdkeras.reproduce", "kdkeras.export", "experiments")


def _imported_modules(path: Path) -> list:
    """Every module an import statement of `path` names (at any depth, lazy imports too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            # `from kdkeras import training` names the package in the alias.
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _is_above(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in ABOVE)


def test_the_scan_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom kdkeras import training\n\n"
                      "def f():\n    import experiments.common\n"
                      "    from kdkeras.export import tflite_interpreter\n")
    assert [n for n in _imported_modules(source) if _is_above(n)] == [
        "kdkeras.training", "experiments.common", "kdkeras.export",
        "kdkeras.export.tflite_interpreter"]


@pytest.mark.parametrize("path", sorted((ROOT / "kdkeras" / "distill").glob("*.py")),
                         ids=lambda p: p.name)
def test_no_distill_module_imports_a_layer_above(path):
    assert [n for n in _imported_modules(path) if _is_above(n)] == []


def test_importing_distill_loads_no_layer_above():
    code = ("import sys, kdkeras.distill, kdkeras.distill.steps_tf, kdkeras.distill.nonfinite, "
            "kdkeras.distill.teacher_outputs\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'experiments' or "
            "m.startswith(('kdkeras.training', 'kdkeras.reproduce', 'kdkeras.export'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**__import__("os").environ,
                                                    "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip().splitlines()[-1] == "[]"

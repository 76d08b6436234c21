"""The package's functions stay short enough to read whole: none over :data:`MAX_LINES` lines.

A function's length is counted from its ``def`` line (decorators left out) to its last line, docstring
and comments included, as Python's ``ast`` records them; nested functions count in their parent too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_uci

MAX_LINES = 60
PACKAGE = Path(airflow_provider_uci.__file__).resolve().parent


def function_lengths(root: Path) -> list[tuple[str, str, int]]:
    """``(file, function, lines)`` for every function and method of every module under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                found.append((str(path.relative_to(root.parent)), node.name, lines))
    return found


def test_the_package_is_found_whole() -> None:
    lengths = function_lengths(PACKAGE)
    files = {file for file, _, _ in lengths}
    assert "airflow_provider_uci/emulator/app.py" in files and "airflow_provider_uci/exhaust/load.py" in files
    assert len(lengths) > 500


def test_the_counting_leaves_decorators_out_and_counts_nested_functions(tmp_path: Path) -> None:
    package = tmp_path / "sample"
    package.mkdir()
    (package / "module.py").write_text(
        "import functools\n\n\n@functools.cache\ndef outer():\n    def inner():\n        return 1\n\n"
        "    return inner()\n"
    )
    assert sorted(function_lengths(package)) == [
        ("sample/module.py", "inner", 2),
        ("sample/module.py", "outer", 5),
    ]


def test_no_function_of_the_package_is_over_the_limit() -> None:
    over = [
        f"{file}: {name} is {lines} lines"
        for file, name, lines in function_lengths(PACKAGE)
        if lines > MAX_LINES
    ]
    assert not over, f"functions over {MAX_LINES} lines (split them along a real seam):\n" + "\n".join(over)

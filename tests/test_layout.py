"""The house rules docs/design.md states: its module table lists every module, and no module
imports one listed below it (so no import circle); no module above 500 lines, no function above 90."""
import ast
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def design_table():
    """[(module names of one row, the imports the row names)] in the table's order."""
    with open(os.path.join(ROOT, "docs", "design.md"), encoding="utf-8") as f:
        rows = [line.split(" | ") for line in f if line.startswith("| `") and ".py`" in line.split(" | ")[0]]
    return [(re.findall(r"`(\w+)\.py`", cells[0]), cells[-1].rstrip(" |\n")) for cells in rows]


def project_imports(path, project):
    """The project modules a file imports anywhere in it (inside functions too)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & project


def test_every_module_is_in_the_table_and_imports_only_those_above_it():
    table = design_table()
    rank = {m: (i, j) for i, (modules, _) in enumerate(table) for j, m in enumerate(modules)}  # order within a row too
    project = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "*.py"))}
    assert project == set(rank), f"modules not in docs/design.md's table: {project ^ set(rank)}"
    for modules, listed in table:
        row_imports = set()
        for module in modules:
            imported = project_imports(os.path.join(ROOT, module + ".py"), project)
            above = {m for m in imported if rank[m] < rank[module]}
            assert imported == above, f"{module}.py imports {sorted(imported - above)}, listed below it"
            row_imports |= imported
        if "all of the above" not in listed:  # the row names exactly what its modules import of the project
            named = {w for w in re.findall(r"\w+", listed) if w in project}
            assert named == row_imports, f"{modules}' row names {sorted(named)}; they import {sorted(row_imports)}"


def test_no_module_above_500_lines_no_function_above_90():
    for path in glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "bench", "*.py")):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        name = os.path.relpath(path, ROOT)
        assert source.count("\n") <= 500, f"{name} has {source.count(chr(10))} lines"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 90, f"{name}: {node.name} is {length} lines"

"""The layout the README describes holds: imports point one way (no cycle in lyco_lint or lyco_train, counting
imports inside functions and under TYPE_CHECKING), lint-only modules stay light, the rule modules own the codes
their table says, and no source module grows past one concern's size."""

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = ("lyco_lint", "lyco_train")
MAX_LINES = 800
# Long modules that are one concern (a rule family's catalog) may pass the limit.
LONG_ONE_CONCERN = {"lyco_lint/rules/algorithms.py"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that ``path`` imports, anywhere in the file (module level, functions, TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import name` imports the submodule pkg.name when there is one, else pkg itself
            targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    known = set(modules)
    graph = {name: imported_modules(name, path, known) for name, path in modules.items()}
    # importing a.b.c runs a/__init__ and a/b/__init__ first: a package's own imports are the child's too,
    # but a child is not an import of its parent package unless the package names it
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return stack[stack.index(child) :] + [child]
            if child not in state:
                found = visit(child)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_function_level_imports_count(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from lyco_lint import catalog\n\nif False:\n    import lyco_lint.documents\n")
    assert imported_modules("x", path, {"lyco_lint", "lyco_lint.catalog", "lyco_lint.documents"}) == {
        "lyco_lint.catalog", "lyco_lint.documents"
    }


def test_lyco_lint_never_imports_the_trainer():
    """The trainer builds on lyco_lint, never the other way round; only the CLI, which wires every command, calls it."""
    graph = import_graph()
    offenders = {
        name: sorted(t for t in targets if t.startswith("lyco_train"))
        for name, targets in graph.items()
        if name.startswith("lyco_lint") and name != "lyco_lint.cli"
    }
    assert not {name: targets for name, targets in offenders.items() if targets}


def test_knowledge_and_documents_are_lower_layers():
    """knowledge/ may import documents, jsonpos, schemas and itself; documents is a leaf over jsonpos."""
    graph = import_graph()
    allowed_below_knowledge = {"lyco_lint", "lyco_lint.documents", "lyco_lint.jsonpos", "lyco_lint.schemas", "lyco_lint.fastschema", "lyco_lint.knowledge"}
    for name, targets in graph.items():
        if name.startswith("lyco_lint.knowledge"):
            assert {t for t in targets if not t.startswith("lyco_lint.knowledge.")} <= allowed_below_knowledge, name
    assert graph["lyco_lint.documents"] <= {"lyco_lint.jsonpos", "lyco_lint"}


def test_no_source_module_holds_several_concerns():
    long = {
        path.relative_to(ROOT).as_posix(): lines
        for path in source_modules().values()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(long) <= LONG_ONE_CONCERN, long


def test_the_wheel_has_no_maintainer_tools():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["lyco_lint", "lyco_train"]
    assert not (ROOT / "lyco_lint" / "tools").exists() and (ROOT / "tools" / "build_family_index.py").is_file()


def test_rule_modules_own_the_codes_of_their_table():
    from lyco_lint.rules import CODE_TABLE, load_rules

    for code, entry in load_rules().items():
        owner = entry.check.__module__ if entry.check is not None else None
        owners = [module for module, (_what, ranges) in CODE_TABLE.items() if any(low <= code <= high for low, high in ranges)]
        assert len(owners) == 1, (code, owners)
        if owner is not None:
            assert owner == owners[0], f"{code} is registered in {owner}, but the code table gives it to {owners[0]}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_citation_of_files_outside_the_repository(package):
    for path in (ROOT / package).rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "/work/shared" not in text and "§" not in text, path

"""The shape of the code, checked: imports run one way, services import no views, the core names
no provider, no function is longer than a screen.

Read from the source with `ast` (imports inside functions included), so a cycle hidden in a
function, or a provider's name creeping back into the core, fails here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lti_tool"
# Modules that serve requests (Flask views and what only views use).
VIEWS = {
    "lti_tool.lti.routes", "lti_tool.rooms.routes", "lti_tool.rooms.attendance_views", "lti_tool.rooms.access",
    "lti_tool.rooms.blueprint", "lti_tool.webhooks", "lti_tool.health",
    "lti_tool.admin.routes", "lti_tool.admin.access", "lti_tool.calendars.routes",
    "lti_tool.reminders.routes",
    "lti_tool.rooms.timetable_views", "lti_tool.recordings.routes", "lti_tool.rooms.settings_views",
    "lti_tool.providers.bbb.routes", "lti_tool.providers.livekit.routes", "lti_tool.providers.livekit.classroom",
}
# Modules whose job is to assemble the app from the others (they may import anything).
ASSEMBLY = {"lti_tool", "lti_tool.rooms", "lti_tool.admin", "lti_tool.calendars", "lti_tool.reminders",
            "lti_tool.recordings",
            "lti_tool.cli",
            "lti_tool.providers.bbb", "lti_tool.providers.livekit"}
CORE = ("lti_tool.rooms", "lti_tool.attendance", "lti_tool.grades", "lti_tool.lti", "lti_tool.recordings")
PROVIDER_WORDS = ("bbb", "bigbluebutton", "livekit")
LONGEST_FUNCTION = 60


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


MODULES = _modules()


def _imported(module: str, is_package: bool, node) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    prefix = (
        ".".join(base + [node.module]) if node.level and node.module else ".".join(base) if node.level else node.module
    )
    names = []
    for alias in node.names:
        candidate = f"{prefix}.{alias.name}"
        names.append(candidate if candidate in MODULES else prefix)
    return names


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, (path, is_package) in MODULES.items():
        imports = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports |= {name for name in _imported(module, is_package, node) if name in MODULES and name != module}
        graph[module] = imports
    return graph


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(start):
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_module_graph_is_read_whole():
    assert {"lti_tool.rooms.service", "lti_tool.providers.bbb.provider"} <= set(GRAPH)
    assert "lti_tool.models" in GRAPH["lti_tool.rooms.service"]


def test_imports_run_one_way_without_cycles_even_inside_functions():
    assert _cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_services_models_and_errors_import_no_view():
    offenders = {module: sorted(GRAPH[module] & VIEWS) for module in GRAPH
                 if module not in VIEWS | ASSEMBLY and GRAPH[module] & VIEWS}
    assert offenders == {}


@pytest.mark.parametrize("core", CORE)
def test_the_core_names_no_provider(core):
    providers = ("lti_tool.providers.bbb", "lti_tool.providers.livekit")
    for module, (path, _) in MODULES.items():
        if module != core and not module.startswith(core + "."):
            continue
        assert not {name for name in GRAPH[module] if name.startswith(providers)}
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        words = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                 and isinstance(node.value, str) and id(node) not in docstrings
                 and any(word in node.value.lower() for word in PROVIDER_WORDS)]
        assert words == [], f"{module} names a provider: {words}"


def test_no_function_is_longer_than_a_screen():
    long = []
    for module, (path, _) in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LONGEST_FUNCTION:
                    long.append(f"{module}.{node.name}: {length} lines")
    assert long == []

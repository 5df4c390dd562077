"""Import rules between the layers, read from the source with `ast` (nothing is imported).

    cas/         the engine: knows nothing of converters or the FUSE view (cas/cli/, the
                 composition root, is the one exception), in layers (see cas/__init__.py)
    converters/  formats over the engine; never the FUSE view
    fusefs/      the FUSE view over the engine; never the converters
    lmdb         only the index layer; msgpack only cas/records.py and cas/ingest/session.py
    tables       each index table named in one owning module (TABLE_OWNERS)
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("cas", "converters", "fusefs")

# These two import lmdb under `if TYPE_CHECKING:`, for `lmdb.Transaction` annotations only
# (see test_other_lmdb_imports_are_for_annotations_only); cas/index.py is the only real user.
LMDB_FOR_ANNOTATIONS = {"cas/model/namespace.py", "cas/blobs/catalog.py"}


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@cache
def imports(path: Path) -> frozenset[str]:
    """Absolute names of every module a file imports, anywhere in it (functions too);
    relative imports resolved against the file's package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]  # a module's package; for __init__.py, the package itself
    found: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return frozenset(found)


def importers(top: str) -> set[str]:
    """Files that import `top` or anything under it."""
    return {rel(p) for p in sources() if any(m == top or m.startswith(top + ".") for m in imports(p))}


def in_package(files: set[str], package: str) -> set[str]:
    return {f for f in files if f.startswith(package + "/")}


def test_the_scanner_sees_the_imports_it_must_see():
    """Guards the rules below against a scanner that finds nothing."""
    assert len(sources()) >= 25
    assert "converters" in {m.split(".")[0] for m in imports(ROOT / "cas" / "cli" / "items.py")}  # inside functions
    assert "cas.errors" in imports(ROOT / "cas" / "blobs" / "backends" / "local.py")
    assert "cas.ingest.statcache" in imports(ROOT / "cas" / "ingest" / "session.py")  # `from cas.ingest import x`
    assert "cas/index.py" in importers("lmdb") and "cas/records.py" in importers("msgpack")


def test_engine_does_not_import_converters_or_fusefs():
    for layer in ("converters", "fusefs"):
        assert {f for f in in_package(importers(layer), "cas") if not f.startswith("cas/cli/")} == set(), layer


def test_converters_do_not_import_fusefs():
    assert in_package(importers("fusefs"), "converters") == set()


def test_fusefs_does_not_import_converters():
    assert in_package(importers("converters"), "fusefs") == set()


def test_lmdb_only_in_the_index():
    assert importers("lmdb") - LMDB_FOR_ANNOTATIONS == {"cas/index.py"}


@pytest.mark.parametrize("file", sorted(LMDB_FOR_ANNOTATIONS))
def test_other_lmdb_imports_are_for_annotations_only(file):
    tree = parse(ROOT / file)
    annotations = [n for node in ast.walk(tree) for n in _annotations(node)]
    in_annotations = {id(n) for a in annotations for n in ast.walk(a)}
    runtime = [n.lineno for n in ast.walk(tree)
               if isinstance(n, ast.Name) and n.id == "lmdb" and id(n) not in in_annotations]
    assert runtime == [], f"{file} uses lmdb outside type annotations at lines {runtime}"


def _annotations(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        return [a.annotation for a in every if a is not None and a.annotation is not None] + \
            ([node.returns] if node.returns else [])
    if isinstance(node, ast.AnnAssign):
        return [node.annotation]
    return []


def test_msgpack_only_in_records_and_session():
    assert importers("msgpack") == {"cas/records.py", "cas/ingest/session.py"}


# -- no import cycle in cas/ ---------------------------------------------------------------------
def runtime_imports(path: Path) -> set[str]:
    """Modules `path` imports when it runs, anywhere in it (functions too), resolved to module
    names: `from . import x` is module cas.x when x is one; imports under
    `if TYPE_CHECKING:` are left out (they never run)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]
    tree = parse(path)
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            found |= submodules if submodules <= set(cas_modules()) else {base}
    return found


@cache
def cas_modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (ROOT / "cas").rglob("*.py")}


def import_cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    modules = cas_modules()
    graph = {m: sorted(i for i in runtime_imports(p) if i in modules and i != m) for m, p in modules.items()}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in order:
            visit(module)
    return cycles


def test_cas_has_no_import_cycle():
    assert import_cycles() == []


def test_the_cycle_finder_sees_a_cycle(monkeypatch):
    """Guards the test above against a finder that finds nothing: the store importing the
    import session (which needs the store, through prepare) is a cycle."""
    real = runtime_imports

    def with_edge(path: Path) -> set[str]:
        return real(path) | ({"cas.ingest.session"} if path.name == "store.py" else set())

    monkeypatch.setattr(sys.modules[__name__], "runtime_imports", with_edge)
    assert any({"cas.store", "cas.ingest.session", "cas.ingest.prepare"} <= set(cycle) for cycle in import_cycles())


# -- layers: each imports only from itself and below ------------------------------------------------
LAYERS = ("core", "blobs", "model", "store", "ingest", "versions", "maintenance", "top")  # bottom to top


def layer_of(module: str) -> str:
    """The layer of a cas module, as cas/__init__.py maps them."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    if module == "cas.store":
        return "store"
    return "top" if module in ("cas", "cas.__main__", "cas.cli", "cas.dataset") or module.startswith("cas.cli.") \
        else "core"


def upward_imports() -> list[str]:
    modules = cas_modules()
    return [f"{m} ({layer_of(m)}) imports {i} ({layer_of(i)})" for m, p in sorted(modules.items())
            for i in sorted(runtime_imports(p))
            if i in modules and LAYERS.index(layer_of(i)) > LAYERS.index(layer_of(m))]


def test_every_layer_imports_only_from_itself_and_below():
    assert upward_imports() == []


def test_at_most_a_dozen_modules_sit_directly_in_cas():
    direct = sorted(p.name for p in (ROOT / "cas").glob("*.py"))
    assert len(direct) <= 12, direct


def test_the_layer_check_sees_an_upward_import(monkeypatch):
    real = runtime_imports

    def with_edge(path: Path) -> set[str]:
        return real(path) | ({"cas.maintenance.gc"} if path.name == "catalog.py" else set())

    monkeypatch.setattr(sys.modules[__name__], "runtime_imports", with_edge)
    assert upward_imports() == ["cas.blobs.catalog (blobs) imports cas.maintenance.gc (maintenance)"]


def test_index_tables_are_reached_through_the_index_only():
    """`index.db[...]` (an LMDB table handle) appears in cas/index.py alone: every other module
    uses Index.get/put/delete/scan/getter or the namespace."""
    reaching = sorted(f"{rel(path)}:{node.lineno}" for path in sources() if rel(path) != "cas/index.py"
                      for node in ast.walk(parse(path))
                      if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                      and node.value.attr == "db")
    assert reaching == []


# -- one settings object ---------------------------------------------------------------------------
# The two other uses are not cas settings: the mount passes the whole environment to its
# daemon, and the binding tells fusepy's loader where libfuse3 is.
ENVIRONMENT_USERS = {"cas/config.py", "fusefs/mount.py", "fusefs/binding.py"}


def environment_users() -> set[str]:
    """Files that read or write the process environment (os.environ, os.getenv, os.putenv)."""
    return {rel(p) for p in sources() for node in ast.walk(parse(p))
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv")
            and isinstance(node.value, ast.Name) and node.value.id == "os"}


def test_the_environment_is_read_in_config_only():
    assert environment_users() - ENVIRONMENT_USERS == set()
    assert "cas/config.py" in environment_users()  # the scanner sees a use


# -- one owner per index table -----------------------------------------------------------------------
# Each table is named, as a string, in one module: the others call that module's functions.
# cas/index.py implements the tables (the schema in meta, the change log) and names any.
TABLE_OWNERS = {
    "meta": "cas/blobs/cache.py",  # the cache's hit and miss counters; the schema version is cas/index.py's
    "blobs": "cas/blobs/catalog.py", "pins": "cas/blobs/catalog.py",
    "damaged": "cas/blobs/damage.py",
    "stat": "cas/ingest/statcache.py",
    "projects": "cas/model/namespace.py", "datasets": "cas/model/namespace.py", "items": "cas/model/namespace.py",
    # dirty is written with every item, so its owner is the namespace, below the snapshots that read it
    "dirty": "cas/model/namespace.py",
    "changes": "cas/index.py",
    "refs": "cas/versions/snapshots.py",  # head, set_head, drop_head
}


def _module_literals(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "string"` constants, so that `index.get(txn, DB, key)` names DB's table."""
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for t in node.targets if isinstance(t, ast.Name)}


@cache
def index_table_methods() -> dict[str, int]:
    """Methods of cas.index.Index that take a table name: name -> position of `dbname` in a call."""
    tree = parse(ROOT / "cas" / "index.py")
    index_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Index")
    return {f.name: [a.arg for a in f.args.args].index("dbname") - 1 for f in index_class.body
            if isinstance(f, ast.FunctionDef) and "dbname" in [a.arg for a in f.args.args]}


def _table_names() -> set[str]:
    tree = parse(ROOT / "cas" / "index.py")
    names = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "DB_NAMES" for t in n.targets))
    return set(ast.literal_eval(names))


def _on_an_index(func: ast.Attribute) -> bool:
    """Whether a call's receiver reads as the index: `index`, `self.index`, `store.index`, ..."""
    receiver = func.value
    return (receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", None)) == "index"


def table_uses(path: Path) -> list[tuple[int, str]]:
    """(line, table) of every call of an Index method with a table name in `path`, in line order;
    a table the call does not name (a variable, another module's constant) is '?'."""
    tree = parse(path)
    literals = _module_literals(tree)
    methods = index_table_methods()
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in methods):
            continue
        position = methods[node.func.attr]
        arg = next((k.value for k in node.keywords if k.arg == "dbname"), None) or \
            (node.args[position] if len(node.args) > position else None)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            table = arg.value
        elif isinstance(arg, ast.Name) and arg.id in literals:
            table = literals[arg.id]
        else:
            table = "?"
        if table in _table_names() or (table == "?" and arg is not None and _on_an_index(node.func)):
            found.append((node.lineno, table))
    return sorted(found)


def tables_reached_outside_their_owner() -> list[str]:
    return [f"{rel(path)}:{line} names table {table!r} (its owner is {TABLE_OWNERS.get(table, 'not known')})"
            for path in sources() if rel(path) != "cas/index.py"
            for line, table in table_uses(path) if TABLE_OWNERS.get(table) != rel(path)]


def test_every_table_has_one_owner():
    assert set(TABLE_OWNERS) == _table_names()
    assert set(index_table_methods()) >= {"get", "put", "getter", "delete", "scan", "values", "prune", "scan_range",
                                          "count"}


def test_each_table_is_named_only_in_its_owner():
    assert tables_reached_outside_their_owner() == []


def test_the_table_check_sees_every_way_of_naming_a_table(tmp_path):
    """Guards the test above against a scanner that finds nothing: a literal, a module
    constant, a keyword and a variable table are all seen, and a dict's get is not."""
    source = tmp_path / "cas" / "offender.py"
    source.parent.mkdir()
    source.write_text('DB = "items"\n'
                      'def f(store, index, txn, table, doc):\n'
                      '    store.index.get(txn, "blobs", b"k")\n'
                      '    index.scan(txn, DB)\n'
                      '    index.count(txn, dbname="refs")\n'
                      '    index.values(txn, table)\n'
                      '    doc.get("items", None)\n'
                      '    by_index.values()\n')
    assert table_uses(source) == [(3, "blobs"), (4, "items"), (5, "refs"), (6, "?")]


# -- one place per location ------------------------------------------------------------------------
# Code that needs to know where a blob's bytes are asks its Place (`store.places.of(rec)`) or the
# location's traits (`traits(location)`): the locations are compared only where they are defined.
LOCATION_DEFINERS = {"cas/blobs/backends/places.py", "cas/records.py"}


def _names_a_location(node: ast.expr) -> bool:
    """Whether an operand is a location: `x.location`, a variable `location`, or a tuple holding one."""
    if isinstance(node, ast.Tuple):
        return any(_names_a_location(e) for e in node.elts)
    return (isinstance(node, ast.Attribute) and node.attr == "location") or \
        (isinstance(node, ast.Name) and node.id == "location")


def location_comparisons(path: Path) -> list[int]:
    """The lines of every ==, !=, in or not in whose operands include a location."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Compare)
            and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops)
            and any(_names_a_location(operand) for operand in [node.left, *node.comparators])]


def test_locations_are_compared_only_where_they_are_defined():
    assert [f"{rel(path)}:{line}" for path in sources() if rel(path) not in LOCATION_DEFINERS
            for line in location_comparisons(path)] == []


def test_the_location_check_sees_a_comparison(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f(rec, old, location):\n    a = rec.location == 's3'\n"
                     "    b = (old.location, old.pack) != ('pack', 'x')\n    c = location in ('s3',)\n"
                     "    return a, b, c, rec.location is None, rec.size == 3\n")
    assert location_comparisons(probe) == [2, 3, 4]

"""Dependencies point one way: loading a config imports no torch and no component, and the package's
module-level imports form no cycle."""
import ast
import os
import subprocess
import sys

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "uer_like")


def test_loading_a_config_imports_no_torch_and_no_component():
    code = ("import sys, uer_like.config as c; c.load_config('bert/base_config.json', encoder='zen'); "
            "print(' '.join(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    loaded = r.stdout.split()
    assert "uer_like.config" in loaded
    bad = [m for m in loaded if m == "torch" or m.startswith("torch.") or m in ("uer_like.model", "uer_like.modules")
           or m.split(".")[:2] in (["uer_like", "targets"], ["uer_like", "encoders"], ["uer_like", "embeddings"],
                                   ["uer_like", "layers"], ["uer_like", "training"], ["uer_like", "io"])]
    assert not bad, bad


def _modules():
    out = {}
    for d, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if f == "__init__.py" else rel] = (os.path.join(d, f), f == "__init__.py")
    return out


def _module_level_imports(name, path, is_package, modules):
    """The package modules `name` imports when it is imported (statements outside functions and classes)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = name if is_package else name.rpartition(".")[0]
    found = set()

    def visit(statements):
        for n in statements:
            if isinstance(n, ast.Import):
                found.update(a.name for a in n.names if a.name in modules)
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    base = package
                    for _ in range(n.level - 1):
                        base = base.rpartition(".")[0]
                    base += "." + n.module if n.module else ""
                for a in n.names:
                    if f"{base}.{a.name}" in modules:
                        found.add(f"{base}.{a.name}")
                    elif base in modules:
                        found.add(base)
            elif isinstance(n, (ast.If, ast.Try, ast.With)):
                visit(n.body)
                visit(getattr(n, "orelse", []))
                visit(getattr(n, "finalbody", []))
                for h in getattr(n, "handlers", []):
                    visit(h.body)

    visit(tree.body)
    found.discard(name)
    return found


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            connect(v)
    return out


def test_the_module_level_import_graph_has_no_cycle():
    modules = _modules()
    graph = {m: _module_level_imports(m, *modules[m], modules) for m in modules}
    assert len(graph) > 100 and "uer_like.data.native" in graph["uer_like.data.preprocess"]
    assert _cycles(graph) == []
    # the test finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    # the data layer knows nothing of models, and native.py nothing of preprocess.py
    assert "uer_like.data.preprocess" not in graph["uer_like.data.native"]

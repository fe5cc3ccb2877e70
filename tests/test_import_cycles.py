"""Every module of the package imports first, on its own: an import cycle that only works when
some other module happened to be imported before (edge_isp.teacher.classifiers did, through
edge_isp.train) fails here."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import edge_isp

# Modules whose import needs an optional dependency that the test environment may lack.
OPTIONAL = ("edge_isp.runtime.sources.picamera2_source", "edge_isp.contract.tensorrt_build")


def test_each_module_imports_first():
    names = [
        m.name
        for m in pkgutil.walk_packages(edge_isp.__path__, "edge_isp.")
        if m.name not in OPTIONAL and not m.name.endswith("__main__")
    ]
    code = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'edge_isp' or m.startswith('edge_isp.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        failed.append(f'{name}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(names) > 100


# Packages that the export side builds on, or that run on a board without it: none of them may
# import edge_isp.export, at module level or inside a function (the runtime's torch backend takes
# the checkpoint loading and the contract's torch module from edge_isp.model).
INDEPENDENT_OF_EXPORT = ("edge_isp.runtime", "edge_isp.contract", "edge_isp.deploy", "edge_isp.model")


def _imports_of(source: str, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``source`` (a module named ``module``),
    relative ones resolved, ``from edge_isp import export`` read as edge_isp.export, and
    ``importlib.import_module("...")`` with a literal name counted too."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.rsplit(".", node.level)[0]
                base = f"{parent}.{base}" if base else parent
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _imports_export(source: str, module: str) -> list[str]:
    return [
        f"{module}:{line} imports {name}"
        for line, name in _imports_of(source, module)
        if name == "edge_isp.export" or name.startswith("edge_isp.export.")
    ]


def test_the_import_scan_sees_every_form_of_importing_export():
    source = (
        "import edge_isp.export.onnx_export\n"
        "from edge_isp.export.onnx_export import export_onnx\n"
        "from edge_isp import export\n"
        "def f():\n"
        "    from ...export import loading\n"
        "    importlib.import_module('edge_isp.export.workflow')\n"
        "from edge_isp import model\n"
        "import edge_isp.exporter_tools\n"
    )
    hits = _imports_export(source, "edge_isp.runtime.backends.x")
    assert {int(h.split(":")[1].split()[0]) for h in hits} == {1, 2, 3, 5, 6}, hits


def test_runtime_contract_deploy_and_model_never_import_export():
    root = Path(edge_isp.__file__).parent
    offending, scanned = [], 0
    for package in INDEPENDENT_OF_EXPORT:
        folder = root.joinpath(*package.split(".")[1:])
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            offending += _imports_export(path.read_text(encoding="utf-8"), module)
            scanned += 1
    assert scanned > 50
    assert not offending, "\n".join(offending)

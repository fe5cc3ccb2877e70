"""Every module of the package imports first, on its own: an import cycle that only works when
some other module happened to be imported before (edge_isp.teacher.classifiers did, through
edge_isp.train) fails here."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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

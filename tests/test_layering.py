"""segopt_core is a pure library: it must import neither Prefect nor MLflow."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import segopt_core


def test_core_imports_no_orchestration():
    modules = [m.name for m in pkgutil.walk_packages(segopt_core.__path__, "segopt_core.")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('prefect', 'mlflow'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"segopt_core imported orchestration modules: {result.stdout}{result.stderr}"
    )

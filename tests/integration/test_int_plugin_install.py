"""
Packaging: a plain C{pip install} of the project into a fresh virtualenv (no system site-packages) gives a
C{twistd} that lists both plugins, with the plugin file where Twisted looks for it and without clobbering
Twisted's own C{twisted/plugins/__init__.py} (daphne broke on exactly this twice).

The source is copied to a temporary folder first so the build never writes into the shared checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
                                ".hypothesis", "tests", "bench", "*.db", "dropin.cache")


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # Never from the checkout: its twisted/plugins folder would be found through the working directory.
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          cwd="/", env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def test_int_pip_install_registers_both_plugins(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORE)
    venv = tmp_path / "venv"
    started = time.monotonic()
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # Really isolated: the fresh interpreter sees neither the project's venv nor the system site-packages.
    probe = _run([str(python), "-c", "import sys; print(sys.flags.no_site, sys.prefix);"
                                     "import importlib.util as u; print(u.find_spec('twisted'))"])
    assert probe.stdout.split("\n")[1] == "None", probe.stdout

    install = _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)])
    if install.returncode != 0:
        # Offline fallback: build with the venv's own setuptools instead of an isolated build environment.
        _run([str(python), "-m", "pip", "install", "--quiet", "setuptools>=68", "wheel"])
        install = _run([str(python), "-m", "pip", "install", "--quiet", "--no-build-isolation",
                        "--disable-pip-version-check", str(source)])
    need(install.returncode == 0, f"pip install failed (no package index?): {install.stderr[-2000:]}")
    installed_in = time.monotonic() - started

    twistd = venv / "bin" / "twistd"
    help_ = _run([str(twistd), "--help"], timeout=120)
    assert help_.returncode == 0, help_.stderr
    commands = {line.split()[0] for line in help_.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert {"sapproxy", "sapproxy-simulator"} <= commands, help_.stdout
    assert "Traceback" not in help_.stdout + help_.stderr

    site = _run([str(python), "-c", "import twisted, os; print(os.path.dirname(twisted.__file__))"])
    plugins = Path(site.stdout.strip()) / "plugins"
    assert (plugins / "sapproxy_plugin.py").is_file()
    # Twisted's own package marker is still Twisted's (our wheel must not ship one).
    init = (plugins / "__init__.py").read_text()
    assert "getPlugins" in init or "__path__" in init, init[:500]
    record = _run([str(python), "-m", "pip", "show", "-f", "sapproxy"])
    files = [line.strip() for line in record.stdout.splitlines()]
    assert "twisted/plugins/sapproxy_plugin.py" in files
    assert "twisted/__init__.py" not in files and "twisted/plugins/__init__.py" not in files

    # Each plugin's options load from the installed package (lazy ServiceMaker import works).
    for plugin, option in (("sapproxy", "--config"), ("sapproxy-simulator", "--event-delay")):
        sub = _run([str(twistd), plugin, "--help"], timeout=120)
        assert sub.returncode == 0 and option in sub.stdout, sub.stdout + sub.stderr
    assert installed_in < 240, f"install took {installed_in:.0f} s"

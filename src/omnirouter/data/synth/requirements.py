"""The system and Python packages a build needs, installed on the spot when that is possible.

Debian packages are installed with apt-get when running as root (one `apt-get update` first);
Python packages with the running interpreter's pip. Otherwise the build stops with a message
that names exactly what to install.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class MissingDependencyError(RuntimeError):
    """A text-to-speech engine, voice or text source is not installed and could not be."""


@dataclass(frozen=True)
class Requirement:
    package: str  # Debian package, or PyPI package when `python_module` is set
    executable: str = ""  # on PATH once the package is installed
    path: str = ""  # exists once the package is installed
    python_module: str = ""  # importable once the package is installed

    def is_met(self) -> bool:
        if self.executable and shutil.which(self.executable) is None:
            return False
        if self.path and not Path(self.path).exists():
            return False
        return not self.python_module or importlib.util.find_spec(self.python_module) is not None


SOX = Requirement("sox", executable="sox")


def ensure_requirements(requirements: Iterable[Requirement]) -> None:
    """Install what is missing, or raise `MissingDependencyError` naming the packages."""
    missing = {requirement for requirement in requirements if not requirement.is_met()}
    debian = sorted(
        {requirement.package for requirement in missing if not requirement.python_module}
    )
    python = sorted({requirement.package for requirement in missing if requirement.python_module})
    if debian:
        _install_debian(debian)
    if python:
        _install_python(python)
    still_missing = sorted(
        {requirement.package for requirement in missing if not requirement.is_met()}
    )
    if still_missing:
        raise MissingDependencyError(
            f"still missing after installation: {' '.join(still_missing)}; install them by hand"
        )


def _install_debian(packages: list[str]) -> None:
    hint = f"sudo apt-get install {' '.join(packages)}   (or: make system-deps)"
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise MissingDependencyError(f"missing system packages for the corpus; run:\n  {hint}")
    logger.info("installing Debian packages: %s", " ".join(packages))
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        result = subprocess.run(
            command, capture_output=True, text=True, env=environment, check=False
        )
        if result.returncode != 0:
            raise MissingDependencyError(
                f"`{' '.join(command)}` failed:\n{result.stderr.strip()}\ninstall by hand: {hint}"
            )


def _install_python(packages: list[str]) -> None:
    logger.info("installing Python packages: %s", " ".join(packages))
    command = [sys.executable, "-m", "pip", "install", *packages]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MissingDependencyError(
            f"`{' '.join(command)}` failed:\n{result.stderr.strip()[-2000:]}\n"
            f"install by hand: pip install {' '.join(packages)}"
        )
    importlib.invalidate_caches()

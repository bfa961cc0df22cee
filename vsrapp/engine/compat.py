"""The one place where vsrapp touches basicsr's import-time breakage.

basicsr 1.4.2 (the latest release) does ``from torchvision.transforms.functional_tensor import rgb_to_grayscale``
in ``basicsr/data/degradations.py``. torchvision 0.17 renamed that private module to ``_functional_tensor``, so a
plain ``import basicsr`` fails with ModuleNotFoundError on any current torchvision. We register the old name as an
alias of the new module before importing basicsr. basicsr also takes seconds to import (it scans and registers
all its archs, models and datasets), so callers import it through :func:`basicsr` only where it is used.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

_OLD = "torchvision.transforms.functional_tensor"
_NEW = "torchvision.transforms._functional_tensor"


def _alias_functional_tensor() -> None:
    if _OLD in sys.modules:
        return
    try:
        importlib.import_module(_OLD)
    except ModuleNotFoundError:
        sys.modules[_OLD] = importlib.import_module(_NEW)


def basicsr(submodule: str = "") -> ModuleType:
    """Import ``basicsr`` (or ``basicsr.<submodule>``) with the torchvision alias in place."""
    _alias_functional_tensor()
    return importlib.import_module("basicsr" + (f".{submodule}" if submodule else ""))

"""Optional dependencies: import them where a feature needs them, or say which extra installs them."""

from __future__ import annotations

import importlib
from typing import Any

from dkp_tui.errors import DkpError

# module -> the extra that installs it (pyproject.toml's optional-dependencies); `dkp doctor` lists them all
EXTRAS = {"transformers": "depth", "scipy": "h36m", "onnx": "export", "onnxruntime": "export", "onnxscript": "export",
          "tensorboard": "tensorboard", "sleap_io": "labels"}


def require(module: str, extra: str = "") -> Any:
    """The module, or a DkpError naming the extra (exit 2 and one line, not an ImportError traceback); ``extra``
    names it where the feature has its own (scipy is both `h36m`'s and `smooth`'s)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = extra or EXTRAS.get(module.split(".")[0], "dev")
        raise DkpError(f"this needs the optional package {module.split('.')[0]!r}: "
                       f"pip install -e '.[{extra}]' (or pip install 'dkp-tui[{extra}]')") from None

"""Test set-up: the package under test is the installed ``multipeer`` (the source tree alone lacks the
generated bindings and the native library), and the tests' helpers are importable."""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_SOURCE = os.path.dirname(_HERE)

_BUILT = ("_native", "multipeer_ffi", "multipeer_ffi.py")
if not any(os.path.exists(os.path.join(_SOURCE, "multipeer", name)) for name in _BUILT):
    # Running from the source directory would shadow the installed package with an incomplete one.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _SOURCE]
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

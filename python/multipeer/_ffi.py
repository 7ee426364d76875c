"""The generated bindings of the native library, wherever the build placed them in this package.

The UniFFI-generated module ``multipeer_ffi`` sits next to the native library, either in the subpackage
``multipeer._native`` (the wheel's layout) or directly in this package as ``multipeer/multipeer_ffi.py`` (or
a ``multipeer/multipeer_ffi/`` subpackage). Every public name of it is available here.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .multipeer_ffi import *  # noqa: F403
else:
    try:
        from ._native.multipeer_ffi import *  # noqa: F403
    except ModuleNotFoundError as e:
        if e.name not in (f"{__package__}._native", f"{__package__}._native.multipeer_ffi"):
            raise
        from .multipeer_ffi import *  # noqa: F403

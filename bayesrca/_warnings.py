"""Where a warning points: the first frame outside bayesrca (the user's line), as pandas does."""

from __future__ import annotations

import os
import sys

__all__ = ["user_stacklevel"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """``stacklevel`` for a ``warnings.warn`` call made right here by the caller: the number of
    frames up to the first one whose code lies outside the bayesrca package (however deep the
    call is nested, decorators and tasks included)."""
    frame = sys._getframe(1)  # the function calling warnings.warn: stacklevel 1
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level

"""The root of segopt's domain exceptions, so callers (the CLI) catch one type.

Each domain exception keeps its `ValueError` (bad input: the user can fix it) or `RuntimeError` (the work
failed) base as well, so existing `except ValueError` handlers still apply.
"""

from __future__ import annotations


class SegoptError(Exception):
    """Base of every segopt domain exception; the message names the file or value and the fix."""


class OptionError(SegoptError, ValueError):
    """An option value is unknown or out of range (backend, precision, variant, cell, batch size)."""


class RunFailed(SegoptError, RuntimeError):
    """A flow's work failed as a whole (no variant succeeded); the report it names says why, per variant."""

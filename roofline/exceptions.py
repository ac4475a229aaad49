"""Errors a user can fix. Library code raises these; only the CLI prints them."""

from __future__ import annotations

__all__ = ["RooflineError", "SpecError", "InfeasibleConfigError", "RooflineWarning", "SpecDeprecationWarning"]


class RooflineError(Exception):
    """Root of every error roofline raises on bad input."""


class SpecError(RooflineError):
    """A spec file, sweep file or argument is malformed (names the file, key and what is allowed)."""


class InfeasibleConfigError(RooflineError):
    """The configuration cannot run: out of memory, or a parallelism the model cannot be split by."""


class RooflineWarning(UserWarning):
    """Input that still works but should change; the CLI prints it as one line on stderr, once."""


class SpecDeprecationWarning(RooflineWarning):
    """A spec file uses a layout of an older schema version (it still loads)."""

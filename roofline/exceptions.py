"""Errors a user can fix. Library code raises these; only the CLI prints them."""

from __future__ import annotations

__all__ = ["RooflineError", "SpecError", "InfeasibleConfigError"]


class RooflineError(Exception):
    """Root of every error roofline raises on bad input."""


class SpecError(RooflineError):
    """A spec file, sweep file or argument is malformed (names the file, key and what is allowed)."""


class InfeasibleConfigError(RooflineError):
    """The configuration cannot run: out of memory, or a parallelism the model cannot be split by."""

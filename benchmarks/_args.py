"""The output-folder argument the regeneration scripts of this folder share."""

from __future__ import annotations

import sys
from pathlib import Path


def out_dir(argv: list[str], doc: str | None, default: str | None = None, flags: tuple[str, ...] = ()) -> Path:
    """The one positional argument (``default`` when none is given and it is not None), after the
    ``flags`` the script takes; ``-h``/``--help`` prints ``doc`` and exits 0, and an unknown option or
    a wrong count prints it and exits 2 (a dash word is never taken for a folder name)."""
    if any(a in ("-h", "--help") for a in argv):
        print(doc)
        raise SystemExit(0)
    words = [a for a in argv if a not in flags]
    bad = [a for a in words if a.startswith("-")]
    if bad or len(words) > 1 or (not words and default is None):
        print(f"{' '.join(bad) + ': unknown option; ' if bad else ''}usage:\n{doc}", file=sys.stderr)
        raise SystemExit(2)
    return Path(words[0] if words else default)

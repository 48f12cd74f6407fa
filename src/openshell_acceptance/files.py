"""Facts about files on disk that reports and checks need: modes and digests."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterable
from pathlib import Path


def file_modes(paths: Iterable[Path]) -> dict[str, str]:
    """Each path's permission bits in octal, e.g. ``{"/pki/ca.key": "0o600"}``."""
    return {str(path): oct(stat.S_IMODE(path.stat().st_mode)) for path in paths}


def file_digests(paths: Iterable[Path]) -> dict[str, str]:
    """Each file's SHA-256; a digest names a certificate or key without its bytes."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

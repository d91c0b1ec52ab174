"""Where the course's embedded data lives, and checksums of the files we ship.

``$GENLAB_DATA`` overrides the data folder (default: ``data/`` at the repository root, next to ``lib/``).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

#: sha256 of every embedded data file we ship (a dataset registry with checksums, as in d2l).
CHECKSUMS: dict[str, str] = {
    "mnist5k.npz": "246e0c30eeea57c8d0037d3f38c8e00651ec204cc61b8022563e9aeeb9d756f4",
}


def data_dir() -> Path:
    """The folder holding embedded data and shipped checkpoints."""
    return Path(os.environ.get("GENLAB_DATA", REPO_ROOT / "data"))


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def embedded_file(name: str, *, verify: bool = True) -> Path:
    """Path of a shipped data file, checked against :data:`CHECKSUMS`; a clear error if missing or corrupt."""
    path = data_dir() / name
    if not path.exists():
        raise FileNotFoundError(f"embedded data file {path} is missing: it ships with the repository; restore it with "
                                f"`git checkout -- data/{name}` (or set GENLAB_DATA to the folder that holds it)")
    if verify and name in CHECKSUMS and sha256(path) != CHECKSUMS[name]:
        raise ValueError(f"embedded data file {path} is corrupt (sha256 mismatch): restore it with "
                         f"`git checkout -- data/{name}`")
    return path

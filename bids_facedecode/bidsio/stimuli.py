"""Stimulus files: resolve ``stim_file`` paths, identify images by content, read gender labels."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..images import content_hash

GENDER_PREFIX = re.compile(r"^([MF])(?=[0-9_\-.])", re.IGNORECASE)


@dataclass
class StimulusIndex:
    """Maps stimulus paths (relative to the stimuli folder) to content hashes and back.

    ``first_path[sha1]`` is the first file seen with that content; identical images copied
    into several run folders share one identity.
    """

    root: Path
    sha_of: dict[str, str] = field(default_factory=dict)
    first_path: dict[str, str] = field(default_factory=dict)

    def identify(self, stim_file: str, events_file: Path) -> str:
        """Return the content hash of ``stim_file`` (relative to the stimuli folder)."""
        key = stim_file.replace("\\", "/").lstrip("/")
        if key.startswith("stimuli/"):
            key = key[len("stimuli/"):]
        sha = self.sha_of.get(key)
        if sha is None:
            path = self.root / key
            if not path.is_file():
                raise DataError(f"{events_file}: stimulus '{stim_file}' not found under {self.root}")
            sha = content_hash(path)
            self.sha_of[key] = sha
            self.first_path.setdefault(sha, key)
        return sha

    def path(self, sha: str) -> Path:
        """Absolute path of one file holding the image with content hash ``sha``."""
        return self.root / self.first_path[sha]

    def name(self, sha: str) -> str:
        """File name (no folders) of the first file with that content."""
        return Path(self.first_path[sha]).name


def gender_from_name(name: str) -> str | None:
    """``"M0123.jpg" -> "M"``, ``"F0559.jpg" -> "F"``, otherwise ``None``."""
    m = GENDER_PREFIX.match(Path(name).name)
    return m.group(1).upper() if m else None

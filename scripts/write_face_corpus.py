"""Write the simulator's face corpus as PNG files (the training set of the shipped models).

Usage: python scripts/write_face_corpus.py OUT_DIR N SEED [SIZE]
"""

from __future__ import annotations

import sys
from pathlib import Path

from bids_facedecode.images import save_image
from bids_facedecode.simulate.faces import GENDER_INDEX, face_corpus


def main(argv: list[str]) -> int:
    out, n, seed = Path(argv[0]), int(argv[1]), int(argv[2])
    size = int(argv[3]) if len(argv) > 3 else 64
    out.mkdir(parents=True, exist_ok=True)
    chunk = 2000
    for start in range(0, n, chunk):
        images, params = face_corpus(min(chunk, n - start), seed=seed * 100003 + start, size=size)
        for i, (img, p) in enumerate(zip(images, params, strict=True)):
            prefix = "M" if p[GENDER_INDEX] > 0.5 else "F"
            save_image(img, out / f"{prefix}{start + i:06d}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

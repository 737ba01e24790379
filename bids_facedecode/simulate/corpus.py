"""A corpus of procedural face images for training latent models (PNG + ``params.tsv``)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import CantCreateError
from ..images import to_uint8
from .faces import GENDER_INDEX, PARAM_NAMES, render_faces, sample_face_params

log = logging.getLogger(__name__)
PARAMS_FILE = "params.tsv"


def corpus_file_names(genders: np.ndarray) -> list[str]:
    """``M000001.png``, ``F000002.png``, ...: gender prefix and 1-based index."""
    return [f"{'M' if g == 1.0 else 'F'}{i + 1:06d}.png" for i, g in enumerate(genders)]


def write_face_corpus(
    out_dir: str | Path, n: int, seed: int, size: int = 64, batch: int = 2000
) -> Path:
    """Render ``n`` faces from ``seed`` and write them as PNGs plus ``params.tsv``.

    The images equal ``faces.face_corpus(n, seed, size)``. The folder is built under a
    temporary name and renamed when complete.

    Parameters
    ----------
    out_dir : path-like, folder to create (must not exist, or be empty)
    n : int, number of faces
    seed : int
    size : int, image side in pixels
    batch : int, faces rendered at a time

    Returns
    -------
    path : Path of the corpus folder; ``params.tsv`` has a ``file`` column and one
        column per generative parameter.
    """
    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CantCreateError(f"{out}: output folder exists and is not empty")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise CantCreateError(f"{out}: cannot create output folder ({exc})") from exc
    try:
        params = sample_face_params(n, np.random.default_rng(seed))
        names = corpus_file_names(params[:, GENDER_INDEX])
        for start in range(0, n, batch):
            imgs = render_faces(params[start : start + batch], size)
            for k, img in enumerate(imgs):
                Image.fromarray(to_uint8(img)).save(tmp / names[start + k])
            log.info("faces corpus: %d / %d", min(start + batch, n), n)
        table = pd.DataFrame(params, columns=list(PARAM_NAMES))
        table.insert(0, "file", names)
        table.to_csv(tmp / PARAMS_FILE, sep="\t", index=False, float_format="%.6g")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

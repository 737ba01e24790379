"""Latent spaces as the participant level uses them, and the joint latent matrix of a participant."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..bidsio.run_cache import cache_write_failed
from ..bidsio.stimuli import StimulusIndex
from ..config import Settings
from ..errors import DataError
from ..latents.base import LatentModel
from .inputs import ParticipantInputs

LOG = logging.getLogger(__name__)


@dataclass
class LatentSpace:
    """A latent space as the participant level sees it: a model, a table, or both.

    Latents come from the table when one is given (precomputed), else from the model's
    encoder; reconstructions need a model whose latent size matches.
    """

    name: str
    model: LatentModel | None = None
    table: object | None = None  # latents.precomputed.LatentTable

    @property
    def dim(self) -> int:
        return int(self.table.latent_dim if self.table is not None else self.model.latent_dim)

    @property
    def can_reconstruct(self) -> bool:
        return self.model is not None and self.model.latent_dim == self.dim

    def latents_for(self, shas: list[str], index: StimulusIndex) -> np.ndarray:
        """Latents of the stimuli with these content hashes, shape (N, D)."""
        if self.table is not None:
            return np.asarray(self.table.lookup([index.first_path[s] for s in shas], shas,
                                                files=[index.path(s) for s in shas]), np.float32)
        return self.model.encode_paths([index.path(s) for s in shas])


def open_spaces(settings: Settings, device: torch.device) -> list[LatentSpace]:
    """Load the model and/or table of every requested latent space."""
    from ..latents.precomputed import load_latent_table
    from ..latents.registry import load_latent_model, shipped_models

    shipped = shipped_models()
    spaces = []
    for name in settings.latent_spaces:
        table = load_latent_table(settings.latents[name]) if name in settings.latents else None
        model = None
        if name in settings.latent_models:
            model = load_latent_model(settings.latent_models[name], device=device)
        elif name in shipped:
            model = load_latent_model(name, device=device)
        if model is None and table is None:
            raise DataError(f"latent space '{name}': no model and no --latents table")
        space = LatentSpace(name, model, table)
        if table is not None and model is not None and not space.can_reconstruct:
            LOG.warning("%s: precomputed latents have D=%d but the model has D=%d; "
                        "no reconstructions in this space", name, table.latent_dim, model.latent_dim)
        spaces.append(space)
    return spaces



@dataclass
class JointLatents:
    """Latents of all decoded spaces side by side, centred on each space's training mean."""

    names: list[str]
    offsets: list[int]
    dims: list[int]
    train: dict[str, np.ndarray]   # sha -> (sum of D,) centred
    means: dict[str, np.ndarray]   # space -> (D,)
    test: dict[str, np.ndarray]    # space -> (n_test, D) uncentred
    train_raw: dict[str, np.ndarray] = field(default_factory=dict)  # space -> (n_train, D)
    # False: the GLM has no latent block (``train`` is all zeros, so the training trials are
    # modelled by the face regressor alone); every space is then decoded with a saved decoder
    latent_block: bool = True

    @property
    def total_dim(self) -> int:
        return int(sum(self.dims))

    def z_columns(self, space: str) -> list[str]:
        k = self.names.index(space)
        return [f"z{i}" for i in range(self.offsets[k] + 1, self.offsets[k] + self.dims[k] + 1)]


def encode_cached(space: LatentSpace, shas: list[str], index: StimulusIndex,
                  cache_dir: Path | None) -> np.ndarray:
    """:meth:`LatentSpace.latents_for`, through a cache of encoded requests in ``cache_dir``.

    Encoding thousands of stimuli with a model takes seconds to minutes on a CPU; a rerun of
    the participant (``--overwrite``, a crash, a new option) reads the latents back instead.
    The key is the model's :meth:`~bids_facedecode.latents.base.LatentModel.fingerprint`, the
    device type and the stimuli's content hashes in order, so a hit returns exactly what
    encoding the same request would (batch composition included). Table lookups are not cached.
    An unreadable entry is encoded again (with a warning); an unwritable ``cache_dir`` only
    costs the cache.

    Parameters
    ----------
    space : LatentSpace
    shas : list of str
        Content hashes of the stimuli (``StimulusIndex`` keys).
    index : StimulusIndex
    cache_dir : Path or None
        No caching when None.

    Returns
    -------
    ndarray of shape (len(shas), D), float32
    """
    if cache_dir is None or space.table is not None or space.model is None or not shas:
        return space.latents_for(shas, index)
    model = space.model
    device = torch.device(getattr(model, "device", "cpu")).type
    key = hashlib.sha1("\n".join([model.fingerprint(), device, *shas]).encode()).hexdigest()
    path = cache_dir / f"latents-{space.name}-{key[:24]}.npy"
    if path.is_file():
        try:
            z = np.load(path, allow_pickle=False)
            if z.shape != (len(shas), space.dim) or z.dtype != np.float32 or not np.isfinite(z).all():
                raise ValueError(f"shape {z.shape}, dtype {z.dtype}")
            return z
        except (OSError, ValueError) as exc:
            LOG.warning("Discarding unreadable latent cache file %s (%s); encoding again", path, exc)
    z = np.ascontiguousarray(space.latents_for(shas, index), dtype=np.float32)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.save(f, z)
        os.replace(tmp, path)
    except OSError as exc:
        cache_write_failed(cache_dir, exc, "latent cache", "a rerun will encode the stimuli "
                           "again", tmp)
    return z


def compute_latents(spaces: list[LatentSpace], inputs: ParticipantInputs,
                    cache_dir: Path | None = None, latent_block: bool = True) -> JointLatents:
    """Encode (or look up) training and test stimuli in every space; centre on training means.

    ``cache_dir`` keeps encoded latents for a rerun (:func:`encode_cached`). Without
    ``latent_block`` (every space decoded with a saved decoder, too few training trials for a
    latent map) the design's latent columns are left empty: see :attr:`JointLatents.latent_block`.
    """
    names, offsets, dims, blocks = [], [], [], []
    means, test, train_raw = {}, {}, {}
    row_of = {s: i for i, s in enumerate(inputs.train_ids)}
    trial_rows = [row_of[s] for s in inputs.train_trial_ids]  # (list.index: quadratic)
    off = 0
    for space in spaces:
        t0 = time.perf_counter()
        z_train = (encode_cached(space, inputs.train_ids, inputs.index, cache_dir)
                   if inputs.train_ids else np.zeros((0, space.dim), np.float32))
        z_test = encode_cached(space, inputs.test_ids, inputs.index, cache_dir)
        # no training trials (decoded with --decoder-from, which brings its own mean): zeros
        mean = z_train[trial_rows].mean(axis=0) if trial_rows else np.zeros(space.dim, np.float32)
        names.append(space.name)
        offsets.append(off)
        dims.append(z_train.shape[1])
        off += z_train.shape[1]
        blocks.append(z_train - mean)
        means[space.name], test[space.name], train_raw[space.name] = mean, z_test, z_train
        LOG.info("sub-%s %s: latents of %d training and %d test images (D=%d) in %.1f s",
                 inputs.subject, space.name, len(z_train), len(z_test), z_train.shape[1],
                 time.perf_counter() - t0)
    joint = np.concatenate(blocks, axis=1).astype(np.float64)
    n_trials = len(inputs.train_trial_ids)
    need = max(dims) + 1 + len(inputs.test_ids) + len(inputs.imagery_ids)
    if latent_block and 0 < n_trials <= need:  # none: no map to fit (validation.check_enough_trials)
        raise DataError(
            f"sub-{inputs.subject}: {n_trials} training trials cannot estimate a map with "
            f"{max(dims)} latent dimensions (needs more trials than the {need} regressors of "
            "latents, face, test and imagery; use a smaller latent space or more runs)"
        )
    if not latent_block:
        joint = np.zeros_like(joint)
    return JointLatents(names, offsets, dims, dict(zip(inputs.train_ids, joint, strict=True)), means, test,
                        train_raw, latent_block)



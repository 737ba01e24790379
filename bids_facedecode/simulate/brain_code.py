"""The simulated brain's face code: which features of a face its voxels respond to linearly.

The face-selective voxels of the simulator respond linearly to a *code vector* of each face
(``psc_v = a_v·face + Σ_k w_vk c_k``). The code is chosen per dataset:

* ``params`` — the face's 24 standardised generative parameters (shape, colour, gender, …),
  gender coded ±1. A linear map from these to a latent space is only approximate, so no
  latent space is the brain's exactly.
* ``pca``, ``vaegan`` or a model directory — the face's latents under that model, centred on
  the subject's training faces. The brain is then, by construction, linear in that space,
  and a decoder or an encoding model in that space is correctly specified.
* ``mix`` — a weighted mix of codes: each component is scaled as below, multiplied by the
  square root of its weight and the components concatenated, so a weight is the share of
  the signal variance that component carries.

Every code is scaled by one number so that its total variance over the subject's training
faces equals that of the ``params`` code (``len(PARAM_NAMES)``, each parameter about unit
variance): the voxel weights have the same SD whatever the code, so the signal-to-noise ratio
stays comparable between codes. A single scalar keeps the code an exact linear image of the
space it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from .faces import PARAM_NAMES

PARAMS = "params"
MIX = "mix"
CODE_FEATURES = "braincode_features.tsv"
LATENT_CODES = ("pca", "vaegan")
TARGET_VARIANCE = float(len(PARAM_NAMES))


@dataclass(frozen=True)
class BrainCode:
    """A brain code: a single component, or a weighted ``mix`` of components.

    Attributes
    ----------
    components : tuple of (name, weight)
        ``name`` is ``params``, a shipped model (``pca``, ``vaegan``) or a model directory;
        the weights are positive and sum to 1.
    """

    components: tuple[tuple[str, float], ...]

    @property
    def label(self) -> str:
        """``params``, ``pca``, … or ``mix(pca=0.7,params=0.3)``."""
        if len(self.components) == 1:
            return self.components[0][0]
        return MIX + "(" + ",".join(f"{n}={w:g}" for n, w in self.components) + ")"

    @property
    def is_params(self) -> bool:
        return self.components == ((PARAMS, 1.0),)


def parse_brain_code(code: str, mix: tuple[str, ...] | list[str] = ()) -> BrainCode:
    """The code from the command line's ``--brain-code`` and ``--brain-code-mix`` values.

    Parameters
    ----------
    code : str
        ``params``, ``pca``, ``vaegan``, a model directory, or ``mix``.
    mix : sequence of str
        With ``mix``: ``NAME=WEIGHT`` items (names as for ``code``); weights are normalised
        to sum to 1.

    Returns
    -------
    BrainCode
    """
    if code != MIX:
        if mix:
            raise UsageError("--brain-code-mix: only with --brain-code mix")
        _check_component(code)
        return BrainCode(((code, 1.0),))
    if len(mix) < 2:
        raise UsageError("--brain-code mix: give at least two --brain-code-mix NAME=WEIGHT items")
    parsed = []
    for item in mix:
        name, sep, value = str(item).rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name or not np.isfinite(weight) or weight <= 0:
            raise UsageError(f"--brain-code-mix: expected NAME=WEIGHT with a positive weight, "
                             f"got '{item}'")
        _check_component(name)
        parsed.append((name, weight))
    names = [n for n, _ in parsed]
    if len(set(names)) != len(names):
        raise UsageError(f"--brain-code-mix: a component is named twice ({', '.join(names)})")
    total = sum(w for _, w in parsed)
    return BrainCode(tuple((n, w / total) for n, w in parsed))


def _check_component(name: str) -> None:
    if name == MIX:
        raise UsageError("--brain-code-mix: 'mix' cannot be a component of a mix")
    if name in (PARAMS, *LATENT_CODES):
        return
    if not (Path(name) / "config.json").is_file():
        raise UsageError(f"--brain-code: '{name}' is neither params, pca, vaegan, mix nor a "
                         "model directory (config.json + model.safetensors)")


def _scale(features: np.ndarray, n_train: int) -> np.ndarray:
    """Centre on the training rows and scale to the params code's total variance."""
    train = features[:n_train]
    centred = features - train.mean(axis=0)
    total = float(centred[:n_train].var(axis=0).sum())
    if total <= 0:
        raise UsageError("--brain-code: the model gives the same latents for every face")
    return centred * np.sqrt(TARGET_VARIANCE / total)


def code_features(code: BrainCode, std_params: np.ndarray, images: np.ndarray, n_train: int
                  ) -> np.ndarray:
    """The code vector of each face.

    Parameters
    ----------
    code : BrainCode
    std_params : array of shape (N, P)
        Standardised generative parameters (:func:`brain.standardise_params`), training
        faces first.
    images : array of shape (N, H, W, 3) or None
        The faces as shown (needed by latent codes), in the order of ``std_params``.
    n_train : int
        The first ``n_train`` rows are the subject's training faces (they define the
        centring and the scale of a latent code).

    Returns
    -------
    ndarray of shape (N, K), float64
        ``K = P`` for ``params``, the latent dimension for a model, their sum for a mix.
    """
    if code.is_params:
        return np.asarray(std_params, dtype=np.float64)
    from ..latents.registry import load_latent_model

    parts = []
    for name, weight in code.components:
        if name == PARAMS:
            feats = np.asarray(std_params, dtype=np.float64)
        else:
            model = load_latent_model(name, device="cpu")
            feats = model.encode(images).astype(np.float64)
        parts.append(np.sqrt(weight) * _scale(feats, n_train))
    return np.hstack(parts)


def subject_code(code: BrainCode, train_params: np.ndarray, test_params: np.ndarray,
                 test_images: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One subject's code vectors of its training faces and of the shared test faces.

    Parameters
    ----------
    code : BrainCode
    train_params : array of shape (n_train, P)
        Raw generative parameters (:func:`faces.sample_face_params`) of the training faces.
    test_params : array of shape (n_test, P)
    test_images : array of shape (n_test, S, S, 3)
        The rendered test faces.
    image_size : int
        Side ``S`` at which the training faces are rendered (as in the stimuli).

    Returns
    -------
    train_code : ndarray of shape (n_train, K)
    test_code : ndarray of shape (n_test, K)
    """
    from .brain import standardise_params
    from .faces import render_faces

    std = standardise_params(np.vstack([train_params, test_params]))
    images = None
    if not code.is_params:
        images = np.concatenate([render_faces(train_params, image_size), test_images])
    feats = code_features(code, std, images, len(train_params))
    return feats[: len(train_params)], feats[len(train_params):]


def write_code_features(path: Path, stim_rows: list[dict],
                         codes: dict[int, tuple[np.ndarray, np.ndarray]],
                         test_sha1: list[str]) -> None:
    """Write ``braincode_features.tsv``: each subject's code vector of every stimulus it saw.

    A subject's training rows appear in face order (each run lists its own faces in order)
    and a test face is known by the content hash of its image.
    """
    frames = []
    for sub, (train_code, test_code) in codes.items():
        label = f"sub-{sub:02d}"
        seen: set[str] = set()
        train_rows, test_rows = [], []
        for r in stim_rows:
            if r.get("subject") != label or r["sha1"] in seen:
                continue
            seen.add(r["sha1"])
            if r["role"] == "train":
                train_rows.append((r["sha1"], train_code[len(train_rows)]))
            else:
                test_rows.append((r["sha1"], test_code[test_sha1.index(r["sha1"])]))
        for role, rows in (("train", train_rows), ("test", test_rows)):
            feats = np.array([c for _, c in rows])
            frames.append(pd.DataFrame({
                "sha1": [h for h, _ in rows], "subject": label, "role": role,
                **{f"c{k + 1}": feats[:, k] for k in range(feats.shape[1])},
            }))
    pd.concat(frames).to_csv(path, sep="\t", index=False,
                             float_format="%.6g")


def write_params_table(bids_root: Path, path: Path) -> Path:
    """The generative parameters of every stimulus as a precomputed latent table.

    Analysing a simulated dataset with ``--latents params=PATH`` adds the space the ``params``
    code is linear in (columns ``sha1``, ``z1..zP`` in :data:`faces.PARAM_NAMES` order, the
    values of ``stimuli.tsv``: gender 1 male / 0 female, an affine image of the code's ±1).

    Parameters
    ----------
    bids_root : Path
        The simulated dataset.
    path : Path
        The TSV to write.

    Returns
    -------
    Path
    """
    stim = pd.read_csv(Path(bids_root) / "sourcedata" / "simulation" / "stimuli.tsv", sep="\t")
    stim = stim[stim["role"] != "placeholder"].drop_duplicates("sha1")
    table = pd.DataFrame({"sha1": stim["sha1"]})
    for k, name in enumerate(PARAM_NAMES):
        table[f"z{k + 1}"] = stim[name].to_numpy(float)
    table.to_csv(path, sep="\t", index=False)
    return path

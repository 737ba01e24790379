"""The simulated brain: MNI grid, face-selective regions, voxel weights and the BOLD model.

Every voxel's percent signal change (PSC) is

    psc_v(t) = a_v * face(t) + sum_k w_vk * p_k(t) + drift_v(t) + motion_v(t) + e_v(t)

where ``face(t)`` is the HRF-convolved boxcar of the face trials (imagery trials enter
with gain ``imagery_gain``; one-back repeats evoke ``face`` only, their identity-specific
response being suppressed by repetition), ``p_k(t)`` are HRF-convolved amplitude regressors whose
amplitudes are the trial's standardised generative parameters (:func:`standardise_params`),
``e_v`` is AR(1) noise. The BOLD intensity is ``S0_v * (1 + psc_v / 100)`` where ``S0``
comes from nilearn's bundled MNI152 template; voxels outside the brain hold low noise.

Parameter weights ``w_vk`` exist only in the face-selective spheres of :data:`REGIONS` and are
Gaussian draws of SD ``weight_pct * gain`` for every parameter, gender included (coded +1 male /
-1 female; seven other parameters are correlated with it, see
:data:`bids_facedecode.simulate.faces.GENDER_LOADINGS`). Occipital voxels outside the spheres
respond to any face (``a_v``) without identity weights. The ROI atlas (:func:`roi_labels`) has a
control region with neither, in every subject.
All functions here are pure (arrays in, arrays out); files are written by
:mod:`bids_facedecode.simulate.dataset` and the modules it calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .faces import GENDER_INDEX


@dataclass(frozen=True)
class Region:
    """A bilateral spherical face-selective region (centre given for the right hemisphere)."""

    name: str
    roi: str  # occipital | temporal | frontoparietal (the control region has no sphere)
    center_mm: tuple[float, float, float]
    radius_mm: float
    gain: float  # scale of the parameter weights
    face_amp: float  # mean face response (PSC)


REGIONS: tuple[Region, ...] = (
    Region("OFA", "occipital", (40.0, -80.0, -8.0), 16.0, 1.0, 1.2),
    Region("FFA", "temporal", (40.0, -54.0, -18.0), 14.0, 0.9, 1.5),
    Region("STS", "temporal", (50.0, -46.0, 10.0), 14.0, 0.6, 1.0),
    Region("IFG", "frontoparietal", (44.0, 20.0, 20.0), 14.0, 0.45, 0.7),
    Region("IPS", "frontoparietal", (30.0, -60.0, 46.0), 14.0, 0.45, 0.6),
)
ROI_NAMES: tuple[str, ...] = ("occipital", "temporal", "frontoparietal", "control")
OCCIPITAL_FACE_AMP = 0.6  # broad occipital response to any face (PSC)
CENTER_JITTER_MM = 3.0  # SD of the per-subject displacement of each sphere centre (per axis)
# the control region keeps this far beyond every sphere's nominal surface: 4 SD of the jitter
CONTROL_MARGIN_MM = 4.0 * CENTER_JITTER_MM


@dataclass(frozen=True)
class BrainSpace:
    """The data grid: MNI box at one resolution.

    Attributes
    ----------
    affine : ndarray (4, 4)
    shape : tuple (X, Y, Z)
    template : ndarray (X, Y, Z) float32, MNI152 T1 intensities in [0, 1]
    mask : ndarray (X, Y, Z) bool, the MNI152 brain mask
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    template: np.ndarray
    mask: np.ndarray

    @property
    def n_brain(self) -> int:
        return int(self.mask.sum())

    def brain_mm(self) -> np.ndarray:
        """MNI coordinates of brain voxels, shape (V, 3), in the order of ``mask``."""
        ijk = np.argwhere(self.mask)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


def load_brain(resolution: float) -> BrainSpace:
    """nilearn's bundled MNI152 template and brain mask resampled to ``resolution`` mm."""
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    res = int(resolution) if float(resolution).is_integer() else float(resolution)
    tpl = load_mni152_template(resolution=res)
    msk = load_mni152_brain_mask(resolution=res)
    template = np.asarray(tpl.dataobj, dtype=np.float32)
    template = template / max(float(template.max()), 1e-6)
    mask = np.asarray(msk.dataobj) > 0
    return BrainSpace(np.asarray(tpl.affine, dtype=np.float64), tuple(tpl.shape[:3]), template, mask)


def roi_labels(mm: np.ndarray) -> np.ndarray:
    """Crude ROI label per point: 1 occipital, 2 temporal, 3 frontoparietal, 4 control, 0 other.

    The three lobes hold the face-selective spheres of :data:`REGIONS`. The control region is
    what lies between the lobes (the central core: deep grey matter, brainstem, the front of
    the cerebellum) farther than :data:`CONTROL_MARGIN_MM` beyond the nominal surface of every
    sphere, in both hemispheres: no subject has face-selective voxels or a face response there
    (sphere centres move by :data:`CENTER_JITTER_MM` per axis), so it must decode at chance.

    Parameters
    ----------
    mm : ndarray (V, 3) MNI coordinates

    Returns
    -------
    labels : ndarray (V,) int16
    """
    x, y, z = mm[:, 0], mm[:, 1], mm[:, 2]
    lab = np.zeros(len(mm), dtype=np.int16)
    occ = y <= -70
    tem = ~occ & (z <= 22) & (np.abs(x) >= 24) & (y <= 10)
    fp = ~occ & ~tem & ((y > 10) | (z > 22))
    lab[occ], lab[tem], lab[fp] = 1, 2, 3
    far = np.ones(len(mm), dtype=bool)
    for reg in REGIONS:
        for sx in (1.0, -1.0):
            c = np.array(reg.center_mm) * np.array([sx, 1.0, 1.0])
            far &= np.sum((mm - c) ** 2, axis=1) > (reg.radius_mm + CONTROL_MARGIN_MM) ** 2
    lab[(lab == 0) & far] = 4
    return lab


@dataclass(frozen=True)
class SubjectTruth:
    """Known truth of one simulated subject; voxel arrays follow ``BrainSpace.mask`` order.

    Attributes
    ----------
    face_amp : (V,) float32, PSC response to a face (0 outside responsive voxels)
    weights : (P, V) float32, PSC per unit of each standardised parameter
    selective : (V,) bool, voxels with parameter weights (the face-selective spheres)
    region : (V,) int16, index into REGIONS + 1 (0 outside spheres)
    noise_sd : (V,) float32, AR(1) innovation-scaled noise SD in PSC
    drift_coef : (V, 3) float32, PSC amplitude of three slow cosines
    motion_gain : (6, V) float32, PSC per unit of each (standardised) motion parameter
    centers_mm : (len(REGIONS), 2, 3) float64, the subject's sphere centres (right, left)
    """

    face_amp: np.ndarray
    weights: np.ndarray
    selective: np.ndarray
    region: np.ndarray
    noise_sd: np.ndarray
    drift_coef: np.ndarray
    motion_gain: np.ndarray
    centers_mm: np.ndarray


def make_subject_truth(
    brain: BrainSpace,
    n_params: int,
    rng: np.random.Generator,
    *,
    weight_pct: float = 0.3,
    noise_pct: float = 1.0,
    drift_pct: float = 0.6,
    motion_pct: float = 2.0,
    center_jitter_mm: float = CENTER_JITTER_MM,
) -> SubjectTruth:
    """Draw a subject's face-selective regions, voxel weights and noise levels.

    Parameters
    ----------
    brain : BrainSpace
    n_params : int
        P, the number of generative parameters.
    rng : numpy.random.Generator
    weight_pct : float
        SD of the parameter weights (PSC per SD of a parameter) in a gain-1 region.
    noise_pct, drift_pct, motion_pct : float
        Noise SD, drift amplitude and motion-signal amplitude (PSC); 0 turns each off.
    center_jitter_mm : float
        SD of the per-subject displacement of each sphere centre.
    """
    mm = brain.brain_mm()
    v = len(mm)
    region = np.zeros(v, dtype=np.int16)
    centers = np.zeros((len(REGIONS), 2, 3))
    face_amp = np.zeros(v, dtype=np.float32)
    weights = np.zeros((n_params, v), dtype=np.float32)
    for r, reg in enumerate(REGIONS):
        for h, sx in enumerate((1.0, -1.0)):
            c = np.array(reg.center_mm) * np.array([sx, 1.0, 1.0])
            c = c + rng.normal(0.0, center_jitter_mm, 3)
            centers[r, h] = c
            inside = np.sum((mm - c) ** 2, axis=1) <= reg.radius_mm**2
            region[inside & (region == 0)] = r + 1
    selective = region > 0
    occipital = roi_labels(mm) == 1
    n_sel = int(selective.sum())
    gain = np.array([0.0] + [reg.gain for reg in REGIONS], dtype=np.float32)[region]
    amp = np.array([0.0] + [reg.face_amp for reg in REGIONS], dtype=np.float32)[region]
    weights[:, selective] = (
        rng.standard_normal((n_params, n_sel)).astype(np.float32) * weight_pct * gain[selective]
    )
    face_amp[selective] = amp[selective] * rng.uniform(0.7, 1.3, n_sel).astype(np.float32)
    broad = occipital & ~selective
    face_amp[broad] = OCCIPITAL_FACE_AMP * rng.uniform(0.5, 1.5, int(broad.sum()))
    noise_sd = (noise_pct * rng.uniform(0.8, 1.2, v)).astype(np.float32)
    drift_coef = (drift_pct * rng.standard_normal((v, 3)) / np.sqrt(3)).astype(np.float32)
    motion_gain = (motion_pct * rng.standard_normal((6, v))).astype(np.float32)
    return SubjectTruth(
        face_amp, weights, selective, region, noise_sd, drift_coef, motion_gain, centers
    )


def standardise_params(params: np.ndarray) -> np.ndarray:
    """Generative parameters as the brain sees them: gender coded +1 male / -1 female.

    Parameters
    ----------
    params : ndarray (n, P) as returned by :func:`faces.sample_face_params`

    Returns
    -------
    std : ndarray (n, P) float64
    """
    std = np.array(params, dtype=np.float64, copy=True)
    std[:, GENDER_INDEX] = 2.0 * std[:, GENDER_INDEX] - 1.0
    return std


def signal_regressors(
    onsets: np.ndarray,
    durations: np.ndarray,
    face_gain: np.ndarray,
    param_gain: np.ndarray,
    trial_params: np.ndarray,
    frame_times: np.ndarray,
    oversampling: int = 50,
) -> np.ndarray:
    """HRF-convolved regressors of the truth model (nilearn SPM HRF).

    Parameters
    ----------
    onsets, durations : ndarray (n,) seconds, the trials that carry a face (seen or imagined)
    face_gain : ndarray (n,) gain of the face response (1 seen, ``imagery_gain`` imagined)
    param_gain : ndarray (n,) gain of the parameter response (0 for one-back repeats:
        repetition suppression removes the identity-specific part of the response)
    trial_params : ndarray (n, P) standardised parameters of each trial's face
    frame_times : ndarray (T,) acquisition times in seconds
    oversampling : int

    Returns
    -------
    X : ndarray (T, 1 + P): column 0 the face regressor, then one per parameter
    """
    from nilearn.glm.first_level import compute_regressor

    amps = np.column_stack([face_gain, param_gain[:, None] * trial_params])
    out = np.empty((len(frame_times), amps.shape[1]))
    for j in range(amps.shape[1]):
        reg, _ = compute_regressor(
            (onsets, durations, amps[:, j]), "spm", frame_times, oversampling=oversampling
        )
        out[:, j] = reg[:, 0]
    return out


def ar1_noise(rng: np.random.Generator, n_t: int, sd: np.ndarray, rho: float) -> np.ndarray:
    """Stationary AR(1) noise with marginal SD ``sd``: ndarray (n_t, V) float32."""
    e = rng.standard_normal((n_t, len(sd)), dtype=np.float32)
    e[0] /= np.sqrt(1.0 - rho**2)  # start in the stationary distribution
    e = lfilter([np.sqrt(1.0 - rho**2)], [1.0, -rho], e, axis=0)
    return (e * sd).astype(np.float32)


def slow_cosines(n_t: int) -> np.ndarray:
    """Three slow cosines (periods 2T, T, 2T/3 frames): ndarray (n_t, 3)."""
    t = np.arange(n_t) + 0.5
    return np.column_stack([np.cos(np.pi * k * t / n_t) for k in (1, 2, 3)])


def simulate_motion(rng: np.random.Generator, n_t: int, scale: float = 1.0) -> np.ndarray:
    """Head motion, (n_t, 6) = trans_x/y/z (mm), rot_x/y/z (rad).

    A slow random walk, a few abrupt shifts (head jerks, ~0.5 mm) and jitter.
    """
    unit = np.array([1.0] * 3 + [0.02] * 3)  # 1 mm ~ 0.02 rad at 50 mm
    walk = np.cumsum(rng.standard_normal((n_t, 6)) * 0.02 * unit, axis=0)
    n_jumps = rng.poisson(5)
    for t in rng.integers(1, n_t, n_jumps):
        walk[t:] += rng.standard_normal(6) * 0.5 * unit
    walk += rng.standard_normal((n_t, 6)) * 0.03 * unit
    walk -= walk[0]
    return scale * walk


def motion_regressors(motion: np.ndarray) -> np.ndarray:
    """Motion in mm-equivalents (rotations at 50 mm), demeaned: (n_t, 6)."""
    m = motion * np.array([1.0] * 3 + [50.0] * 3)
    return m - m.mean(axis=0)


def brain_psc(
    truth: SubjectTruth,
    X: np.ndarray,
    rng: np.random.Generator | None,
    motion: np.ndarray,
    rho: float,
) -> np.ndarray:
    """Percent signal change of every brain voxel for one run.

    Parameters
    ----------
    truth : SubjectTruth
    X : ndarray (T, 1 + P), from :func:`signal_regressors`
    rng : Generator or None; None gives the noiseless signal (no noise, drift, motion)
    motion : ndarray (T, 6)
    rho : float, AR(1) coefficient

    Returns
    -------
    psc : ndarray (T, V) float32
    """
    n_t = X.shape[0]
    psc = np.zeros((n_t, len(truth.face_amp)), dtype=np.float32)
    resp = truth.face_amp != 0
    coef = np.vstack([truth.face_amp[None, resp], truth.weights[:, resp]])
    psc[:, resp] = (X @ coef).astype(np.float32)
    if rng is None:
        return psc
    psc += (slow_cosines(n_t) @ truth.drift_coef.T).astype(np.float32)
    psc += (motion_regressors(motion) @ truth.motion_gain).astype(np.float32)
    psc += ar1_noise(rng, n_t, truth.noise_sd, rho)
    return psc


def baseline_intensity(brain: BrainSpace) -> np.ndarray:
    """Mean BOLD intensity S0 of brain voxels from the T1 template: (V,) float32."""
    t = brain.template[brain.mask]
    return (350.0 + 650.0 * t).astype(np.float32)

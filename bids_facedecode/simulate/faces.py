"""Procedural cartoon faces with known generative parameters.

A face is a vector of ``P = len(PARAM_NAMES)`` generative parameters. ``gender`` is 1.0
(male) or 0.0 (female); every other parameter is standardised (roughly N(0, 1) over a
population). Hair length and volume, jaw shape, brow thickness, beard, face width and lip
colour are correlated with gender, so gender is visible in the image through several
features at once, never through a single pixel.

Rendering uses numpy only and is vectorised over a batch: every shape is a signed-distance
field whose coverage is ramped over one pixel (anti-aliased soft edges). Coordinates are
normalised to ``[-1, 1]`` on both axes (``y`` pointing down), so any ``size`` works.
"""

from __future__ import annotations

import numpy as np

PARAM_NAMES: tuple[str, ...] = (
    "gender",
    "face_width",
    "face_height",
    "jaw",
    "skin_tone",
    "skin_warmth",
    "hair_darkness",
    "hair_hue",
    "hair_length",
    "hair_volume",
    "eye_spacing",
    "eye_size",
    "eye_color",
    "brow_thickness",
    "brow_height",
    "nose_length",
    "nose_width",
    "mouth_width",
    "mouth_curve",
    "lip_color",
    "beard",
    "background_hue",
    "background_lightness",
    "light_direction",
)
GENDER_INDEX: int = PARAM_NAMES.index("gender")
N_PARAMS: int = len(PARAM_NAMES)

# Loadings of the gender sign (+1 male, -1 female) for gender-correlated parameters; each
# parameter is ``sqrt(1 - c**2) * N(0, 1) + c * sign`` so that its marginal variance is 1.
GENDER_LOADINGS: dict[str, float] = {
    "hair_length": -0.85,
    "hair_volume": -0.55,
    "jaw": 0.70,
    "brow_thickness": 0.65,
    "beard": 0.80,
    "face_width": 0.40,
    "lip_color": -0.45,
}

_IDX = {name: i for i, name in enumerate(PARAM_NAMES)}


def sample_face_params(
    n: int, rng: np.random.Generator, gender: np.ndarray | None = None
) -> np.ndarray:
    """Draw generative parameters for ``n`` faces.

    Parameters
    ----------
    n : int
        Number of faces.
    rng : numpy.random.Generator
        Source of randomness.
    gender : array of shape (n,), optional
        1.0 male / 0.0 female for each face; drawn with probability 0.5 when omitted.

    Returns
    -------
    params : ndarray of shape (n, P), float32
        Columns in the order of :data:`PARAM_NAMES`.
    """
    if n < 0:
        raise ValueError(f"'n' must be non-negative. Got {n} instead.")
    if gender is None:
        g = (rng.random(n) < 0.5).astype(np.float64)
    else:
        g = np.asarray(gender, dtype=np.float64).reshape(-1)
        if g.shape[0] != n or not np.all((g == 0.0) | (g == 1.0)):
            raise ValueError(f"'gender' must hold {n} values of 0 or 1. Got {g!r} instead.")
    z = rng.standard_normal((n, N_PARAMS))
    sign = 2.0 * g - 1.0
    for name, c in GENDER_LOADINGS.items():
        j = _IDX[name]
        z[:, j] = np.sqrt(1.0 - c * c) * z[:, j] + c * sign
    z[:, GENDER_INDEX] = g
    return z.astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _col(v: np.ndarray) -> np.ndarray:
    """(n,) -> (n, 1, 1) for broadcasting against (1, H, W) grids."""
    return v[:, None, None]


def _coverage(d: np.ndarray, px: float) -> np.ndarray:
    """Signed distance (negative inside) -> anti-aliased coverage in [0, 1]."""
    return np.clip(0.5 - d / px, 0.0, 1.0)


def _ellipse_d(x, y, cx, cy, ax, ay):
    """Approximate signed distance to an axis-aligned ellipse (arrays broadcast)."""
    r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    return (r - 1.0) * np.minimum(ax, ay)


def _box_d(x, y, cx, cy, hx, hy, rad):
    """Signed distance to a rounded box of half sizes (hx, hy) and corner radius rad."""
    qx = np.abs(x - cx) - hx + rad
    qy = np.abs(y - cy) - hy + rad
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return outside + inside - rad


def _blend(img: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """In place: img = img * (1 - alpha) + color * alpha.

    img (n, H, W, 3); alpha (n, H, W); color (n, 3) or (n, H, W, 3).
    """
    a = alpha[..., None]
    if color.ndim == 2:
        color = color[:, None, None, :]
    img *= 1.0 - a
    img += a * color


def _render_chunk(p: np.ndarray, size: int) -> np.ndarray:
    n = p.shape[0]
    f = {name: p[:, i].astype(np.float32) for i, name in enumerate(PARAM_NAMES)}
    male = f["gender"]
    px = np.float32(2.0 / size)
    coords = (np.arange(size, dtype=np.float32) + 0.5) * px - 1.0
    x = coords[None, None, :]
    y = coords[None, :, None]

    # background: hue on a colour circle, lightness, vertical gradient
    theta = 0.9 * f["background_hue"] + 2.0
    bg_v = np.clip(0.58 + 0.12 * f["background_lightness"], 0.2, 0.95)
    phases = np.array([0.0, 2.094, -2.094], dtype=np.float32)
    bg = bg_v[:, None] * (1.0 + 0.28 * np.cos(theta[:, None] + phases[None, :]))
    img = np.empty((n, size, size, 3), dtype=np.float32)
    img[:] = np.clip(bg, 0.0, 1.0)[:, None, None, :]
    img *= (1.0 - 0.12 * (y + 1.0) / 2.0)[..., None]

    # geometry of the head
    a = np.clip(0.47 + 0.04 * f["face_width"], 0.34, 0.62)  # face half width
    b = np.clip(0.60 + 0.045 * f["face_height"], 0.46, 0.74)  # face half height
    cy = np.full(n, -0.02, dtype=np.float32)
    taper = np.clip(0.28 - 0.12 * f["jaw"], 0.0, 0.6)

    # colours
    lum = np.clip(0.80 + 0.09 * f["skin_tone"], 0.35, 0.98)
    warm = 0.035 * f["skin_warmth"]
    skin = np.stack([lum + warm, lum * 0.79 + 0.3 * warm, lum * 0.64 - warm], axis=1)
    skin = np.clip(skin, 0.0, 1.0)
    hv = np.clip(0.34 - 0.12 * f["hair_darkness"], 0.04, 0.85)
    hh = f["hair_hue"]
    hair = hv[:, None] * np.stack(
        [np.ones(n, np.float32), 0.70 + 0.07 * hh, 0.45 + 0.09 * hh], axis=1
    )
    hair = np.clip(hair * 1.35, 0.0, 1.0)
    shirt = np.clip(
        0.45 + 0.3 * np.stack(
            [np.sin(theta + 1.0), np.sin(theta + 3.0), np.sin(theta + 5.0)], axis=1
        ),
        0.05,
        0.95,
    )

    X = x
    Y = y
    A, B, CY = _col(a), _col(b), _col(cy)

    # back hair: crown cap plus a rounded sheet hanging down to a length-dependent level
    vol = f["hair_volume"]
    cap_ax = _col(a * 1.10 + 0.035 * vol + 0.03)
    cap_ay = _col(b * 0.78 + 0.03 * vol)
    cap_cy = _col(cy - b * 0.22)
    d_cap = _ellipse_d(X, Y, 0.0, cap_cy, cap_ax, cap_ay)
    length = _sigmoid(1.8 * f["hair_length"])  # 0 short .. 1 long
    bottom = cy - b * 0.35 + length * (1.35 - (cy - b * 0.35))
    sheet_top = cy - b * 0.4
    hy = np.maximum((bottom - sheet_top) / 2.0, 0.01)
    hx = a * 1.08 + 0.035 * vol + 0.02
    d_sheet = _box_d(X, Y, 0.0, _col(sheet_top + hy), _col(hx), _col(hy), _col(np.minimum(hx, 0.2)))
    d_back = np.minimum(d_cap, d_sheet)
    _blend(img, _coverage(d_back, px), hair * 0.85)

    # shoulders and neck
    d_sh = _ellipse_d(X, Y, 0.0, 1.22, 0.92, 0.42)
    _blend(img, _coverage(d_sh, px), shirt)
    d_neck = _box_d(X, Y, 0.0, _col(cy + b * 0.9), _col(a * 0.45), _col(b * 0.5), 0.05)
    _blend(img, _coverage(d_neck, px), skin * 0.82)
    if np.any(length > 0.5):  # long hair falls in front of the shoulders
        d_front = _box_d(
            X, Y, 0.0, _col(sheet_top + hy), _col(hx), _col(hy), _col(np.minimum(hx, 0.2))
        )
        d_front = np.maximum(d_front, -(np.abs(X) - A * 0.62))  # only beside the neck
        lo = _col(np.clip((length - 0.5) * 2.0, 0.0, 1.0))
        _blend(img, _coverage(d_front, px) * lo, hair * 0.85)

    # ears
    for side in (-1.0, 1.0):
        d_ear = _ellipse_d(X, Y, side * A * 0.98, CY - 0.02, 0.075, 0.12)
        _blend(img, _coverage(d_ear, px), skin * 0.9)

    # face: ellipse whose lower half tapers towards the chin (jaw)
    t = np.clip((Y - CY) / B, 0.0, 1.0)
    k = 1.0 - _col(taper) * t**1.5
    r = np.sqrt(((X / (A * k)) ** 2) + ((Y - CY) / B) ** 2)
    d_face = (r - 1.0) * A * 0.85
    face_cov = _coverage(d_face, px)
    light = _col(0.13 * np.tanh(f["light_direction"]))
    shade = 1.0 + light * X / A - 0.06 * np.clip((Y - CY) / B, 0.0, 1.0)
    face_col = skin[:, None, None, :] * shade[..., None]
    _blend(img, face_cov, np.clip(face_col, 0.0, 1.0))

    # beard shadow (male only): lower face, below the nose
    strength = male * np.clip(0.24 + 0.12 * f["beard"], 0.0, 0.48)
    ramp = np.clip((Y - (CY + B * 0.2)) / (B * 0.15), 0.0, 1.0)
    _blend(img, face_cov * ramp * _col(strength), hair * 0.55)

    # eyes
    ex = np.clip(0.19 + 0.022 * f["eye_spacing"], 0.12, 0.28) * a / 0.47
    ey = cy - 0.06 * b / 0.6
    ew = np.clip(0.075 + 0.011 * f["eye_size"], 0.045, 0.11)
    mix = _sigmoid(1.5 * f["eye_color"])[:, None]
    iris = (1.0 - mix) * np.array([0.36, 0.22, 0.1], np.float32) + mix * np.array(
        [0.25, 0.48, 0.72], np.float32
    )
    white = np.tile(np.array([[0.96, 0.96, 0.94]], np.float32), (n, 1))
    dark = np.tile(np.array([[0.05, 0.04, 0.04]], np.float32), (n, 1))
    EY, EW = _col(ey), _col(ew)
    for side in (-1.0, 1.0):
        EX = side * _col(ex)
        _blend(img, _coverage(_ellipse_d(X, Y, EX, EY, EW, EW * 0.55), px), white)
        _blend(img, _coverage(_ellipse_d(X, Y, EX, EY, EW * 0.45, EW * 0.45), px), iris)
        _blend(img, _coverage(_ellipse_d(X, Y, EX, EY, EW * 0.2, EW * 0.2), px), dark)

    # brows: hair coloured, arched, thickness and height from parameters
    bt = np.clip(0.02 + 0.009 * f["brow_thickness"], 0.007, 0.05)
    by = ey - ew * 0.55 - np.clip(0.06 + 0.015 * f["brow_height"], 0.03, 0.1)
    for side in (-1.0, 1.0):
        EX = side * _col(ex)
        yy = Y - _col(by) - 0.18 * (X - EX) ** 2 / _col(ew)
        d_brow = _ellipse_d(X, yy, EX, 0.0, _col(ew * 1.25), _col(bt))
        _blend(img, _coverage(d_brow, px), hair * 0.7)

    # nose: a side shadow from eye level to the tip, a tip and two nostrils
    ny = cy + np.clip(0.20 + 0.035 * f["nose_length"], 0.12, 0.28) * b / 0.6
    nw = np.clip(0.055 + 0.014 * f["nose_width"], 0.025, 0.095)
    NY, NW = _col(ny), _col(nw)
    ridge_x = -np.sign(light + 1e-6) * NW * 0.7
    d_ridge = _box_d(X, Y, ridge_x, (EY + NY) / 2.0, 0.012, (NY - EY) / 2.0, 0.01)
    _blend(img, _coverage(d_ridge, px) * 0.35, skin * 0.6)
    _blend(img, _coverage(_ellipse_d(X, Y, 0.0, NY, NW, NW * 0.55), px) * 0.5, skin * 0.78)
    for side in (-1.0, 1.0):
        d_nos = _ellipse_d(X, Y, side * NW * 0.5, NY + NW * 0.2, NW * 0.28, NW * 0.16)
        _blend(img, _coverage(d_nos, px) * 0.7, skin * 0.35)

    # mouth: a curved lip band and a dark line
    my = ny + (cy + b * 0.5 - ny) * 0.55 + 0.03
    mw = np.clip(0.14 + 0.03 * f["mouth_width"], 0.07, 0.23) * a / 0.47
    curve = 0.045 * np.tanh(0.8 * f["mouth_curve"])
    MY, MW = _col(my), _col(mw)
    ym = Y - (MY - _col(curve) * (X / MW) ** 2)
    lip_mix = np.clip(0.45 + 0.18 * f["lip_color"], 0.05, 0.95)[:, None]
    lips = (1.0 - lip_mix) * skin + lip_mix * np.array([0.78, 0.25, 0.28], np.float32)
    _blend(img, _coverage(_ellipse_d(X, ym, 0.0, 0.0, MW, 0.034), px), lips)
    _blend(img, _coverage(_ellipse_d(X, ym, 0.0, 0.0, MW * 0.95, 0.008), px) * 0.8, dark + 0.2)

    # fringe: the cap in front of the forehead above a curved hairline
    hairline = CY - B * (0.52 - 0.06 * _col(np.tanh(vol))) + 0.22 * B * (X / A) ** 2
    d_fr = np.maximum(d_cap, Y - hairline)
    _blend(img, _coverage(d_fr, px), hair)
    return np.clip(img, 0.0, 1.0)


def render_faces(params: np.ndarray, size: int = 64) -> np.ndarray:
    """Render faces from generative parameters.

    Parameters
    ----------
    params : array of shape (n, P)
        Generative parameters, columns in the order of :data:`PARAM_NAMES`.
    size : int
        Output side in pixels (default 64; any size >= 16).

    Returns
    -------
    images : ndarray of shape (n, size, size, 3), float32 in [0, 1]
        RGB images; deterministic given ``params``.
    """
    params = np.asarray(params, dtype=np.float32)
    if params.ndim != 2 or params.shape[1] != N_PARAMS:
        raise ValueError(
            f"'params' must have shape (n, {N_PARAMS}). Got {params.shape} instead."
        )
    if size < 16:
        raise ValueError(f"'size' must be >= 16. Got {size} instead.")
    out = np.empty((params.shape[0], size, size, 3), dtype=np.float32)
    chunk = max(1, (1 << 17) // (size * size))
    for start in range(0, params.shape[0], chunk):
        out[start : start + chunk] = _render_chunk(params[start : start + chunk], size)
    return out


def face_corpus(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Sample and render ``n`` faces from a seed.

    Returns
    -------
    images : ndarray of shape (n, size, size, 3), float32 in [0, 1]
    params : ndarray of shape (n, P), float32
    """
    rng = np.random.default_rng(seed)
    params = sample_face_params(n, rng)
    return render_faces(params, size), params

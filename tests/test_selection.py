"""The paper's voxel selection (face > fixation AND the latent-block F) on small cases by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bids_facedecode.errors import UsageError
from bids_facedecode.selection import paper_selection, significant

DOF, D = 100, 3
T_CUT = stats.t.isf(0.05, DOF)       # 1.660
F_CUT = stats.f.isf(0.05, D, DOF)    # 2.696


def test_uncorrected_keeps_exactly_the_voxels_above_both_cuts():
    # voxel:      0      1     2      3      4     5     6        7
    t = np.array([3.0, 1.70, 1.65, -4.0, 2.0, 5.0, np.nan, 1.70])
    f = np.array([3.0, 2.70, 9.00, 9.0, 2.69, 1.0, 9.0, np.nan])
    # by hand: t > 1.660 for voxels 0, 1, 4, 5, 7 (one-sided: voxel 3 responds less to faces);
    # F > 2.696 for voxels 0, 1, 2, 3, 6; both: 0 and 1
    sel = paper_selection(t, f, D, DOF)
    assert np.flatnonzero(sel.face).tolist() == [0, 1, 4, 5, 7]
    assert np.flatnonzero(sel.latent).tolist() == [0, 1, 2, 3, 6]
    assert np.flatnonzero(sel.both).tolist() == [0, 1]
    assert sel.face_t_threshold == pytest.approx(1.6602, abs=1e-4)
    assert sel.latent_f_threshold == pytest.approx(2.6955, abs=1e-4)
    info = sel.describe()
    assert (info["n_face"], info["n_latent"], info["n_selected"]) == (5, 5, 2)
    assert info["correction"] == "uncorrected" and info["face_alpha"] == 0.05


def _bh_by_hand(p, q):
    """Benjamini–Hochberg step-up: reject the k smallest p, k the largest with p_(k) <= k q / m."""
    order = np.argsort(p)
    m = len(p)
    k = 0
    for i in range(m):
        if p[order[i]] <= (i + 1) * q / m:
            k = i + 1
    out = np.zeros(m, bool)
    out[order[:k]] = True
    return out


def test_fdr_is_benjamini_hochberg_per_map():
    rng = np.random.default_rng(0)
    t = np.concatenate([rng.standard_normal(400), 4 + rng.standard_normal(100)])
    f = np.concatenate([stats.f.rvs(D, DOF, size=450, random_state=1), 8 + rng.random(50)])
    sel = paper_selection(t, f, D, DOF, 0.05, 0.01, "fdr")
    face = _bh_by_hand(stats.t.sf(t, DOF), 0.05)
    latent = _bh_by_hand(stats.f.sf(f, D, DOF), 0.01)
    assert (sel.face == face).all() and (sel.latent == latent).all()
    assert (sel.both == (face & latent)).all() and 0 < sel.both.sum() < 100
    assert sel.face_t_threshold == pytest.approx(t[face].min())
    assert sel.latent_f_threshold == pytest.approx(f[latent].min())
    # FDR is stricter than the same level uncorrected
    unc = paper_selection(t, f, D, DOF, 0.05, 0.01)
    assert sel.face.sum() < unc.face.sum() and not (sel.face & ~unc.face).any()


def test_significant_edges():
    assert significant(np.array([np.nan, np.nan]), 0.05).tolist() == [False, False]
    assert significant(np.array([0.05, 0.0500001]), 0.05).tolist() == [True, False]
    with pytest.raises(UsageError, match="correction"):
        significant(np.array([0.1]), 0.05, "bonferroni")
    with pytest.raises(UsageError):
        significant(np.array([0.1]), 1.5)

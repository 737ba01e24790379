"""One-solve voxel statistics (``glm.stats``) against the full solve (``glm_reference``).

``glm.solve`` and the full-solve ``f_statistic`` / ``t_statistic`` / ``residual_variance`` of
``tests/glm_reference.py`` are themselves tested against numpy least squares and nilearn in
``test_glm.py``; here the whitened shortcuts must
give the same maps on a model restricted to a subset of the accumulated regressors, and the
half betas from rows of the inverse must equal a full solve of the half.
"""

from __future__ import annotations

import glm_reference
import numpy as np
import pytest

from bids_facedecode import glm
from bids_facedecode.errors import DataError

P, V = 9, 300
NAMES = [f"z{i}" for i in range(1, 5)] + ["face", "test_a", "test_b", "w1", "w2"]


def _accumulate(rng, n_runs=4):
    B = rng.standard_normal((P, V))
    halves = [glm.new_normal_equations(NAMES, V) for _ in range(2)]
    for r in range(n_runs):
        T = 80 + 5 * r
        X = rng.standard_normal((T, P))
        N = np.column_stack([np.ones(T), np.linspace(-1, 1, T)])
        Y = (X @ B + N @ rng.standard_normal((2, V)) + 2.0 * rng.standard_normal((T, V)))
        glm.accumulate_run(halves[r % 2], X, Y.astype(np.float32), N)
    total = glm.new_normal_equations(NAMES, V)
    for h in halves:
        total.add_(h)
    return total, halves


def _close(a, b, tol=1e-9):
    a, b = np.asarray(a), np.asarray(b)
    assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1.0)


@pytest.mark.parametrize("columns", [NAMES, ["face", "test_a", "z1", "z2", "z3", "z4", "w1"]])
def test_whitened_maps_equal_the_full_solve(rng, columns):
    total, _ = _accumulate(rng)
    ref = glm.subset(total, columns)
    betas = glm.solve(ref)
    tested = [c for c in columns if c.startswith("z")]
    w = glm.whiten(total, columns, tested)
    assert w.dof == ref.dof
    _close(w.residual_variance().numpy(), glm_reference.residual_variance(ref, betas).numpy())
    _close(w.f_statistic().numpy(), glm_reference.f_statistic(ref, betas, tested).numpy())
    _close(w.t_statistic("face").numpy(), glm_reference.t_statistic(ref, betas, "face").numpy())
    _close(w.t_statistic({"face": 1, "test_a": -1}).numpy(),
           glm_reference.t_statistic(ref, betas, {"face": 1, "test_a": -1}).numpy())
    _close(w.betas().numpy(), betas.numpy())
    sel = np.array([5, 17, 299, 0])
    _close(w.betas(sel).numpy(), betas[:, sel].numpy())
    with pytest.raises(DataError, match="'nope' is not in the model"):
        w.t_statistic("nope")


def test_block_betas_equal_a_full_solve_of_each_half(rng):
    total, halves = _accumulate(rng)
    keep = ["test_b", "test_a"]
    for minus, half in (((), halves[0]), ((halves[0],), halves[1])):
        base = halves[0] if not minus else total
        b, names = glm.block_betas(base, NAMES, keep, minus=minus)
        ref = glm.solve(half).numpy()
        assert names == keep
        _close(b.numpy(), ref[[NAMES.index(n) for n in keep]])


def test_block_betas_drop_absent_regressors(rng):
    total, _ = _accumulate(rng)
    total.x_ss[NAMES.index("test_b")] = 0.0  # as if no run of this part showed test_b
    keep = ["test_a", "test_b"]
    cols = [n for n in NAMES if n != "test_b"]
    b, names = glm.block_betas(total, NAMES, keep)
    assert names == ["test_a"]
    ref = glm.solve(glm.subset(total, cols)).numpy()
    _close(b.numpy()[0], ref[cols.index("test_a")])


def test_singular_model_names_the_regressors(rng):
    total, _ = _accumulate(rng)
    total.xtx[:, 1] = total.xtx[:, 0]
    total.xtx[1, :] = total.xtx[0, :]
    with pytest.raises(DataError, match="z1"):
        glm.whiten(total, NAMES, ["z1"])
    with pytest.raises(DataError, match="not all in the model"):
        glm.whiten(total, NAMES[:3], ["face"])

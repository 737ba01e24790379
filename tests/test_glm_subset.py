"""Several models from one pass: glm.subset equals fitting the sub-design directly."""

from __future__ import annotations

import numpy as np

from bids_facedecode import glm


def test_subset_equals_direct_fit(rng):
    T, V = 300, 40
    X = rng.standard_normal((T, 6))
    N = np.column_stack([np.ones(T), np.linspace(-1, 1, T)])
    Y = (X @ rng.standard_normal((6, V)) + rng.standard_normal((T, V))).astype(np.float32)
    names = [f"c{i}" for i in range(6)]
    full = glm.new_normal_equations(names, V)
    glm.accumulate_run(full, X, Y, N)
    keep = ["c4", "c0", "c2"]
    sub = glm.subset(full, keep)
    betas = glm.solve(sub).numpy()
    # independent reference: lstsq on the sub-design plus the nuisance columns
    Xs = np.column_stack([X[:, [4, 0, 2]], N])
    ref = np.linalg.lstsq(Xs, Y.astype(np.float64), rcond=None)[0][:3]
    np.testing.assert_allclose(betas, ref, rtol=1e-8, atol=1e-10)
    assert sub.names == keep and sub.dof == T - 2 - 3

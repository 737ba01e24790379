"""Streamed, batched, chunked GLM accumulation against one-shot references.

* ``glm.accumulate_runs`` (:mod:`bids_facedecode.glm.accumulate`) (stacked runs, both
  precisions, with and without an intercept in the nuisance) against a float64 numpy least-squares fit of the concatenated runs;
* ``workflow.streaming.fit_joint_glm`` on a simulated dataset: identical whatever ``--nprocs``,
  ``--mem`` (batch height, voxel chunks) or the cache state, equal to the per-run one-shot
  accumulation, and holding a bounded number of runs in memory;
* ``glm.plan_stream`` respects its budget.
"""

from __future__ import annotations

import dataclasses
import weakref

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import DEVICES
from glm_reference import residual_variance

from bids_facedecode import glm
from bids_facedecode.errors import DataError, UsageError
from bids_facedecode.glm import accumulate, products
from bids_facedecode.glm import runs as glm_runs

P, V = 10, 257
NAMES = [f"r{i}" for i in range(P)]



def _runs(rng, intercept=True, n_runs=5):
    """Scanner-like runs: large voxel means, drift, a weak signal and noise."""
    B = rng.standard_normal((P, V)) * 0.2
    out = []
    for r in range(n_runs):
        T = 60 + 7 * r
        X = rng.standard_normal((T, P))
        t = np.arange(T)
        cols = [np.cos(np.pi * np.outer(t + 0.5, np.arange(1, 4)) / T)]
        if intercept:
            cols.append(np.ones((T, 1)))
        N = np.hstack(cols)
        Y = (900 + 300 * rng.random(V) + X @ B + N[:, :3] @ rng.standard_normal((3, V)) * 4
             + 1.5 * rng.standard_normal((T, V)))
        out.append((X, Y.astype(np.float32), N))
    return out


def _reference_betas(runs):
    X = np.vstack([r[0] for r in runs])
    N = scipy.linalg.block_diag(*[r[2] for r in runs])
    Y = np.vstack([r[1] for r in runs]).astype(np.float64)
    coef, rss, *_ = np.linalg.lstsq(np.hstack([X, N]), Y, rcond=None)
    return coef[:P], rss


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize(("precision", "tol"), [("double", 1e-10), ("mixed", 2e-6)])
def test_batched_equals_joint_lstsq(rng, device, intercept, precision, tol):
    runs = _runs(rng, intercept)
    ref, rss = _reference_betas(runs)
    for batches, chunk in (([runs], None), ([runs[:2], runs[2:3], runs[3:]], 50)):
        ne = glm.new_normal_equations(NAMES, V, device, precision=precision)
        for b in batches:
            glm.accumulate_runs(ne, b, voxel_chunk=chunk)
        betas = glm.solve(ne).cpu().numpy()
        assert _rel(betas, ref) < tol
        sigma2 = residual_variance(ne, glm.solve(ne)).cpu().numpy()
        np.testing.assert_allclose(sigma2 * ne.dof, rss, rtol=100 * tol)


def test_batched_equals_per_run(rng):
    runs = _runs(rng)
    one = glm.new_normal_equations(NAMES, V, precision="double")
    for r in runs:
        glm.accumulate_run(one, *r)
    many = glm.new_normal_equations(NAMES, V, precision="double")
    glm.accumulate_runs(many, runs, voxel_chunk=64)
    for name in ("xtx", "xty", "yty", "x_ss"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), rtol=1e-11, atol=1e-9)
    assert (many.n_obs, many.n_nuisance) == (one.n_obs, one.n_nuisance)


PF, FF = 40, 36  # factored tests: 40 regressors, the first 36 from ~10 events per run
NAMES_F = [f"f{i}" for i in range(PF)]


def _factored_runs(rng, n_runs=4, F=FF, P=PF, intercept=True):
    """Runs whose first F columns are event responses times event weights (like the latents)."""
    out = []
    for r in range(n_runs):
        T, n = 60 + 5 * r, 9 + r
        E = np.zeros((T, n))
        for j, t0 in enumerate(np.linspace(0, T - 8, n).astype(int)):
            E[t0 : t0 + 8, j] = np.hanning(8)  # sparse, overlapping responses
        if r == 0:
            E[:, -3:] = 0.0  # events whose response falls outside the run
        W = rng.standard_normal((n, F))
        X = np.hstack([E @ W, rng.standard_normal((T, P - F))])
        N = np.column_stack([np.ones(T), np.linspace(-1, 1, T)][0 if intercept else 1:])
        Y = 500 + X @ rng.standard_normal((P, V)) * 0.1 + rng.standard_normal((T, V))
        out.append((X, Y.astype(np.float32), N, (E, W)))
    return out


@pytest.mark.parametrize("intercept", [True, False])  # mixed + intercept: the fused path
@pytest.mark.parametrize("block", [3, 16])
@pytest.mark.parametrize(("precision", "tol"), [("double", 1e-12), ("mixed", 1e-6)])
def test_factored_design_equals_dense(rng, monkeypatch, precision, tol, block, intercept):
    monkeypatch.setattr(glm_runs, "EVENT_BLOCK", block)  # 3: several blocks a run, one empty
    runs = _factored_runs(rng, intercept=intercept)
    prepared = [glm_runs.prepare_run(glm.new_normal_equations(NAMES_F, V), glm.RunData(*r))
                for r in runs]
    assert glm_runs.factored_width(prepared, PF) == FF  # the factor saves arithmetic: it is used
    dense = glm.new_normal_equations(NAMES_F, V, precision=precision)
    glm.accumulate_runs(dense, [r[:3] for r in runs], voxel_chunk=100)
    fact = glm.new_normal_equations(NAMES_F, V, precision=precision)
    calls = []
    fused = accumulate.fused_products
    monkeypatch.setattr(accumulate, "fused_products", lambda *a: calls.append(1) or fused(*a))
    glm.accumulate_runs(fact, runs, voxel_chunk=100)
    assert bool(calls) == (precision == "mixed" and intercept)
    for name in ("xtx", "xty", "yty", "x_ss"):
        x, y = getattr(fact, name).numpy(), getattr(dense, name).numpy()
        assert np.linalg.norm(x - y) <= tol * np.linalg.norm(y), name


def test_wrong_factor_is_refused(rng):
    X, Y, N, (E, W) = _factored_runs(rng, n_runs=1)[0]
    ne = glm.new_normal_equations(NAMES_F, V)
    with pytest.raises(DataError, match="factor does not reproduce"):
        glm.accumulate_run(ne, X, Y, N, factor=(E, W * 1.001))
    with pytest.raises(DataError, match="factor of shapes"):
        glm.accumulate_run(ne, X, Y, N, factor=(E[:-1], W))
    assert ne.n_obs == 0


def test_runs_split_between_accumulators(rng):
    """One batch feeding two accumulators = each accumulator fed its own runs."""
    runs = _factored_runs(rng, n_runs=5)
    labels = [0, 1, 1, 0, 1]
    for precision in ("double", "mixed"):
        parts = [glm.new_normal_equations(NAMES_F, V, precision=precision) for _ in range(2)]
        glm.accumulate_runs([parts[g] for g in labels], runs, voxel_chunk=64)
        for g in (0, 1):
            ref = glm.new_normal_equations(NAMES_F, V, precision=precision)
            glm.accumulate_runs(ref, [r for r, lab in zip(runs, labels, strict=True) if lab == g])
            for name in ("xtx", "xty", "yty", "x_ss"):
                x, y = getattr(parts[g], name).numpy(), getattr(ref, name).numpy()
                assert np.linalg.norm(x - y) <= 1e-6 * np.linalg.norm(y), (precision, name)
            assert (parts[g].n_obs, parts[g].n_nuisance) == (ref.n_obs, ref.n_nuisance)


def test_plan_stream_fits_the_budget():
    P, V, T = 1100, 100_000, 204
    rows, chunk = glm.plan_stream(4 * 2**30, P, V, T, "mixed", held_rows=3 * T)
    assert rows >= 1024 and chunk == V  # the default --mem holds a real subject at full speed
    assert glm.stream_memory(P, V, rows, chunk, "mixed", 3 * T) <= 4 * 2**30
    # tight budget (few regressors, the data dominate): one run per batch, smaller chunks
    P, T = 50, 500
    budget = glm.stream_memory(P, V, T, 3000, "mixed", 3 * T)
    rows, chunk = glm.plan_stream(budget, P, V, T, "mixed", held_rows=3 * T, target_rows=8 * T)
    assert rows == T and 2900 < chunk <= 3000
    assert glm.stream_memory(P, V, rows, chunk, "mixed", 3 * T) <= budget
    assert glm.plan_stream(2 * budget, P, V, T, "mixed", held_rows=3 * T, target_rows=8 * T)[0] > T
    P = 1100
    with pytest.raises(UsageError, match="--mem"):
        glm.plan_stream(2**30, P, V, T, "mixed")


# ---------------------------------------------------------------- the streamed pass on a dataset

@pytest.fixture(scope="module")
def stream_case(app_dataset, small_pca, tmp_path_factory):
    from conftest import app_args

    from bids_facedecode.bidsio.layout import index_dataset
    from bids_facedecode.bidsio.masks import compute_brain_mask
    from bids_facedecode.cli import build_parser, settings_from_args
    from bids_facedecode.workflow.inputs import collect_inputs
    from bids_facedecode.workflow.spaces import compute_latents, open_spaces

    out = tmp_path_factory.mktemp("stream") / "derivatives"
    argv = app_args(app_dataset, out, small_pca, "participant")
    settings = settings_from_args(build_parser().parse_args(argv), argv)
    layout = index_dataset(settings.bids_dir)
    inputs = collect_inputs(settings, layout, "01", {})
    latents = compute_latents(open_spaces(settings, torch.device("cpu")), inputs)
    mask = np.asarray(compute_brain_mask(inputs.runs[0].bold).dataobj).astype(bool)
    return settings, inputs, latents, mask, out.parent


def _fit(case, cache=None, precision="double", **changes):
    from bids_facedecode.workflow.streaming import fit_joint_glm

    settings, inputs, latents, mask, _ = case
    settings = dataclasses.replace(settings, **changes)
    return fit_joint_glm(inputs, latents, mask, settings, torch.device("cpu"), cache,
                         precision=precision)


def _same(a, b, rtol):
    for name in ("xtx", "xty", "yty"):
        x, y = getattr(a, name).numpy(), getattr(b, name).numpy()
        assert np.linalg.norm(x - y) <= rtol * np.linalg.norm(y), name
    assert (a.n_obs, a.n_nuisance, a.names) == (b.n_obs, b.n_nuisance, b.names)


def _one_shot(case):
    """Every run accumulated on its own, all voxels at once, float64 (the reference path)."""
    from bids_facedecode.bidsio.bold import load_masked_run
    from bids_facedecode.glm import noise
    from bids_facedecode.workflow.streaming import run_ar1, run_design

    settings, inputs, latents, mask, _ = case
    ne = None
    sample = noise.sample_voxels(int(mask.sum()))
    rhos = {}
    for k, run in enumerate(inputs.runs):
        d = run_design(inputs, latents, settings, k)
        ne = ne or glm.new_normal_equations(d.shared_names, int(mask.sum()), precision="double")
        Y = load_masked_run(run.bold, mask)
        rhos[run.label] = run_ar1(d, Y, sample) if settings.noise_model == "ar1" else 0.0
        glm.accumulate_run(ne, d.shared, Y, d.nuisance, rho=rhos[run.label])
    ne.noise = {"model": settings.noise_model, "ar1": rhos}
    return ne


def test_stream_is_independent_of_nprocs_mem_and_cache(stream_case, tmp_path):
    ref = _one_shot(stream_case)
    P, V = ref.n_regressors, ref.n_voxels
    T = max(r.n_scans for r in stream_case[1].runs)
    base = _fit(stream_case, nprocs=1)
    _same(base, ref, 1e-12)
    assert base.noise["model"] == ref.noise["model"] == "ar1"  # the default
    assert base.noise["ar1"] == pytest.approx(ref.noise["ar1"], abs=1e-12)
    # the simulator's AR(1) noise (0.4) plus unmodelled motion (no confounds on the raw path)
    assert all(0.3 < r < 0.95 for r in base.noise["ar1"].values())
    _same(_fit(stream_case, nprocs=2), base, 1e-12)
    # a budget that allows one run per batch and ~V/5 voxels per chunk
    from bids_facedecode.workflow.streaming import reader_memory

    readers = reader_memory(2, T, stream_case[3])
    small = glm.stream_memory(P, V, T, V // 5, "double", held_rows=3 * T,
                              reader_bytes=readers) / 2**30
    rows, chunk = glm.plan_stream(int(small * 2**30), P, V, T, "double", held_rows=3 * T,
                                  reader_bytes=readers)
    assert rows == T and chunk < V
    _same(_fit(stream_case, nprocs=2, mem_gb=small), base, 1e-12)
    cache = tmp_path / "cache"
    miss = _fit(stream_case, cache, nprocs=2)
    assert len(list(cache.glob("*.npy"))) == len(stream_case[1].runs)
    _same(miss, base, 0)
    _same(_fit(stream_case, cache, nprocs=1, mem_gb=small), base, 1e-12)
    # the default engine: float32 products summed in float64
    mixed = _fit(stream_case, cache, precision="mixed", nprocs=2)
    _same(mixed, base, 1e-6)
    b_ref, b_mixed = glm.solve(ref).numpy(), glm.solve(mixed).numpy()
    assert _rel(b_mixed, b_ref) < 1e-5


def test_partition_is_accumulated_in_the_same_pass(stream_case):
    """Split halves from the one pass: parts equal fits of their runs, total unchanged."""
    from bids_facedecode.glm import FoldAccumulator
    from bids_facedecode.workflow.folds import half_of_runs
    from bids_facedecode.workflow.streaming import fit_joint_glm

    settings, inputs, latents, mask, _ = stream_case
    base = _fit(stream_case, nprocs=2)
    halves = FoldAccumulator(half_of_runs(inputs.runs), "split-half reliability")
    total = fit_joint_glm(inputs, latents, mask, dataclasses.replace(settings, nprocs=2),
                          torch.device("cpu"), None, precision="double", partitions=[halves])
    _same(total, base, 1e-12)
    _same(halves.parts[0], _fit(_subset(stream_case, inputs.runs[::2]), nprocs=1), 1e-12)
    assert sorted(halves.parts) == [0]  # the other half is the total minus this one


def _subset(case, runs):
    settings, inputs, latents, mask, _ = case
    keep = [inputs.runs.index(r) for r in runs]
    sub = dataclasses.replace(
        inputs, runs=[inputs.runs[k] for k in keep], trials=[inputs.trials[k] for k in keep],
        confounds=[inputs.confounds[k] for k in keep] if inputs.confounds else None)
    return settings, sub, latents, mask, None


@pytest.mark.parametrize("sessions", [[0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1], [0, 1, 2, 2]])
def test_halves_and_cv_folds_in_one_pass_each_run_once(stream_case, monkeypatch, sessions):
    """Both partitions at once (the ridge CV folds and the split halves): every run is
    accumulated exactly once, and each fold, the first half and the total equal separate fits."""
    from bids_facedecode.glm import FoldAccumulator
    from bids_facedecode.workflow import streaming
    from bids_facedecode.workflow.folds import half_of_runs

    settings, inputs, latents, mask, _ = stream_case
    runs = inputs.runs[: len(sessions)]
    case = _subset(stream_case, runs)
    base = _fit(case, nprocs=2)
    halves = FoldAccumulator(half_of_runs(runs), "halves")
    cv = FoldAccumulator(sessions, "cv")
    seen = []
    real = streaming.glm.accumulate_runs

    def counting(targets, batch, voxel_chunk=None):
        seen.extend(id(r[1]) for r in batch)
        return real(targets, batch, voxel_chunk=voxel_chunk)

    monkeypatch.setattr(streaming.glm, "accumulate_runs", counting)
    total = streaming.fit_joint_glm(case[1], latents, mask, dataclasses.replace(settings, nprocs=2),
                                    torch.device("cpu"), None, precision="double",
                                    partitions=[halves, cv])
    monkeypatch.undo()
    assert len(seen) == len(runs)  # each run once
    _same(total, base, 1e-12)
    _same(halves.parts[0], _fit(_subset(stream_case, runs[::2]), nprocs=1), 1e-12)
    folds = cv.folds(total)
    for f in range(cv.n_folds):
        mine = [r for r, s in zip(runs, sessions, strict=True) if s == f]
        _same(folds[f], _fit(_subset(stream_case, mine), nprocs=1), 1e-10)


def test_stream_plan_orders_groups_and_copies_first_halves():
    from bids_facedecode.glm import FoldAccumulator, stream_plan

    halves = FoldAccumulator([0, 1, 0, 1, 0, 1], "halves")
    cv = FoldAccumulator([0, 0, 1, 1, 2, 2], "cv")
    plan = stream_plan([halves, cv], 6)
    assert plan.order == [4, 5, 0, 1, 2, 3]  # the last fold (home: the total) first
    assert plan.home == [1, 1, 2, 2, 0, 0] and plan.n_slots == 4
    assert plan.copies == {0: [(0, 3)], 2: [(1, 3)], 4: [(2, 3)]}
    assert plan.final == [(1, 0), (2, 0)]
    only = stream_plan([halves, None], 6)
    assert only.order == [1, 3, 5, 0, 2, 4] and only.home == [1, 0, 1, 0, 1, 0]
    assert only.copies == {} and only.final == [(1, 0)] and only.n_slots == 2
    assert stream_plan([], 3).order == [0, 1, 2]
    with pytest.raises(DataError, match="2 groups"):
        stream_plan([FoldAccumulator([0, 1, 2], "a"), FoldAccumulator([0, 1, 2], "b")], 3)
    with pytest.raises(DataError, match="labels for 4 runs"):
        stream_plan([halves], 4)


def test_stream_holds_a_bounded_number_of_runs(stream_case, monkeypatch):
    """Memory does not grow with the number of runs: at most read-ahead + one batch are alive."""
    from bids_facedecode.workflow import streaming

    settings, inputs, latents, mask, _ = stream_case
    many = dataclasses.replace(inputs, runs=inputs.runs * 4, trials=inputs.trials * 4)
    real = streaming.load_masked_run_cached
    alive, peak, buffers = set(), [0], set()

    def tracked(bold, m, cache, out=None):
        buffers.add(id(out))
        Y = real(bold, m, cache, out=out)
        key = id(Y)
        alive.add(key)
        weakref.finalize(Y, alive.discard, key)
        peak[0] = max(peak[0], len(alive))
        return Y

    monkeypatch.setattr(streaming, "load_masked_run_cached", tracked)
    T = max(r.n_scans for r in inputs.runs)
    P = len(streaming.run_design(inputs, latents, settings, 0).shared_names)
    mem = glm.stream_memory(P, int(mask.sum()), 2 * T, 4096, "mixed", held_rows=3 * T,
                            reader_bytes=streaming.reader_memory(2, T, mask)) / 2**30
    s = dataclasses.replace(settings, nprocs=2, mem_gb=mem)
    streaming.fit_joint_glm(many, latents, mask, s, torch.device("cpu"), None)
    assert len(many.runs) == 16
    assert peak[0] <= 3 + 2 + 1  # read-ahead (nprocs + 1), a batch of <= 2 runs, the one in hand
    assert len(buffers) <= 3 + 2 + 1  # the same float32 buffers are recycled


def test_add_float32_into_float64_equals_a_plain_add(rng):
    """The staged float32 -> float64 add (no full-size float64 temporary) adds exactly."""
    ne = glm.new_normal_equations(NAMES, V)
    dst = torch.as_tensor(rng.standard_normal((37, 2 * V)))
    src = torch.as_tensor(rng.standard_normal((37, V)).astype(np.float32))
    ref = dst.clone()
    ref[:, V:] += src.double()
    products._add_float32(ne, dst[:, V:], src)  # a strided view, 37 rows: 16 + 16 + 5
    assert torch.equal(dst, ref)


def test_quiet_cpu_limits_numpy_blas_and_freezes_the_collector():
    """During the pass numpy's OpenBLAS is single-threaded (restored afterwards, also when the
    pass fails); the objects made before it are frozen out of the collector, and stay so."""
    import gc

    from threadpoolctl import threadpool_info

    from bids_facedecode.workflow.streaming import quiet_cpu

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas"}

    before = blas_threads()
    torch_threads = torch.get_num_threads()
    keep = [[] for _ in range(10)]  # tracked by the collector
    gc.unfreeze()
    try:
        with pytest.raises(RuntimeError), quiet_cpu():
            assert gc.get_freeze_count() >= len(keep)
            assert set(blas_threads().values()) <= {1}
            assert torch.get_num_threads() == torch_threads  # torch's own pool is left alone
            raise RuntimeError("the pass failed")
        assert blas_threads() == before
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(k) in tracked for k in keep)  # still frozen after the pass
    finally:
        gc.unfreeze()


def test_the_pass_reports_its_progress(stream_case, monkeypatch, caplog):
    """Periodic INFO lines (here after every run): runs and volumes done, time left; none for
    the last run (the pass's closing line says it all)."""
    import logging

    from bids_facedecode.workflow import streaming

    monkeypatch.setattr(streaming, "PROGRESS_EVERY_S", 0.0)
    runs = stream_case[1].runs
    with caplog.at_level(logging.INFO, logger="bids_facedecode"):
        _fit(stream_case, nprocs=2)
    lines = [r.getMessage() for r in caplog.records if "runs read" in r.getMessage()]
    assert len(lines) == len(runs) - 1
    total = sum(r.n_scans for r in runs)
    assert lines[0].startswith(f"sub-01: 1/{len(runs)} runs read ({runs[0].n_scans} of {total} volumes)")
    assert all("s left" in line for line in lines)
    caplog.clear()
    monkeypatch.setattr(streaming, "PROGRESS_EVERY_S", 3600.0)
    with caplog.at_level(logging.INFO, logger="bids_facedecode"):
        _fit(stream_case, nprocs=2)
    assert not [r for r in caplog.records if "runs read" in r.getMessage()]

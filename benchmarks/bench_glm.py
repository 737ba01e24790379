"""Benchmark of the GLM engine: GLM stage vs nilearn and the compute floor, whole
participant level vs the I/O and compute floors, peak memory, time vs T and V.

Usage (from the repository root)::

    python benchmarks/bench_glm.py                  # everything (~30+ min on 2 CPU cores)
    python benchmarks/bench_glm.py --quick          # small sizes, a small participant (~3 min)
    python benchmarks/bench_glm.py --sections glm --sizes 10000x50000
    python benchmarks/bench_glm.py --device cuda    # the same on a GPU

Every measurement runs in a child process of its own, so its peak resident memory (``VmHWM``,
from ``os.wait4``) is its own. Timings on a shared machine are noisy: compare the ratios, which are
taken within one child (the floor and our stage back to back on the same data).

Sections
--------
glm
    Synthetic runs of 200 volumes, ``P`` shared regressors (default 1000) plus an intercept and
    a linear drift per run. Ours: :func:`glm.accumulate_runs` in the batches and chunks
    :func:`glm.plan_stream` picks from ``--mem``, then the Cholesky solve and residual variance.
    Compute floor: one bare ``torch.mm(X.T, Y)`` of shapes ``(T, P)``, ``(T, V)`` float32 (when
    ``Y`` is larger than ``--floor-max-gb`` the product is timed on a slab of rows and scaled:
    its cost is linear in ``T``). nilearn: ``FirstLevelModel(noise_model="ols"|"ar1",
    signal_scaling=False).fit(img, design_matrices=[joint design with block-diagonal run
    intercepts and drifts])`` where ``T·V <= --nilearn-max``; betas compared with ours.
participant
    A one-subject BIDS dataset with ``--runs`` runs of 195/204 volumes (events of ds001761's
    layout from the simulator, 77 training trials per run) whose BOLD files are replaced by
    int16 gzip NIfTI on a ``--grid`` whose brain holds ``~--voxels`` voxels, and a ``--latents``
    table of random ``D``-dimensional latents. Times: the I/O floor (read and mask every run,
    ``--nprocs`` threads, our fastest reader, no cache), the compute floor, the command
    ``bids_facedecode BIDS OUT participant`` end to end (cold work dir, then warm cache) with
    the default AR(1) noise model and with ``--noise-model ols`` back to back (their time and
    peak-memory ratios printed side by side), and a run with a small ``--mem`` whose outputs
    must equal the default run's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN_T = 200


# ----------------------------------------------------------------------------- child helpers

def _child(args: list[str], env_threads: int) -> tuple[dict, float]:
    """Run this script as a child; return its JSON result and its peak RSS in GiB."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(env_threads),
               MKL_NUM_THREADS=str(env_threads))
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, env=env,
                            text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 2**20


def _command(cmd: list[str], env_threads: int) -> tuple[float, float, float, float]:
    """Wall time, peak RSS (GiB), user and kernel CPU seconds of a command."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(env_threads))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 2**20, usage.ru_utime, usage.ru_stime


def _vm_hwm_gib() -> float:
    """Peak resident memory of this process so far (``VmHWM``), GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- glm section

def _glm_problem(T: int, V: int, P: int, seed: int = 0, n_pool: int = 6):
    """Designs for every run and a small pool of distinct data runs, cycled (cheap to make)."""
    rng = np.random.default_rng(seed)
    n_runs = T // RUN_T
    X = rng.standard_normal((n_runs * RUN_T, P)).astype(np.float64)
    t = np.linspace(-1, 1, RUN_T)
    N = np.column_stack([np.ones(RUN_T), t])
    B = (rng.standard_normal((P, V)) * 0.05).astype(np.float32)
    mean = (800 + 400 * rng.random(V)).astype(np.float32)
    pool = []
    for k in range(n_pool):
        Xk = X[k * RUN_T:(k + 1) * RUN_T].astype(np.float32)
        Y = rng.standard_normal((RUN_T, V), dtype=np.float32) * 8.0
        Y += mean
        Y += Xk @ B
        Y += np.outer(t, rng.standard_normal(V).astype(np.float32) * 5)
        pool.append(Y)
    return X, N, pool, n_runs


def child_glm(T: int, V: int, P: int, device_name: str, mem_gb: float, floor_max_gb: float,
              nilearn: list[str], precision: str) -> dict:
    import torch

    from bids_facedecode import glm

    device = torch.device(device_name)
    X, N, pool, n_runs = _glm_problem(T, V, P)
    T = n_runs * RUN_T
    res: dict = {"T": T, "V": V, "P": P, "device": device_name, "precision": precision}
    names = [f"x{i}" for i in range(P)]

    def ours(precision: str) -> tuple[float, np.ndarray]:
        _sync(device)
        t0 = time.perf_counter()
        ne = glm.new_normal_equations(names, V, device, precision=precision)
        rows, chunk = glm.plan_stream(int(mem_gb * 2**30), P, V, RUN_T, precision,
                                      held_rows=3 * RUN_T)
        batch = []
        for r in range(n_runs):
            batch.append((X[r * RUN_T:(r + 1) * RUN_T], pool[r % len(pool)], N))
            if len(batch) * RUN_T + RUN_T > rows or r == n_runs - 1:
                glm.accumulate_runs(ne, batch, voxel_chunk=chunk)
                batch = []
        ne.workspace.clear()  # as the participant level does after its streamed pass
        betas = glm.solve(ne)
        # the residual variance from the normal equations: RSS = Σy² − βᵀXᵀY
        sigma2 = (ne.yty - (betas * ne.xty).sum(dim=0)).clamp_(min=0.0) / ne.dof
        del sigma2
        _sync(device)
        res[f"rows_{precision}"], res[f"chunk_{precision}"] = rows, chunk
        return time.perf_counter() - t0, betas.cpu().numpy()

    repeats = 2 if T * V <= 2e8 else 1  # best of two where cheap (the machine is shared)
    times = []
    for _ in range(repeats):
        b_ours = None  # free the previous repetition's betas first
        t, b_ours = ours(precision)
        times.append(t)
    res["ours"] = min(times)
    res["ours_peak_gib"] = _vm_hwm_gib()  # before the floor and nilearn allocate anything
    # compute floor: one bare float32 X^T Y of the same shapes (on a slab when Y is huge)
    slab = T if T * V * 4 <= floor_max_gb * 2**30 else max(RUN_T, int(floor_max_gb * 2**30 / (4 * V)))
    slab -= slab % RUN_T
    Xf = torch.from_numpy(X[:slab].astype(np.float32)).to(device)
    Yf = torch.from_numpy(np.vstack([pool[r % len(pool)] for r in range(slab // RUN_T)])).to(device)
    floors = {}
    for dtype in (torch.float32, torch.float64):
        Xd, Yd = Xf.to(dtype), Yf.to(dtype)
        torch.mm(Xd[:RUN_T].T, Yd[:RUN_T])  # warm-up
        best = np.inf
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            torch.mm(Xd.T, Yd)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
        floors[str(dtype).split(".")[-1]] = best * T / slab
        del Xd, Yd
    del Xf, Yf
    res["floor_f32"], res["floor_f64"], res["floor_scaled"] = floors["float32"], floors["float64"], slab < T

    if nilearn:
        import nibabel as nib
        import pandas as pd
        import scipy.linalg
        from nilearn.glm.first_level import FirstLevelModel

        Yall = np.vstack([pool[r % len(pool)] for r in range(n_runs)])
        img = nib.Nifti1Image(Yall.T.reshape(V, 1, 1, T), np.eye(4))
        mask = nib.Nifti1Image(np.ones((V, 1, 1), np.int8), np.eye(4))
        del Yall
        design = pd.DataFrame(np.hstack([X, scipy.linalg.block_diag(*[N] * n_runs)]),
                              columns=names + [f"n{i}" for i in range(2 * n_runs)])
        for model in nilearn:
            t0 = time.perf_counter()
            flm = FirstLevelModel(t_r=2.0, noise_model=model, signal_scaling=False,
                                  mask_img=mask, minimize_memory=True)
            flm.fit(img, design_matrices=[design])
            res[f"nilearn_{model}"] = time.perf_counter() - t0
            if model == "ols":
                labels, results = flm.labels_[0], flm.results_[0]
                b_ref = np.empty((P, V))
                for lab, r in results.items():
                    b_ref[:, labels == lab] = np.asarray(r.theta)[:P]
                res["beta_rel_err_ols"] = float(np.linalg.norm(b_ours - b_ref) / np.linalg.norm(b_ref))
            del flm
    return res


def section_glm(opts) -> list[dict]:
    rows = []
    print(f"\n## GLM stage ({opts.device}, P={opts.p} shared regressors + 2 per run, runs of "
          f"{RUN_T} volumes, --mem {opts.mem} GB, precision {opts.precision})")
    print("| T | V | ours s | floor f32 s | floor f64 s | ours/floor | nilearn ols s | ×ols | "
          "nilearn ar1 s | ×ar1 | β rel. err | ours peak GiB | child peak GiB | Y GiB |")
    print("|" + "---|" * 14)
    for T, V in opts.sizes:
        models = [m for m in ("ols", "ar1") if T * V <= opts.nilearn_max
                  and (m == "ols" or T * V <= opts.ar1_max)]
        r, peak = _child(["_glm", str(T), str(V), str(opts.p), opts.device, str(opts.mem),
                          str(opts.floor_max_gb), ",".join(models) or "-", opts.precision],
                         opts.nprocs)
        r["peak_gib"] = peak
        rows.append(r)

        def f(key, fmt="{:.2f}", r=r):
            return fmt.format(r[key]) if key in r else "–"

        def ratio(key, r=r):
            return f"{r[key] / r['ours']:.1f}" if key in r else "–"

        print(f"| {r['T']} | {V} | {r['ours']:.2f} | {r['floor_f32']:.2f}"
              f"{'*' if r['floor_scaled'] else ''} | {r['floor_f64']:.2f} | "
              f"{r['ours'] / r['floor_f32']:.2f} | {f('nilearn_ols')} | {ratio('nilearn_ols')} | "
              f"{f('nilearn_ar1')} | {ratio('nilearn_ar1')} | {f('beta_rel_err_ols', '{:.1e}')} | "
              f"{r['ours_peak_gib']:.2f} | {peak:.2f} | {r['T'] * V * 4 / 2**30:.2f} |", flush=True)
    print("(* floor timed on a slab of rows and scaled linearly in T; ours peak: VmHWM after our "
          "fit, before the floor and nilearn run; child peak includes nilearn)")
    return rows


# ----------------------------------------------------------------------------- participant section

def _ellipsoid(shape, n_target):
    """A centred ellipsoid mask of about ``n_target`` voxels."""
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r2 = sum(g**2 for g in grids)
    thr = np.quantile(r2, min(1.0, n_target / r2.size))
    return r2 <= thr


def _write_run(args) -> int:
    """One synthetic int16 gzip run, written like a scanner's (slope, gzip level 1)."""
    import nibabel as nib
    from isal import igzip

    path, shape, n_vols, seed, n_brain, affine = args
    rng = np.random.default_rng(seed)
    brain = _ellipsoid(shape, n_brain)
    base = np.where(brain, 1000.0, 20.0).ravel(order="F").astype(np.float32)
    pool = rng.normal(0, 15, (24, base.size)).astype(np.float32)
    pool[:, ~brain.ravel(order="F")] = np.abs(pool[:, ~brain.ravel(order="F")]) * 0.5
    data = np.empty((n_vols, base.size), np.int16)  # (T, X*Y*Z): F-ordered volumes
    for t in range(n_vols):
        data[t] = np.rint((base + pool[rng.integers(len(pool))]) / 0.05)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(tuple(shape) + (n_vols,))
    hdr.set_data_dtype(np.int16)
    hdr.set_zooms((3.0, 3.0, 3.0, 2.0))
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_qform(affine, 1)
    hdr.set_sform(affine, 1)
    hdr.set_slope_inter(0.05, 0.0)
    hdr["vox_offset"] = 352
    head = hdr.binaryblock + b"\x00" * 4
    Path(path).write_bytes(igzip.compress(head + data.tobytes(), 1))
    return n_vols


def make_dataset(opts, root: Path) -> tuple[Path, Path]:
    """Simulated events/stimuli (coarse), big synthetic BOLD, random latents table."""
    import nibabel as nib

    from bids_facedecode.simulate.dataset import SimulationConfig, simulate_dataset

    bids = root / "bids"
    if not (root / "done").is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        sessions = 2 if opts.runs > 49 else 1  # the simulator makes <= 99 runs a subject
        cfg = SimulationConfig(subjects=1, sessions=sessions, runs=opts.runs // sessions,
                               resolution=8.0, seed=3, imagery_every=2)
        simulate_dataset(bids, cfg)
        runs = sorted(bids.glob("sub-*/ses-*/func/*_bold.nii.gz"))
        affine = np.diag([3.0, 3.0, 3.0, 1.0])
        jobs = [(p, opts.grid, nib.load(str(p)).shape[3], k, opts.voxels, affine)
                for k, p in enumerate(runs)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(opts.nprocs) as pool:
            list(pool.map(_write_run, jobs))
        print(f"wrote {len(runs)} BOLD runs in {time.perf_counter() - t0:.0f} s", flush=True)
        for side in bids.glob("sub-*/ses-*/func/*_bold.json"):
            side.unlink()  # per-run scaling sidecars of the simulator no longer apply
        stims = sorted(p.relative_to(bids / "stimuli").as_posix()
                       for p in (bids / "stimuli").rglob("*") if p.is_file())
        z = np.random.default_rng(0).standard_normal((len(stims), opts.latent_dim))
        np.savez(root / "latents.npz", keys=np.array(stims), latents=z.astype(np.float32))
        (root / "done").write_text("ok")
    return bids, root / "latents.npz"


def child_io(bids: str, nprocs: int) -> dict:
    """The I/O floor: read and mask every run once (our fastest reader, threads, no cache)."""
    from bids_facedecode.bidsio import bold
    from bids_facedecode.bidsio.masks import compute_brain_mask

    runs = sorted(Path(bids).glob("sub-*/ses-*/func/*_bold.nii.gz"))
    mask = np.asarray(compute_brain_mask(runs[0]).dataobj).astype(bool)
    nbytes = sum(p.stat().st_size for p in runs)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, nprocs)) as pool:
        shapes = list(pool.map(lambda p: bold.load_masked_run(p, mask).shape, runs))
    wall = time.perf_counter() - t0
    T = sum(s[0] for s in shapes)
    grid = int(np.prod(mask.shape))
    return {"io_floor": wall, "T": T, "V": int(mask.sum()), "grid": grid, "n_runs": len(runs),
            "gz_gb": nbytes / 2**30, "raw_gb": T * grid * 2 / 2**30, "backend": bold.GZIP_BACKEND}


def _outputs(out: Path) -> dict[str, np.ndarray]:
    """Numeric content of the participant outputs (TSV/NPY/NIfTI), by relative path."""
    import nibabel as nib
    import pandas as pd

    found = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.name.endswith((".nii.gz", ".nii")):
            found[rel] = np.asanyarray(nib.load(str(p)).dataobj, dtype=np.float64)
        elif p.suffix == ".tsv":
            df = pd.read_csv(p, sep="\t").select_dtypes("number")
            found[rel] = df.to_numpy(np.float64)
        elif p.suffix == ".npy":
            found[rel] = np.load(p).astype(np.float64)
    return found


def section_participant(opts) -> dict:
    import torch

    root = Path(opts.workdir) / f"participant-{opts.runs}r-{opts.voxels}v"
    bids, table = make_dataset(opts, root)
    io, io_peak = _child(["_io", str(bids), str(opts.nprocs)], opts.nprocs)  # warms the page cache
    io, io_peak = _child(["_io", str(bids), str(opts.nprocs)], opts.nprocs)
    T, V = io["T"], io["V"]
    P = opts.latent_dim + 60  # the app's shared regressors: D latents, face, test, imagery, ...
    floor, _ = _child(["_glm_floor", str(T), str(V), str(P), opts.device, str(opts.floor_max_gb)],
                      opts.nprocs)
    print(f"\n## Whole participant level ({opts.device}, --nprocs {opts.nprocs})")
    print(f"data: {io['n_runs']} runs, T={T} volumes, grid {opts.grid} = {io['grid']} voxels, "
          f"V={V} in the mask, {io['gz_gb']:.2f} GiB gzip ({io['raw_gb']:.2f} GiB int16), "
          f"D={opts.latent_dim}, gzip back end {io['backend']}")
    print(f"I/O floor (read+mask all runs, {opts.nprocs} threads): {io['io_floor']:.1f} s "
          f"({io['raw_gb'] * 1024 / io['io_floor'] / opts.nprocs:.0f} MB/s of int16 per thread); "
          f"compute floor (bare float32 X'Y, P≈{P}): {floor['floor_f32']:.1f} s"
          f"{' (scaled from a slab)' if floor['scaled'] else ''}", flush=True)
    base = [sys.executable, "-c", "import sys; from bids_facedecode.cli import main; sys.exit(main())",
            str(bids)]
    common = ["participant", "--latents", f"bench={table}", "--latent-space", "bench",
              "--nprocs", str(opts.nprocs), "--device", opts.device]
    results = {"io": io, "floor": floor, "P_est": P}
    # the two noise models back to back (cold, then warm), so that both see the same machine
    runs = [("cold cache, --noise-model ols", "o", ["--noise-model", "ols"]),
            ("cold cache", "a", []),
            ("warm cache (rerun), --noise-model ols", "o", ["--noise-model", "ols", "--overwrite"]),
            ("warm cache (rerun)", "a", ["--overwrite"]),
            (f"--mem {opts.small_mem}, cold cache", "b", ["--mem", str(opts.small_mem)])]
    outs = {}
    for label, tag, extra in runs:
        out, work = root / f"out-{tag}", root / f"work-{tag}"
        if label.startswith("cold") or "--mem" in label:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
        wall, peak, user, kernel = _command([*base, str(out), *common, "-w", str(work), *extra],
                                            opts.nprocs)
        worst = max(io["io_floor"], floor["floor_f32"])
        results[label] = {"wall": wall, "peak_gib": peak, "user_s": user, "kernel_s": kernel}
        print(f"- `participant` {label}: {wall:.1f} s = {wall / worst:.2f}× the larger floor "
              f"({wall / io['io_floor']:.2f}× I/O, {wall / floor['floor_f32']:.2f}× compute); "
              f"peak RSS {peak:.2f} GiB (masked float32 data: {T * V * 4 / 2**30:.2f} GiB); "
              f"CPU {user:.0f} s user + {kernel:.0f} s kernel ({(user + kernel) / wall:.2f} cores "
              "busy on average)", flush=True)
        outs[tag] = out
    for when in ("cold cache", "warm cache (rerun)"):
        ar1, ols = results[when], results[f"{when}, --noise-model ols"]
        print(f"- {when}: --noise-model ar1 (default) {ar1['wall']:.1f} s vs ols {ols['wall']:.1f} s "
              f"= {ar1['wall'] / ols['wall']:.3f}x time; peak RSS {ar1['peak_gib']:.2f} vs "
              f"{ols['peak_gib']:.2f} GiB = {ar1['peak_gib'] / ols['peak_gib']:.3f}x; CPU "
              f"{ar1['user_s'] + ar1['kernel_s']:.0f} vs {ols['user_s'] + ols['kernel_s']:.0f} s = "
              f"{(ar1['user_s'] + ar1['kernel_s']) / (ols['user_s'] + ols['kernel_s']):.3f}x "
              "(CPU seconds are less sensitive to other load on a shared machine)", flush=True)
    a, b = _outputs(outs["a"]), _outputs(outs["b"])
    worst = 0.0
    for k, x in a.items():
        if k in b and x.shape == b[k].shape and x.size:
            scale = float(np.nanmax(np.abs(x))) or 1.0
            worst = max(worst, float(np.nanmax(np.abs(x - b[k]))) / scale)
    same_files = sorted(a) == sorted(b)
    print(f"- small --mem outputs vs default: same files {same_files}, largest relative "
          f"difference {worst:.1e} (max |a-b| / max |a| per file) over {len(a)} numeric files")
    results["small_mem_max_rel_diff"], results["small_mem_same_files"] = worst, same_files
    del torch
    return results


def child_glm_floor(T: int, V: int, P: int, device_name: str, floor_max_gb: float) -> dict:
    import torch

    device = torch.device(device_name)
    slab = T if T * V * 4 <= floor_max_gb * 2**30 else max(RUN_T, int(floor_max_gb * 2**30 / (4 * V)))
    g = torch.Generator().manual_seed(0)
    X = torch.randn(slab, P, generator=g).to(device)
    Y = torch.randn(slab, V, generator=g).to(device)
    torch.mm(X[:RUN_T].T, Y[:RUN_T])
    _sync(device)
    t0 = time.perf_counter()
    torch.mm(X.T, Y)
    _sync(device)
    return {"floor_f32": (time.perf_counter() - t0) * T / slab, "scaled": slab < T}


# ----------------------------------------------------------------------------- main

def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        t, v = item.lower().split("x")
        out.append((int(float(t)), int(float(v))))
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("_"):  # child processes
        import torch

        kind, rest = argv[0], argv[1:]
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        if kind == "_glm":
            T, V, P, dev, mem, fmax, models, prec = rest
            r = child_glm(int(T), int(V), int(P), dev, float(mem), float(fmax),
                          [] if models == "-" else models.split(","), prec)
        elif kind == "_io":
            r = child_io(rest[0], int(rest[1]))
        elif kind == "_glm_floor":
            T, V, P, dev, fmax = rest
            r = child_glm_floor(int(T), int(V), int(P), dev, float(fmax))
        print(json.dumps(r))
        return 0

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and a small participant")
    p.add_argument("--sizes", type=_sizes, default=None, metavar="TxV[,TxV...]",
                   help="GLM sizes (default: all of T=2k,10k,20k x V=10k,50k,100k)")
    p.add_argument("--sections", default="glm,participant")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="mixed", choices=["mixed", "double"])
    p.add_argument("-p", type=int, default=1000, help="shared regressors in the GLM section")
    p.add_argument("--mem", type=float, default=4.0, help="--mem of our GLM (GB)")
    p.add_argument("--nprocs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--nilearn-max", type=float, default=5e8, help="largest T*V fitted by nilearn")
    p.add_argument("--ar1-max", type=float, default=5e8, help="largest T*V fitted by nilearn ar1")
    p.add_argument("--floor-max-gb", type=float, default=3.0)
    p.add_argument("--runs", type=int, default=98, help="participant section: runs")
    p.add_argument("--voxels", type=int, default=100_000, help="participant section: brain voxels")
    p.add_argument("--grid", type=lambda s: tuple(int(x) for x in s.split("x")), default=(64, 76, 64))
    p.add_argument("--latent-dim", type=int, default=1024)
    p.add_argument("--small-mem", type=float, default=3.0, help="participant: the small --mem run")
    p.add_argument("--workdir", default="/tmp/bids_facedecode-bench")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.sizes = opts.sizes or [(2000, 10_000), (4000, 20_000)]
        opts.runs, opts.voxels, opts.grid, opts.latent_dim = 12, 20_000, (40, 48, 40), 128
        opts.small_mem = min(opts.small_mem, 0.3)  # voxel chunks: ~0.26 GiB is the least it needs
    opts.sizes = opts.sizes or [(t, v) for t in (2000, 10_000, 20_000) for v in (10_000, 50_000, 100_000)]
    import torch

    print(f"# bench_glm — {date.today()} — {platform.node()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, numpy {np.__version__}")
    print(f"command: python benchmarks/bench_glm.py {' '.join(argv)}")
    if "glm" in opts.sections:
        section_glm(opts)
    if "participant" in opts.sections:
        section_participant(opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())

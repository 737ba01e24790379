"""Per latent space: solve the GLM, select voxels, decode, reconstruct and evaluate.

The voxels of one selection (``--voxel-selection``: the ``--n-voxels`` best by the latent F
test, the default; by noise ceiling; or the paper's own, every voxel significant for face vs
fixation and for the latent block, :mod:`bids_facedecode.selection`) are decoded with the plain
inverse ``b Wᵀ(WWᵀ)⁻¹`` and, on request, the same evaluation is repeated for

* other decoders (``wls``: voxels weighted by 1 / residual variance; ``ridge``: the inverse
  with the penalty of best cross-validated pairwise identification of held-out patterns of
  training images; never the test images, :mod:`bids_facedecode.ridge`),
* voxels selected by noise ceiling instead of the F-test,
* the voxels of each region of an atlas,
* a decoder saved by an earlier run (``--decoder-from``),

and the split-half reliability and noise ceiling of the test-image responses are mapped.
Metric keys: ``<metric>`` for the first decoder over all voxels, ``<metric>_<decoder>``
for other decoders and ``<metric>[_<decoder>]_roi-<region>`` for regions; each metric's
dict also carries ``metric``, ``decoder``, ``roi`` and ``selection`` fields (the group
level's tidy table reads them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import decode, gender, reliability, ridge, selection
from ..bidsio.labels import stimulus_genders
from ..bidsio.outputs import SavedDecoder, load_decoder
from ..bidsio.simulation_truth import read_simulation_truth
from ..config import DECODERS, SELECTIONS, Settings
from ..errors import DataError, UsageError
from ..glm import FoldAccumulator, block_betas, present_columns, whiten
from .evaluation import EvalContext, evaluate_decoded
from .folds import cv_folds_of_runs, half_of_runs
from .inputs import ParticipantInputs
from .reuse import voxel_index
from .ridge_inputs import choose_region_ridge, fold_maps
from .spaces import JointLatents, LatentSpace
from .truth_ceiling import TruthCeiling

LOG = logging.getLogger(__name__)
FACE = "face"


@dataclass
class Analyses:
    """What the participant run computes beyond the paper's pipeline, set up before the data pass."""

    halves: FoldAccumulator | None = None
    cv: FoldAccumulator | None = None
    cv_kind: str = ""
    rois: dict[str, np.ndarray] = field(default_factory=dict)   # region -> bool (V,)
    saved: dict[str, SavedDecoder] = field(default_factory=dict)  # space -> decoder
    atlas: object | None = None                                   # roi.Atlas of --roi-atlas
    truth: TruthCeiling | None = None  # simulated data: the true-weights ceiling

    def map_to_mask(self, mask_img, bids_dir, inputs: ParticipantInputs) -> None:
        """What needs the analysis mask, once it is known: the atlas's regions over its voxels
        and, on a simulated dataset, the simulator's truth at them."""
        if self.atlas is not None:
            from ..roi import roi_masks

            self.rois = roi_masks(self.atlas, mask_img)
        truth = read_simulation_truth(bids_dir, inputs.subject, mask_img)
        if truth is not None:
            self.truth = TruthCeiling(truth, inputs.test_ids, inputs.train_ids, inputs.runs[0].bold,
                                      np.asarray(mask_img.dataobj).astype(bool))


def load_saved_decoders(settings: Settings) -> dict[str, SavedDecoder]:
    """The ``--decoder-from`` files, by latent space."""
    saved: dict[str, SavedDecoder] = {}
    for path in settings.decoder_from:
        d = load_decoder(path)
        if d.space in saved:
            raise UsageError(f"--decoder-from: two decoders for space '{d.space}'")
        saved[d.space] = d
    return saved


def plan_analyses(settings: Settings, inputs: ParticipantInputs, mask_img=None,
                  saved: dict[str, SavedDecoder] | None = None) -> Analyses:
    """Decide the extra accumulators and regions of a participant before the data pass.

    Reads no BOLD data: the options are checked against the participant's runs and the atlas
    is read here, its regions mapped onto the analysis mask when ``mask_img`` is given (or
    later, :meth:`Analyses.map_to_mask`). ``saved`` are the ``--decoder-from`` decoders by
    space (:func:`load_saved_decoders`; read here when omitted).

    Raises
    ------
    UsageError, DataError, NoInputError
        An option these runs cannot support, a missing or unreadable atlas.
    """
    for d in settings.decoders:
        if d not in DECODERS:
            raise UsageError(f"--decoder {d}: use one of {', '.join(DECODERS)}")
    if settings.voxel_selection not in SELECTIONS:
        raise UsageError(f"--voxel-selection {settings.voxel_selection}: use one of {', '.join(SELECTIONS)}")
    out = Analyses(saved=load_saved_decoders(settings) if saved is None else saved)
    if len(inputs.runs) >= 2:
        out.halves = FoldAccumulator(half_of_runs(inputs.runs), "split-half reliability")
    elif settings.voxel_selection == "noiseceiling":
        raise DataError(f"sub-{inputs.subject}: --voxel-selection noiseceiling needs at least 2 runs")
    else:
        LOG.warning("sub-%s: one run only; no split-half reliability", inputs.subject)
    if "ridge" in settings.decoders and any(s not in out.saved for s in settings.latent_spaces):
        # (a space decoded with a saved decoder keeps its decoder and penalty: no CV)
        folds, out.cv_kind = cv_folds_of_runs(inputs.runs)
        out.cv = FoldAccumulator(folds, "ridge cross-validation")
    if settings.roi_atlas is not None:
        from ..roi import load_atlas

        out.atlas = load_atlas(settings.roi_atlas, settings.roi_labels)
    if mask_img is not None:
        out.map_to_mask(mask_img, settings.bids_dir, inputs)
    return out


@dataclass
class SpaceResult:
    """Decoding results of one latent space for one participant."""

    space: str
    f_map: np.ndarray             # (V,)
    face_t: np.ndarray            # (V,)
    selected: np.ndarray          # (n_sel,) voxel indices into the mask
    W: np.ndarray                 # (D+1, n_sel): rows z1..zD, face
    z_mean: np.ndarray            # (D,)
    test_true: np.ndarray         # (N, D)
    test_decoded: np.ndarray      # (N, D)
    imagery_decoded: np.ndarray   # (M, D)
    gender_axis: np.ndarray | None
    gender_midpoint: np.ndarray | None
    shown: np.ndarray | None      # (N, S, S, 3)
    reconstructions: np.ndarray | None
    imagery_reconstructions: np.ndarray | None
    metrics: dict
    per_image: pd.DataFrame
    dof: int
    decoder: str = "ols"                          # decoder of test_decoded / W / the npz
    ridge: float = 0.0                            # its ridge (relative λ), 0 for ols/wls
    noise_var: np.ndarray | None = None           # (n_sel,) residual variance (wls)
    reliability: np.ndarray | None = None         # (V,) voxel split-half r (Spearman–Brown)
    noise_ceiling: np.ndarray | None = None       # (V,) fraction of variance
    selection: str = "ftest"
    analyses: pd.DataFrame | None = None          # tidy: decoder, roi, selection, metric, ...
    ridge_cv: pd.DataFrame | None = None          # penalty grid, CV identification per roi
    decoder_from: str | None = None
    selection_info: dict = field(default_factory=dict)  # method, thresholds, counts
    noise: dict = field(default_factory=dict)            # the GLM's noise model (NormalEquations.noise)


def _half_test_betas(halves, ne_all, columns: list[str],
                     test_names: list[str]) -> list[np.ndarray]:
    """Test-image betas (N, V) of each half; NaN rows for images absent from a half.

    ``halves`` is the split-half :class:`FoldAccumulator` (its first half accumulated, the
    second the total minus the first); betas come from rows of each half's inverse Gram
    matrix, without solving for every regressor or copying the accumulators.
    """
    first = halves.parts.get(0)
    if first is None or halves.n_folds != 2:
        raise DataError("split-half reliability: the halves were not accumulated")
    out = []
    for base, minus in ((first, ()), (ne_all, (first,))):
        betas, names = block_betas(base, columns, test_names, minus=minus)
        b = np.full((len(test_names), ne_all.n_voxels), np.nan)
        for i, t in enumerate(test_names):
            if t in names:
                b[i] = betas[names.index(t)].cpu().numpy()
        out.append(b)
    return out


def _n_selected(n_voxels: int, roi_mask: np.ndarray | None, V: int) -> int:
    """How many voxels a region decodes from: ``--n-voxels``, or all of the region when fewer."""
    return min(n_voxels, V if roi_mask is None else int(roi_mask.sum()))


def _selector(settings: Settings, score: np.ndarray, paper: selection.PaperSelection | None):
    """The voxels a region (bool mask, or None for all) decodes from: every voxel of the paper's
    selection in it, or its ``--n-voxels`` best by ``score``."""
    def select(roi_mask: np.ndarray | None) -> np.ndarray:
        if paper is not None:
            keep = paper.both if roi_mask is None else paper.both & roi_mask
            return np.flatnonzero(keep).astype(np.int64)
        return decode.select_voxels(score, _n_selected(settings.n_voxels, roi_mask, score.size),
                                    roi_mask)
    return select


def decode_space(space: LatentSpace, ne_all, inputs: ParticipantInputs, latents: JointLatents,
                 settings: Settings, analyses: Analyses | None = None) -> SpaceResult:
    """Solve the space's GLM, select voxels, decode test and imagery faces, evaluate."""
    analyses = analyses or Analyses()
    saved = analyses.saved.get(space.name)
    zcols = latents.z_columns(space.name)
    other = [n for n in ne_all.names if not n.startswith("z")]
    V = ne_all.n_voxels
    if latents.latent_block:
        columns = zcols + other
        fit = whiten(ne_all, columns, tested=zcols)  # one triangular solve
        f_map = fit.f_statistic().cpu().numpy()
        face_t = fit.t_statistic(FACE).cpu().numpy()
    elif saved is not None:
        # no latent block (a later session decoded with a saved decoder, with too few training
        # trials or none): training trials, if any, enter by the face regressor alone; the
        # latent F map is not estimated, nor the face t map without training trials
        present = set(present_columns(ne_all))
        columns = [n for n in other if n in present]
        fit = whiten(ne_all, columns)
        f_map = np.full(V, np.nan)
        face_t = (fit.t_statistic(FACE).cpu().numpy() if FACE in present
                  else np.full(V, np.nan))
    else:
        raise DataError(f"sub-{inputs.subject}: no latent block in the GLM, and no saved decoder "
                        f"for the {space.name} space (--decoder-from)")
    noise_var_all = fit.residual_variance().cpu().numpy()
    D = len(zcols)
    names = fit.names
    test_names = [f"test_{t}" for t in inputs.test_ids]
    test_rows = [names.index(n) for n in test_names]
    img_rows = [names.index(f"img_{t}") for t in inputs.imagery_ids]

    rel = nc = halves = None
    if analyses.halves is not None:
        try:
            halves = b1, b2 = _half_test_betas(analyses.halves, ne_all, columns, test_names)
            rel = reliability.spearman_brown(reliability.voxel_split_half(b1, b2))
            nc = reliability.noise_ceiling(b1, b2)
        except DataError as exc:
            if settings.voxel_selection == "noiseceiling":
                raise DataError(f"sub-{inputs.subject}: --voxel-selection noiseceiling: {exc}") from exc
            LOG.warning("sub-%s %s: no split-half reliability (%s)", inputs.subject, space.name, exc)
            halves = None
    score = np.nan_to_num(f_map, nan=-np.inf)
    if settings.voxel_selection == "noiseceiling":
        if nc is None:
            raise DataError(f"sub-{inputs.subject}: --voxel-selection noiseceiling needs 2 halves of runs")
        score = np.nan_to_num(nc, nan=-np.inf)
    paper = None
    if settings.voxel_selection == "paper" and saved is None:
        if np.isnan(f_map).all() or np.isnan(face_t).all():
            raise DataError(f"sub-{inputs.subject}: --voxel-selection paper needs the face t and the "
                            "latent F maps (training trials)")
        paper = selection.paper_selection(
            face_t, f_map, D, fit.dof, settings.selection_p_face, settings.selection_p_latent,
            settings.selection_correction)
        info = paper.describe()
        LOG.info("sub-%s %s: paper selection: %d voxels (face t >= %s: %d, latent F >= %s: %d; %s)",
                 inputs.subject, space.name, info["n_selected"], info["face_t_threshold"],
                 info["n_face"], info["latent_f_threshold"], info["n_latent"],
                 settings.selection_correction)
    select = _selector(settings, score, paper)

    z_mean = latents.means[space.name]
    test_true = latents.test[space.name]
    genders = stimulus_genders(inputs.index, inputs.test_ids)
    per_image = pd.DataFrame({
        "stim_id": inputs.test_ids,
        "stim_file": [inputs.index.name(s) for s in inputs.test_ids],
        "gender": genders,
    })
    axis = midpoint = None
    train_gender = stimulus_genders(inputs.index, inputs.train_ids)
    if {"M", "F"} <= set(train_gender) and {"M", "F"} <= set(genders):
        labelled = np.isin(train_gender, ["M", "F"])
        axis, midpoint = gender.gender_axis(latents.train_raw[space.name][labelled],
                                              train_gender[labelled] == "M")
    elif saved is not None and saved.gender_axis is not None and {"M", "F"} <= set(genders):
        axis, midpoint = saved.gender_axis, saved.gender_midpoint  # the decoder's own fit
        LOG.info("sub-%s %s: gender axis of the saved decoder %s", inputs.subject, space.name,
                 saved.path.name)
    else:
        LOG.warning("sub-%s %s: gender not evaluated (neither a stimuli.tsv gender column nor M/F "
                    "file-name prefixes label both genders)", inputs.subject, space.name)
    imagery_index, imagery_rows = None, []
    if img_rows:
        imagery_rows = [i for i, s in enumerate(inputs.imagery_ids) if s in inputs.test_ids]
        if imagery_rows:
            imagery_index = np.array([inputs.test_ids.index(inputs.imagery_ids[i]) for i in imagery_rows])
    shown = None
    if space.can_reconstruct:
        shown = space.model.images_of([inputs.index.path(s) for s in inputs.test_ids])
    ctx = EvalContext(space, test_true, shown, np.asarray(genders, dtype=object), axis,
                      imagery_index, imagery_rows, settings.n_permutations,
                      np.random.default_rng(settings.seed))

    fold_betas = None  # the folds' maps, solved once per space for every region
    regions: list[tuple[str, np.ndarray | None]] = [("all", None)]
    if saved is None:
        regions += list(analyses.rois.items())
    metrics: dict = {}
    rows: list[dict] = []
    cv_rows: list[dict] = []
    primary = None
    for roi, roi_mask in regions:
        if saved is not None:
            if saved.latent_dim != D:
                raise DataError(f"{saved.path}: decoder has D={saved.latent_dim}, the {space.name} "
                                f"latents D={D}")
            sel = voxel_index(saved, analyses_mask(ne_all, saved))
            W, zm, decoders = saved.W, saved.z_mean, [saved.decoder]
        else:
            if paper is None and roi_mask is None and settings.n_voxels > V:
                LOG.warning("--n-voxels %d exceeds the %d brain voxels; using all", settings.n_voxels, V)
            sel = select(roi_mask)
            n_sel = int(sel.size)
            if paper is not None and roi_mask is None and n_sel < max(D + 1, 2):
                raise DataError(
                    f"sub-{inputs.subject} {space.name}: --voxel-selection paper keeps {n_sel} voxels "
                    f"(the decoder needs at least {max(D + 1, 2)}); relax --selection-p-face / "
                    "--selection-p-latent or use --voxel-selection ftest")
            if n_sel < D + 1 and "ridge" not in settings.decoders:
                LOG.warning("sub-%s %s: region %s has %d voxels, fewer than D+1=%d; skipped",
                            inputs.subject, space.name, roi, n_sel, D + 1)
                continue
            W, zm, decoders = None, z_mean, list(settings.decoders)
        B_sel = fit.betas(sel).cpu().numpy()  # (P, n_sel): only the voxels decoded
        if W is None:
            W = B_sel[: D + 1]
        B_test, B_img = B_sel[test_rows], B_sel[img_rows]
        ceiling = analyses.truth.identification(B_test, sel) if analyses.truth is not None else {}
        for dec in decoders:
            lam = 0.0
            try:
                if dec == "wls":
                    var = noise_var_all[sel]
                    test_dec = decode.decode_latents_wls(B_test, W, zm, D, var)
                    img_dec = decode.decode_latents_wls(B_img, W, zm, D, var) if img_rows else None
                else:
                    if dec == "ridge":
                        if saved is not None:
                            lam = saved.ridge
                        else:
                            if fold_betas is None:
                                fold_betas = fold_maps(
                                    analyses.cv, ne_all, columns, D,
                                    [(m, int(select(m).size)) for _, m in regions])
                            lam, scores, n_probes = choose_region_ridge(
                                fold_betas, [r for r, _ in regions].index(roi),
                                latents.train_raw[space.name], z_mean)
                            cv_rows += [{"roi": roi, "ridge": g, "cv_pairwise_latent": e,
                                         "n_probe_images": n_probes, "chosen": g == lam}
                                        for g, e in zip(ridge.RIDGE_GRID, scores, strict=True)]
                    test_dec = decode.decode_latents(B_test, W, zm, D, ridge=lam)
                    img_dec = decode.decode_latents(B_img, W, zm, D, ridge=lam) if img_rows else None
            except DataError as exc:
                if roi == "all" and dec == decoders[0]:
                    raise
                LOG.warning("sub-%s %s: decoder %s in region %s failed: %s", inputs.subject,
                            space.name, dec, roi, exc)
                continue
            if img_dec is None:
                img_dec = np.zeros((0, D), np.float32)
            labels = {"decoder": dec, "roi": roi, "selection": settings.voxel_selection,
                      "n_voxels": int(sel.size)}
            if dec == "ridge":
                labels["ridge"] = lam
            m, per, recon = evaluate_decoded(ctx, test_dec, img_dec, zm, labels)
            for base, value in ceiling.items():
                m[base]["ceiling"] = value
            suffix = ("" if dec == decoders[0] else f"_{dec}") + ("" if roi == "all" else f"_roi-{roi}")
            for base, md in m.items():
                metrics[base + suffix] = {**md, "metric": base}
                rows.append({"metric": base, **labels, "ridge": lam,
                             **{k: md[k] for k in ("value", "chance", "n", "test", "p_value",
                                                   "baseline", "ceiling", "alternative")}})
            if roi == "all" and dec != decoders[0]:
                per_image[f"pairwise_latent_{dec}"] = per["pairwise_latent"]
            if primary is None:
                primary = (dec, lam, sel, W, zm, test_dec, img_dec, recon, per)
    dec0, lam0, sel, W, zm, test_dec, img_dec, recon, per = primary
    for k, v in per.items():
        per_image[k] = v
    if halves is not None:
        per_image["split_half_pattern_r"] = reliability.pattern_split_half(halves[0][:, sel],
                                                                           halves[1][:, sel])
    img_recon = space.model.decode(img_dec) if shown is not None and len(img_dec) else None
    if saved is not None:
        sel_info = {"method": "decoder-from", "n_selected": int(sel.size)}
    elif paper is not None:
        sel_info = paper.describe()
    else:
        sel_info = {"method": settings.voxel_selection, "n_requested": int(settings.n_voxels),
                    "n_selected": int(sel.size)}
        if settings.voxel_selection == "ftest" and sel.size:
            sel_info["latent_f_threshold"] = float(np.nanmin(f_map[sel]))
    return SpaceResult(
        space.name, f_map, face_t, sel, W, np.asarray(zm), test_true, test_dec, img_dec, axis, midpoint,
        shown, recon, img_recon, metrics, per_image, fit.dof, decoder=dec0, ridge=lam0,
        noise_var=noise_var_all[sel], reliability=rel, noise_ceiling=nc,
        selection=settings.voxel_selection, analyses=pd.DataFrame(rows),
        ridge_cv=pd.DataFrame(cv_rows) if cv_rows else None,
        decoder_from=str(saved.path) if saved is not None else None,
        selection_info=sel_info, noise=dict(getattr(ne_all, "noise", {}) or {}))


def analyses_mask(ne_all, saved: SavedDecoder) -> np.ndarray:
    """The analysis mask of a run that re-uses ``saved`` (it analyses the decoder's own mask)."""
    if int(saved.mask.sum()) != ne_all.n_voxels:
        raise DataError(f"{saved.path}: the data were not analysed in the decoder's mask "
                        f"({ne_all.n_voxels} voxels vs {int(saved.mask.sum())})")
    return saved.mask

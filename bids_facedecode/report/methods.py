"""The methods paragraph of the participant report, with this run's exact parameters."""

from __future__ import annotations

from .inputs import ParticipantRecord

REFERENCES = {
    "vanrullen": "VanRullen R, Reddy L (2019). Reconstructing faces from fMRI patterns using deep "
                 "generative neural networks. Communications Biology 2:193. doi:10.1038/s42003-019-0438-y",
    "larsen": "Larsen ABL, Sønderby SK, Larochelle H, Winther O (2016). Autoencoding beyond pixels "
              "using a learned similarity metric. Proceedings of ICML, PMLR 48:1558-1566.",
    "turk": "Turk M, Pentland A (1991). Eigenfaces for recognition. Journal of Cognitive "
            "Neuroscience 3(1):71-86. doi:10.1162/jocn.1991.3.1.71",
    "nilearn": "Abraham A, Pedregosa F, Eickenberg M, et al. (2014). Machine learning for "
               "neuroimaging with scikit-learn. Frontiers in Neuroinformatics 8:14. "
               "doi:10.3389/fninf.2014.00014",
    "bids": "Gorgolewski KJ, Auer T, Calhoun VD, et al. (2016). The brain imaging data structure, a "
            "format for organizing and describing outputs of neuroimaging experiments. Scientific "
            "Data 3:160044. doi:10.1038/sdata.2016.44",
    "pybids": "Yarkoni T, Markiewicz CJ, de la Vega A, et al. (2019). PyBIDS: Python tools for BIDS "
              "datasets. Journal of Open Source Software 4(40):1294. doi:10.21105/joss.01294",
    "pytorch": "Paszke A, Gross S, Massa F, et al. (2019). PyTorch: an imperative style, "
               "high-performance deep learning library. Advances in Neural Information Processing "
               "Systems 32.",
    "ssim": "Wang Z, Bovik AC, Sheikh HR, Simoncelli EP (2004). Image quality assessment: from error "
            "visibility to structural similarity. IEEE Transactions on Image Processing 13(4):600-612. "
            "doi:10.1109/TIP.2003.819861",
}
SPACE_DESCRIPTION = {
    "vaegan": "a variational autoencoder trained with a GAN discriminator (VAE-GAN; Larsen et al., 2016)",
    "pca": "the principal components of face images (eigenfaces; Turk & Pentland, 1991)",
}


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _noise_sentence(cfg: dict) -> str:
    if cfg.get("noise_model", "ar1") == "ols":
        return ("Noise was modelled as white (ordinary least squares): on autocorrelated fMRI noise "
                "the t, F and p-values of this model are too large. ")
    return ("Serial correlation was modelled as an AR(1) process per run: each run's coefficient "
            "was estimated from the residuals of a voxel sample on the run's nuisance and "
            "non-latent regressors, pooled over voxels and corrected for the bias of the residual "
            "projection, and the run's design, data and nuisance were prewhitened with it before "
            "the nuisance was projected out; statistics have the whitened model's degrees of "
            "freedom. ")


def _confounds_sentence(cfg: dict) -> str:
    if cfg.get("derivatives"):
        conf = cfg.get("confounds") or []
        return (f"fMRIPrep confounds ({', '.join(conf) if conf else 'the default strategy'}) were "
                "nuisance regressors.")
    return ("No motion or other confound regressors were included: the input was raw BOLD without "
            "confounds (preprocess with fMRIPrep and pass --derivatives to include them).")


def _selection_sentence(cfg: dict, method: str | None = None, detail: dict | None = None,
                        reused: bool = False) -> str:
    sel = detail or {}
    method = method or cfg.get("voxel_selection", "ftest")
    if reused:
        return "the voxels of the saved decoder were used"
    if method == "paper":
        corr = "false discovery rate (Benjamini-Hochberg)" if (
            sel.get("correction", cfg.get("selection_correction")) == "fdr") else "uncorrected p"
        return ("every voxel significant both for face vs fixation (one-sided t test, "
                f"{corr} <= {sel.get('face_alpha', cfg.get('selection_p_face'))}) and for the latent "
                f"block (F test, {corr} <= {sel.get('latent_alpha', cfg.get('selection_p_latent'))}) "
                "was selected, as in VanRullen & Reddy (2019)")
    if method == "noiseceiling":
        return (f"the {cfg.get('n_voxels', 'n/a')} voxels with the largest split-half noise ceiling "
                "of the test-image responses were selected")
    return (f"the {cfg.get('n_voxels', 'n/a')} voxels with the largest F statistic of the latent "
            "block were selected")


def _decoder_sentence(decoder: str) -> str:
    if decoder == "wls":
        return ("the latent vector of each test pattern b was decoded by weighted least squares, "
                "each voxel weighted by the inverse of its residual variance.")
    if decoder == "ridge":
        return ("the latent vector of each test pattern b was decoded as ẑ = b Wᵀ(WWᵀ + λI)⁻¹ "
                "(ridge, λ chosen by cross-validation over sessions, or odd and even runs: the "
                "penalty of best pairwise identification, on latents centred on the training mean, "
                "of held-out patterns of training images; never the test images), where W "
                "holds the selected voxels' latent and face weights.")
    return ("the latent vector of each test pattern b was decoded as ẑ = b Wᵀ(WWᵀ)⁻¹, where W "
            "holds the selected voxels' latent and face weights.")


def _glm_paragraph(cfg: dict, nuisance: list[str], device: str | None) -> str:
    libs = cfg.get("library_versions", {})
    hp = cfg.get("high_pass")
    return (f"Analysis: faces were decoded with bids_facedecode {cfg.get('version', 'n/a')}, an "
            "implementation of the method of VanRullen & Reddy (2019). All runs were fitted jointly "
            "with one general linear model: events convolved with the SPM canonical haemodynamic "
            f"response of nilearn {libs.get('nilearn', '')} (Abraham et al., 2014)"
            + (f", a cosine drift basis with a {1 / hp:.0f} s cut-off" if hp else "")
            + " and an intercept per run; regressors: one for all training faces, one per latent "
            "dimension with the training faces' latent values (centred on the training mean) as "
            "amplitudes, one per test image, one per imagined face"
            + (f", and {_join(nuisance)} trials as nuisance" if nuisance else "") + ". "
            "The normal equations were accumulated run by run (each run's drift and intercept "
            f"projected out) and solved in PyTorch {libs.get('torch', '')} (Paszke et al., 2019)"
            + (f" on {device}" if device else "") + ". "
            + _noise_sentence(cfg) + _confounds_sentence(cfg))


def _space_source(cfg: dict, space: str) -> str:
    return cfg.get("latent_models", {}).get(space) or (
        f"the table {cfg['latents'][space]}" if space in cfg.get("latents", {})
        else "the model shipped with the package")


def _decoding_paragraph(cfg: dict, parts: list[str], selection: str, decoder: str) -> str:
    return ("Decoding: for each latent space, " + selection + "; " + _decoder_sentence(decoder)
            + " The face coefficient was dropped, the training mean added back, and the image "
            f"reconstructed with the model's decoder. Latent spaces: {_join(parts) if parts else 'n/a'}.")


def _evaluation_paragraph(cfg: dict, metrics: set[str], ceiling: bool = False) -> str:
    n_perm = cfg.get("n_permutations", "n/a")
    ev = ["Evaluation (definitions in docs/statistics.md of bids_facedecode): pairwise identification "
          "among the test images (for each image, the fraction of other images whose latent vector "
          "correlates less with its decoded vector than its own; chance 50%) and n-way (rank-1) "
          "identification among all test images (chance 1/n) with the mean rank, correlating "
          "vectors from which the training mean latent was subtracted"
          + (" (in image space: the reconstruction of the training mean)" if "pairwise_image" in metrics
             else "")
          + "; VanRullen & Reddy's (2019) uncentred correlation is reported as a secondary metric; "
          f"permutation p-values over the assignment of decoded to true images ({n_perm} draws, or "
          f"every permutation when there are fewer; seed {cfg.get('seed', 'n/a')})"]
    if ceiling:
        ev.append("on this simulated dataset, latent identification beside its ceiling: the same "
                  "metric when the same test betas and voxels are decoded through the simulator's "
                  "true weights, in the brain code's feature space")
    if "gender_accuracy" in metrics:
        ev.append("gender: the decoded vector called male when its projection on the gender axis "
                  "(mean male minus mean female training latent), taken from the training mean, is "
                  "positive; accuracy and balanced accuracy with a one-sided exact test over "
                  "permutations of the test labels (Fisher's exact test), beside the same rule on the "
                  "test images' true latents (the ceiling)")
    if "imagery_pairwise" in metrics:
        ev.append("imagery: pairwise identification of the imagined face among the test faces, "
                  "permutation test over which trial imagined which face, chance the exact mean of "
                  "that null")
    if "ssim" in metrics:
        ev.append("reconstruction quality: pixel correlation and SSIM (Wang et al., 2004), beside "
                  "those of the reconstruction of the training mean latent (the mean-face baseline)")
    return "; ".join(ev) + "."


def _references(spaces, metrics: set[str]) -> list[str]:
    refs = ["vanrullen", "bids", "pybids", "nilearn", "pytorch"]
    refs += ["larsen"] if "vaegan" in spaces else []
    refs += ["turk"] if "pca" in spaces else []
    refs += ["ssim"] if "ssim" in metrics else []
    return [REFERENCES[r] for r in refs]


def methods_text(rec: ParticipantRecord) -> tuple[list[str], list[str]]:
    """Paragraphs describing what was done to this participant's data, and the references.

    Every number comes from the outputs (settings, metrics, the design sidecar); statements
    the outputs cannot back are left out.

    Returns
    -------
    paragraphs : list of str
    references : list of str
    """
    cfg, inputs = rec.config, rec.config.get("inputs", {})
    runs = cfg.get("runs", [])
    trs = sorted({r["t_r"] for r in runs if r.get("t_r")})
    dataset = cfg.get("dataset", {}).get("Name")
    spaces = list(rec.metrics)
    data = (f"Data: {inputs.get('n_runs', len(runs))} runs ({inputs.get('n_volumes', 'n/a')} volumes"
            + (f", TR {', '.join(f'{t:g}' for t in trs)} s" if trs else "") + f") of task '{rec.task}'"
            + (f" from the dataset '{dataset}'" if dataset else "") + ", organised in BIDS "
            "(Gorgolewski et al., 2016) and read with PyBIDS (Yarkoni et al., 2019). The participant saw "
            f"{inputs.get('n_training_trials', 'n/a')} training face trials "
            f"({inputs.get('n_training_images', 'n/a')} distinct images) and "
            f"{inputs.get('n_test_images', 'n/a')} test images, and had "
            f"{inputs.get('n_imagery_trials', 0)} imagery trials.")
    parts = []
    for s in spaces:
        doc = rec.metrics[s]
        what = SPACE_DESCRIPTION.get(s, f"the '{s}' latent space")
        parts.append(f"{s} ({what}, D = {doc.latent_dim} dimensions, from {_space_source(cfg, s)}; "
                     f"{doc.n_voxels} voxels selected)")
    first = rec.metrics[spaces[0]] if spaces else None
    selection = (_selection_sentence(cfg, first.voxel_selection, first.selection_detail,
                                     bool(first.decoder_from)) if first else _selection_sentence(cfg))
    metrics = {m for d in rec.metrics.values() for m in d.metrics}
    p = [data,
         _glm_paragraph(cfg, inputs.get("nuisance_trial_types") or [], cfg.get("device_used")),
         _decoding_paragraph(cfg, parts, selection, first.decoder if first else "ols"),
         _evaluation_paragraph(cfg, metrics, any(
             (d.metrics.get("pairwise_latent") or {}).get("ceiling") is not None
             for d in rec.metrics.values()))]
    return p, _references(spaces, metrics)


def citation_text(cfg: dict, dims: dict[str, int]) -> str:
    """``logs/CITATION.md``: the methods boilerplate of a run's settings, as Markdown.

    Built from the settings (``Settings.to_dict()`` and ``version``) and each latent space's
    dimension only, so every participant of one output folder writes the same text; what
    differs between participants (runs, trials, voxels selected, evaluated metrics) is in each
    participant's report.
    """
    from ..provenance import library_versions

    cfg = {**cfg, "library_versions": library_versions()}
    parts = [f"{s} ({SPACE_DESCRIPTION.get(s, f'the {s!r} latent space')}, D = {d} dimensions, "
             f"from {_space_source(cfg, s)})" for s, d in dims.items()]
    decoders = cfg.get("decoders") or ["ols"]
    reused = bool(cfg.get("decoder_from"))
    paragraphs = [
        _glm_paragraph(cfg, [], None),
        _decoding_paragraph(cfg, parts, _selection_sentence(cfg, reused=reused), decoders[0]),
        _evaluation_paragraph(cfg, set()),
    ]
    refs = _references(list(dims), set())
    return (f"# Methods (generated by bids_facedecode {cfg.get('version', 'n/a')})\n\n"
            + "\n\n".join(paragraphs) + "\n\nReferences\n" + "".join(f"- {r}\n" for r in refs))

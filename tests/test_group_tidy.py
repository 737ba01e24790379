"""The group level's tidy statistics table on a hand-made participant table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bids_facedecode.group import group_statistics, tidy_statistics


def _table():
    rows = []
    for sub, (p, v, pw) in {"01": (0.7, 0.9, 0.6), "02": (0.8, 0.95, 0.7), "03": (0.75, 0.85, 0.65)}.items():
        rows += [
            {"subject": sub, "space": "pca", "metric": "pairwise_latent", "value": p},
            {"subject": sub, "space": "vaegan", "metric": "pairwise_latent", "value": v},
            {"subject": sub, "space": "pca", "metric": "pairwise_latent_wls_roi-occipital", "value": pw,
             "base_metric": "pairwise_latent", "decoder": "wls", "roi": "occipital"},
        ]
    t = pd.DataFrame(rows).assign(chance=0.5, p_value=0.01, n=20, test="permutation")
    return t


def test_tidy_table_levels_labels_and_numbers():
    table = _table()
    summary, paired = group_statistics(table)
    tidy = tidy_statistics(table, summary, paired)
    assert list(tidy.level.value_counts().sort_index().items()) == [("group", 3), ("paired", 1),
                                                                     ("participant", 9)]
    # labels: defaults for the paper's analysis, read from the table otherwise
    g = tidy[tidy.level == "group"].set_index(["space", "metric"])
    assert g.loc[("pca", "pairwise_latent"), ["base_metric", "decoder", "roi"]].tolist() == \
        ["pairwise_latent", "ols", "all"]
    assert g.loc[("pca", "pairwise_latent_wls_roi-occipital"), ["decoder", "roi"]].tolist() == \
        ["wls", "occipital"]
    # group mean 0.75, sd 0.05, t = 0.25 / (0.05 / sqrt 3)
    row = g.loc[("pca", "pairwise_latent")]
    assert row["value"] == pytest.approx(0.75) and row["sd"] == pytest.approx(0.05)
    assert row["statistic"] == pytest.approx(0.25 / (0.05 / np.sqrt(3)))
    # paired vaegan vs pca: a = pca, b = vaegan, differences -0.2, -0.15, -0.1
    pr = tidy[tidy.level == "paired"].iloc[0]
    assert (pr["space"], pr["space_b"]) == ("pca", "vaegan")
    assert pr["value"] == pytest.approx(-0.15)
    assert pr["statistic"] == pytest.approx(-0.15 / (0.05 / np.sqrt(3)))
    part = tidy[tidy.level == "participant"]
    assert part["subject"].notna().all() and part["p_value"].eq(0.01).all()


def test_imagery_is_tested_against_each_participants_chance_and_shown_with_it(tmp_path):
    # imagery values 0.60, 0.62, 0.58 against their own null means 0.58, 0.57, 0.59:
    # value − chance = 0.02, 0.05, −0.01 (mean 0.02, sd 0.03), t = 0.02 / (0.03 / sqrt 3);
    # against a flat 0.5 the same values would look significant (t = 0.1 / (0.02 / sqrt 3))
    rows = [{"subject": s, "space": "pca", "metric": "imagery_pairwise", "value": v, "chance": c,
             "p_value": 0.3, "n": 8, "test": "permutation"}
            for s, v, c in (("01", 0.60, 0.58), ("02", 0.62, 0.57), ("03", 0.58, 0.59))]
    rows += [{"subject": s, "space": "pca", "metric": "ssim", "value": v, "chance": None,
              "baseline": b, "p_value": None, "n": 20, "test": None}
             for s, v, b in (("01", 0.7, 0.6), ("02", 0.72, 0.64), ("03", 0.74, 0.62))]
    table = pd.DataFrame(rows)
    summary, paired = group_statistics(table)
    s = summary.set_index("metric")
    assert s.loc["imagery_pairwise", "t"] == pytest.approx(0.02 / (0.03 / np.sqrt(3)))
    assert s.loc["imagery_pairwise", "chance"] == pytest.approx(0.58)
    assert s.loc["ssim", "baseline"] == pytest.approx(0.62)
    tidy = tidy_statistics(table, summary, paired)
    assert tidy[tidy.level == "group"].set_index("metric").loc["ssim", "baseline"] == pytest.approx(0.62)
    # the README's table script shows the chance and the baseline beside the value
    import importlib.util
    from pathlib import Path

    from bids_facedecode.bidsio.derivatives import write_tsv

    write_tsv(tmp_path / "group" / "group_task-faces_statistics.tsv", tidy)
    spec = importlib.util.spec_from_file_location(
        "results_table", Path(__file__).resolve().parents[1] / "scripts" / "results_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lines = mod.results_table(tmp_path).splitlines()
    imagery = next(line for line in lines if line.startswith("| imagery_pairwise |"))
    assert "| 0.600 (0.58–0.62) | 0.58 |" in imagery
    ssim = next(line for line in lines if line.startswith("| ssim |"))
    assert "0.62 (baseline)" in ssim

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

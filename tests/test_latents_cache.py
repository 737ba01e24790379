"""The latent cache of a participant's work dir (workflow.spaces.encode_cached) and the models'
fingerprints it is keyed by."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def case(app_dataset, small_pca, tmp_path_factory):
    from conftest import app_args

    from bids_facedecode.bidsio.layout import index_dataset
    from bids_facedecode.cli import build_parser, settings_from_args
    from bids_facedecode.workflow.inputs import collect_inputs
    from bids_facedecode.workflow.spaces import open_spaces

    out = tmp_path_factory.mktemp("latcache") / "derivatives"
    argv = app_args(app_dataset, out, small_pca, "participant")
    settings = settings_from_args(build_parser().parse_args(argv), argv)
    inputs = collect_inputs(settings, index_dataset(settings.bids_dir), "01", {})
    (space,) = open_spaces(settings, torch.device("cpu"))
    return space, inputs


def test_fingerprint_follows_the_tensors_and_the_config(small_pca):
    from bids_facedecode.latents.registry import load_latent_model

    a, b = load_latent_model(small_pca), load_latent_model(small_pca)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 40
    b.mean[0] += 1e-6  # one value of one tensor
    b._fingerprint = None
    assert b.fingerprint() != a.fingerprint()
    c = load_latent_model(small_pca)
    c.crop_factor = 0.8  # encodes differently with the same tensors
    assert c.fingerprint() != a.fingerprint()


def test_cached_latents_equal_encoding_and_skip_it(case, tmp_path, monkeypatch):
    from bids_facedecode.workflow import spaces

    space, inputs = case
    shas = inputs.train_ids[:50]
    fresh = space.latents_for(shas, inputs.index)
    first = spaces.encode_cached(space, shas, inputs.index, tmp_path)
    np.testing.assert_array_equal(first, fresh)
    assert len(list(tmp_path.glob("latents-pca-*.npy"))) == 1

    def refuse(*a, **k):
        raise AssertionError("encoded again")

    monkeypatch.setattr(type(space.model), "encode", refuse)
    again = spaces.encode_cached(space, shas, inputs.index, tmp_path)
    np.testing.assert_array_equal(again, fresh)
    # another request (other stimuli, or the same in another order) is another entry
    with pytest.raises(AssertionError, match="encoded again"):
        spaces.encode_cached(space, shas[::-1], inputs.index, tmp_path)


def test_damaged_or_unwritable_cache_costs_only_the_cache(case, tmp_path, caplog):
    from bids_facedecode.workflow import spaces

    space, inputs = case
    shas = inputs.test_ids
    fresh = space.latents_for(shas, inputs.index)
    spaces.encode_cached(space, shas, inputs.index, tmp_path)
    (entry,) = tmp_path.glob("latents-pca-*.npy")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(spaces.encode_cached(space, shas, inputs.index, tmp_path),
                                      fresh)
    assert "Discarding unreadable latent cache file" in caplog.text
    np.load(entry)  # rewritten whole
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(spaces.encode_cached(space, shas, inputs.index, blocked / "c"),
                                      fresh)
    assert "cannot write the latent cache" in caplog.text


def test_no_cache_without_a_folder_or_for_tables(case, tmp_path):
    from bids_facedecode.workflow import spaces

    space, inputs = case
    spaces.encode_cached(space, inputs.test_ids, inputs.index, None)
    table_space = spaces.LatentSpace("t", None, object())
    table_space.latents_for = lambda shas, index: np.zeros((len(shas), 3), np.float32)
    spaces.encode_cached(table_space, inputs.test_ids, inputs.index, tmp_path)
    assert not list(tmp_path.iterdir())

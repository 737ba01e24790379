"""The pure-Python TensorFlow checkpoint reader on small checkpoints TensorFlow wrote.

``tests/data/tf_checkpoint/tiny_v{1,2}.ckpt*`` were saved by ``tf.compat.v1.train.Saver``
(TensorFlow 2.21; V1 with ``SaverDef.V1``) from variables of known values, so these tests run
without TensorFlow; tests/test_latents_tf_import.py compares the reader with TensorFlow's on
the authors' whole graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bids_facedecode.latents.tf_checkpoint import (
    CheckpointFormatError,
    CheckpointReader,
    read_table,
)

DATA = Path(__file__).parent / "data" / "tf_checkpoint"
KNOWN = {"net/layer1/W": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
         "net/layer1/b": np.array([-1.5, 0.0, 2.25], np.float32),
         "net/zeros": np.zeros((2, 2), np.float32),
         "scale": np.float64(0.125), "global_step": np.int64(-7)}


@pytest.mark.parametrize("name, fmt", [("tiny_v1.ckpt", "V1"), ("tiny_v2.ckpt", "V2")])
def test_reads_known_values(name, fmt):
    reader = CheckpointReader(DATA / name)
    assert reader.format == fmt
    assert reader.shapes == {k: np.shape(v) for k, v in KNOWN.items()}
    for key, value in KNOWN.items():
        got = reader.get_tensor(key)
        assert got.dtype == np.asarray(value).dtype, key
        np.testing.assert_array_equal(got, value, err_msg=key)


def test_not_a_table(tmp_path, rng):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(rng.bytes(1000))
    with pytest.raises(CheckpointFormatError, match="magic"):
        CheckpointReader(junk)
    with pytest.raises(CheckpointFormatError, match="too small"):
        read_table(b"abc")


def test_truncated_v2_data(tmp_path):
    for f in DATA.glob("tiny_v2.ckpt*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    data = tmp_path / "tiny_v2.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:10])
    reader = CheckpointReader(tmp_path / "tiny_v2.ckpt")
    with pytest.raises(CheckpointFormatError, match="do not fit"):
        for key in KNOWN:
            reader.get_tensor(key)


def test_authors_graph_convolutions_in_full_float32():
    """TF32 is off inside the block (torch's default lets cuDNN use it) and restored after."""
    import torch

    from bids_facedecode.latents.vaegan_authors import full_float32_convolutions

    before = torch.backends.cudnn.allow_tf32
    with full_float32_convolutions():
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before

"""Device selection."""

from __future__ import annotations

import pytest
import torch

from bids_facedecode.device import DATA_DTYPE, GRAM_DTYPE, describe_device, select_device
from bids_facedecode.errors import UsageError


def test_cpu_and_auto():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device().type == expected
    assert describe_device(torch.device("cpu")).startswith("cpu")
    assert (DATA_DTYPE, GRAM_DTYPE) == (torch.float32, torch.float64)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_requested_but_absent_is_a_usage_error():
    with pytest.raises(UsageError, match="--device 'cuda'.*no CUDA device"):
        select_device("cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_present():
    assert select_device("cuda").type == "cuda"
    assert select_device("cuda:0") == torch.device("cuda:0")
    assert "cuda:0" in describe_device(torch.device("cuda:0"))
    with pytest.raises(UsageError, match="device"):
        select_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("name", ["gpu", "tpu", "", "cuda0"])
def test_unknown_names(name):
    with pytest.raises(UsageError, match="--device"):
        select_device(name)

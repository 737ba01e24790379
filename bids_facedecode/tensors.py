"""numpy ↔ torch: the one conversion of arrays to tensors on a device, used by the math modules."""

from __future__ import annotations

import numpy as np
import torch


def as_tensor(
    a, device: torch.device | str, dtype: torch.dtype | None = None, copy: bool = False
) -> torch.Tensor:
    """A tensor of ``a`` on ``device``, sharing memory with ``a`` where it can.

    A numpy array is wrapped without a copy (``torch.from_numpy``; made C-contiguous first when
    it is not, which gives a 0-d array one dimension), a tensor is moved as it is, anything else
    (lists, scalars) goes through ``numpy.asarray``. The result is a copy only when the device or dtype differ or ``copy``.

    Parameters
    ----------
    a : ndarray, Tensor or array-like, any shape
    device : torch.device or str
    dtype : torch.dtype, optional
        Default: the dtype of ``a`` (numpy's, for array-likes).
    copy : bool
        Always return a new tensor.

    Returns
    -------
    Tensor of the shape of ``a``.
    """
    if isinstance(a, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(a))
    elif isinstance(a, torch.Tensor):
        t = a
    else:
        t = torch.as_tensor(np.asarray(a))
    return t.to(device=torch.device(device), dtype=dtype if dtype is not None else t.dtype,
                copy=copy)

"""Choose the compute device once, and the dtype policy every math module follows.

Policy
------
* BOLD data and the large products (``XᵀY``) are computed in ``float32`` (:data:`DATA_DTYPE`);
* everything that is solved or subtracted — Gram matrices ``XᵀX``, ``Σy²``, accumulated ``XᵀY``,
  nuisance projections, Cholesky factors — is held in ``float64`` (:data:`GRAM_DTYPE`).
"""

from __future__ import annotations

import torch

from .errors import UsageError

DATA_DTYPE = torch.float32
GRAM_DTYPE = torch.float64



def cuda_available() -> bool:
    """Return whether torch sees a usable CUDA device."""
    return bool(torch.cuda.is_available())


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device named by a ``--device`` option.

    Parameters
    ----------
    name : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``.

    Returns
    -------
    torch.device

    Raises
    ------
    UsageError
        When the name is unknown, or CUDA is asked for and absent.
    """
    if not isinstance(name, str):
        raise UsageError(f"--device: expected a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key == "auto":
        return torch.device("cuda") if cuda_available() else torch.device("cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "cuda" or key.startswith("cuda:"):
        if not cuda_available():
            raise UsageError(
                f"--device {name!r}: CUDA was requested but torch sees no CUDA device "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        dev = torch.device(key)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return dev
    raise UsageError(f"--device {name!r}: expected one of auto, cpu, cuda, cuda:<index>")


def describe_device(device: torch.device) -> str:
    """One-line human description of a device, for logs and reports."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"

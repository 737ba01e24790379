"""Import the authors' TensorFlow 1 VAE-GAN checkpoint into a model directory.

The authors publish ``vaegan_celeba.ckpt`` (github rufinv/VAE-GAN-CelebA), a ``tf.train.Saver``
checkpoint of their whole training graph. Its encoder and generator are read by their
variable names (``encoder/layerK/conv2d/W``, ``.../bn/beta``, the batch-norm moving averages
``.../moments/Squeeze/ExponentialMovingAverage`` and ``Squeeze_1``, ``encoder/fc``,
``encoder/variational/mu``, ``.../log_sigma``, ``generator/fc``, ``generator/layerK/deconv2d``);
the layer widths, latent size and image size follow from their shapes. Everything else (the
discriminator, the Adam slots and ``beta1_power``/``beta2_power``, counters) is listed and
left aside. The file is read without TensorFlow (:mod:`.tf_checkpoint`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CantCreateError, DataError, NoInputError
from .tf_checkpoint import CheckpointFormatError, CheckpointReader
from .vaegan import VAEGANModel
from .vaegan_nets import VAEGANArch, build_decoder, build_encoder

LOG = logging.getLogger(__name__)

OFFICIAL_NAME = "vaegan_celeba.ckpt"
OFFICIAL_SIZE = 554_656_600
OFFICIAL_SHA256 = "f97e76a9302481d45dca45a523904c91a94c8e39b94922c0f949df02e5c4948b"
#: the authors' preprocessing keeps 0.8 of the centred square
AUTHORS_CROP_FACTOR = 0.8

_EMA = "ExponentialMovingAverage"


@dataclass
class CheckpointSource:
    """A checkpoint on disk: the prefix TensorFlow opens and the files it is made of."""

    prefix: Path
    files: list[Path]
    format: str  # "V1" (one file) or "V2" (.index + .data-*)


@dataclass
class ImportReport:
    """What an import used and left aside (variable names)."""

    used: list[str]
    left_aside: dict[str, list[str]] = field(default_factory=dict)
    official: bool = False


def locate_checkpoint(path: str | Path) -> CheckpointSource:
    """The checkpoint at ``path``: a V1 file, a V2 prefix, or a V2 ``.index`` file.

    Raises
    ------
    NoInputError
        Nothing there.
    """
    path = Path(path)
    prefix = path.with_suffix("") if path.suffix == ".index" else path
    index = Path(f"{prefix}.index")
    if index.is_file():
        data = sorted(prefix.parent.glob(f"{prefix.name}.data-*-of-*"))
        if not data:
            raise DataError(f"{index}: the checkpoint's .data-* file is missing")
        return CheckpointSource(prefix, [index, *data], "V2")
    if path.is_file():
        return CheckpointSource(path, [path], "V1")
    raise NoInputError(f"{path}: TensorFlow checkpoint not found")


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(source: CheckpointSource) -> tuple[dict[str, tuple[int, ...]], Any]:
    """Open a checkpoint: ``(name -> shape, reader)``; ``reader.get_tensor(name)`` returns one
    variable as an ndarray.

    The pure-Python reader (:mod:`.tf_checkpoint`) reads what ``tf.train.Saver`` writes by
    default; for what it does not read (compressed tables, partitioned variables) TensorFlow is
    used when installed (the ``tf`` extra).

    Raises
    ------
    DataError
        The file is not a checkpoint (or one that only TensorFlow reads, and it is missing).
    """
    try:
        reader = CheckpointReader(source.prefix)
        return dict(reader.shapes), reader
    except CheckpointFormatError as exc:
        problem = str(exc)
    except OSError as exc:
        raise DataError(f"{source.files[0]}: cannot read checkpoint ({exc})") from exc
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from tensorflow.python.training import py_checkpoint_reader
    except ImportError:
        raise DataError(f"{source.files[0]}: not a TensorFlow checkpoint this reader reads "
                        f"({problem}; with TensorFlow installed, pip install "
                        "'bids_facedecode[tf]', it is tried too)") from None
    try:
        reader = py_checkpoint_reader.NewCheckpointReader(str(source.prefix))
        shapes = {k: tuple(int(d) for d in v)
                  for k, v in reader.get_variable_to_shape_map().items()}
    except Exception as exc:  # TensorFlow raises its own errors (DataLossError, ...)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{source.files[0]}: not a TensorFlow checkpoint ({problem}; "
                        f"TensorFlow: {msg})") from exc
    LOG.info("%s: read with TensorFlow (%s)", source.files[0], problem)
    return shapes, reader


class _Variables:
    """Checked access to a checkpoint's variables, remembering which were used."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], reader: Any, where: Path):
        self.shapes, self.reader, self.where = shapes, reader, where
        self.used: list[str] = []

    def has(self, name: str) -> bool:
        return name in self.shapes

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise DataError(f"{self.where}: variable '{name}' missing (the encoder or generator "
                            "is incomplete)")
        return self.shapes[name]

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        got = self.shape(name)
        if tuple(got) != tuple(shape):
            raise DataError(f"{self.where}: variable '{name}' has shape {tuple(got)}, "
                            f"expected {tuple(shape)}")
        self.used.append(name)
        return np.asarray(self.reader.get_tensor(name), dtype=np.float32)

    def moving_average(self, scope: str, which: int) -> str:
        """Name of the moving mean (``which=0``) or variance (1) of the batch norm ``scope``."""
        squeeze = "Squeeze" if which == 0 else "Squeeze_1"
        pattern = re.compile(rf"^{re.escape(scope)}/bn/(?:.*/)?moments/{squeeze}/{_EMA}$")
        found = sorted(n for n in self.shapes if pattern.match(n))
        if len(found) != 1:
            what = "missing" if not found else f"ambiguous ({', '.join(found)})"
            raise DataError(f"{self.where}: variable '{scope}/bn/.../moments/{squeeze}/{_EMA}' "
                            f"{what} (the batch norm's moving {('mean', 'variance')[which]})")
        return found[0]


def _bn(v: _Variables, scope: str, c: int) -> dict[str, torch.Tensor]:
    t = torch.from_numpy
    return {"bn.weight": t(v.get(f"{scope}/bn/gamma", (c,))),
            "bn.bias": t(v.get(f"{scope}/bn/beta", (c,))),
            "bn.running_mean": t(v.get(v.moving_average(scope, 0), (c,))),
            "bn.running_var": t(v.get(v.moving_average(scope, 1), (c,))),
            "bn.num_batches_tracked": torch.tensor(0)}


def _layers(v: _Variables, net: str, op: str) -> int:
    n = 0
    while v.has(f"{net}/layer{n + 1}/{op}/W"):
        n += 1
    if n == 0:
        v.shape(f"{net}/layer1/{op}/W")  # raises: missing
    return n


def _linear(v: _Variables, scope: str, n_in: int, n_out: int) -> dict[str, torch.Tensor]:
    w = v.get(f"{scope}/W", (n_in, n_out))
    return {"weight": torch.from_numpy(np.ascontiguousarray(w.T)),
            "bias": torch.from_numpy(v.get(f"{scope}/b", (n_out,)))}


def convert(shapes: dict[str, tuple[int, ...]], reader: Any,
            where: Path) -> tuple[VAEGANArch, dict[str, torch.Tensor], dict[str, torch.Tensor],
                                  list[str]]:
    """The encoder's and generator's tensors in torch layout, and the architecture.

    Returns
    -------
    arch, encoder_state, decoder_state, used_variable_names
    """
    v = _Variables(shapes, reader, where)
    t = torch.from_numpy
    enc: dict[str, torch.Tensor] = {}
    n_enc = _layers(v, "encoder", "conv2d")
    k = v.shape("encoder/layer1/conv2d/W")[0]
    chans = [3]
    for i in range(n_enc):
        scope = f"encoder/layer{i + 1}"
        c = v.shape(f"{scope}/conv2d/W")[-1]
        w = v.get(f"{scope}/conv2d/W", (k, k, chans[-1], c))
        enc[f"convs.{i}.conv.weight"] = t(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
        enc[f"convs.{i}.conv.bias"] = t(v.get(f"{scope}/conv2d/b", (c,)))
        enc.update({f"convs.{i}.{n}": x for n, x in _bn(v, scope, c).items()})
        chans.append(c)
    rows, hidden = (v.shape("encoder/fc/W") + (0, 0))[:2]
    base = int(round(np.sqrt(rows / chans[-1])))
    if base < 1 or base * base * chans[-1] != rows:
        raise DataError(f"{where}: variable 'encoder/fc/W' has shape {v.shape('encoder/fc/W')}, "
                        f"expected (side*side*{chans[-1]}, width)")
    enc.update({f"fc.{n}": x for n, x in _linear(v, "encoder/fc", rows, hidden).items()})
    latent = v.shape("encoder/variational/mu/W")[-1]
    for name in ("mu", "log_sigma"):
        enc.update({f"{name}.{n}": x for n, x in
                    _linear(v, f"encoder/variational/{name}", hidden, latent).items()})

    dec: dict[str, torch.Tensor] = {}
    n_gen = _layers(v, "generator", "deconv2d")
    if n_gen != n_enc:
        raise DataError(f"{where}: the generator has {n_gen} layers, the encoder {n_enc}")
    c0 = v.shape("generator/layer1/deconv2d/W")[-1]
    dec.update({f"fc.{n}": x for n, x in
                _linear(v, "generator/fc", latent, base * base * c0).items()})
    gen = [c0]
    for i in range(n_gen):
        scope = f"generator/layer{i + 1}"
        c = 3 if i == n_gen - 1 else v.shape(f"{scope}/deconv2d/W")[2]
        w = v.get(f"{scope}/deconv2d/W", (k, k, c, gen[-1]))
        dec[f"deconvs.{i}.deconv.weight"] = t(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
        dec[f"deconvs.{i}.deconv.bias"] = t(v.get(f"{scope}/deconv2d/b", (c,)))
        dec.update({f"deconvs.{i}.{n}": x for n, x in _bn(v, scope, c).items()})
        gen.append(c)
    arch = VAEGANArch("authors", base * 2**n_enc, latent, tuple(chans[1:]), hidden, c0,
                      tuple(gen[1:-1]), (), 0, k, True, "authors")
    return arch, enc, dec, v.used


def classify_left_aside(names: list[str]) -> dict[str, list[str]]:
    """Group the variables an import does not use: discriminator, optimiser, other."""
    groups: dict[str, list[str]] = {"discriminator": [], "optimiser": [], "other": []}
    for n in sorted(names):
        if re.search(r"/Adam(_\d+)?$", n) or re.fullmatch(r"beta[12]_power(_\d+)?", n):
            groups["optimiser"].append(n)
        elif n.startswith("discriminator/"):
            groups["discriminator"].append(n)
        else:
            groups["other"].append(n)
    return groups


def import_checkpoint(path: str | Path, out: str | Path,
                      device: str | torch.device = "cpu") -> tuple[VAEGANModel, ImportReport]:
    """Read the authors' checkpoint and write it as a model directory.

    Parameters
    ----------
    path : path-like
        The V1 checkpoint file (as published), or a V2 prefix / ``.index`` file.
    out : path-like
        Model directory to create (must not exist); nothing is written on error.
    device : str or torch.device

    Returns
    -------
    model : VAEGANModel
    report : ImportReport
    """
    out = Path(out)
    if out.exists():
        raise CantCreateError(f"{out}: already exists (choose a new model directory)")
    source = locate_checkpoint(path)
    with open(source.files[0], "rb") as fh:
        if fh.read(64).startswith(b"version https://git-lfs"):
            raise DataError(f"{source.files[0]}: a Git LFS pointer, not the checkpoint "
                            "(fetch it: git lfs pull)")
    shapes, reader = read_checkpoint(source)
    try:
        arch, enc_state, dec_state, used = convert(shapes, reader, source.files[0])
    finally:
        getattr(reader, "close", lambda: None)()
    enc, dec = build_encoder(arch), build_decoder(arch)
    enc.load_state_dict(enc_state)
    dec.load_state_dict(dec_state)
    left = classify_left_aside([n for n in shapes if n not in set(used)])
    files = [{"name": f.name, "size": f.stat().st_size, "sha256": sha256_of(f)}
             for f in source.files]
    official = (source.format == "V1" and files[0]["sha256"] == OFFICIAL_SHA256
                and files[0]["size"] == OFFICIAL_SIZE)
    if official:
        LOG.info("%s is the authors' published checkpoint (sha256 %s)", source.files[0],
                 OFFICIAL_SHA256)
    else:
        LOG.warning("%s is not the authors' published %s (sha256 %s...): imported all the same",
                    source.files[0], OFFICIAL_NAME, OFFICIAL_SHA256[:12])
    meta = {"source": {
        "format": f"TensorFlow checkpoint {source.format}",
        "files": files,
        "official": official,
        "official_sha256": OFFICIAL_SHA256,
        "variables_used": sorted(used),
        "variables_left_aside": left,
    }, "training": {"by": "the authors (github rufinv/VAE-GAN-CelebA), imported"}}
    model = VAEGANModel(arch, enc, dec, crop_factor=AUTHORS_CROP_FACTOR, device=device,
                        meta=meta)
    model.save(out)
    return model, ImportReport(sorted(used), left, official)

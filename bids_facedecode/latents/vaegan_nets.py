"""VAE-GAN networks (Larsen et al. 2016) as configurations.

``paper`` has the sizes of the authors' model (github rufinv/VAE-GAN-CelebA): 128x128x3
input, encoder of 5 conv 3x3 stride 2 (192/256/384/512/768 channels, batch-norm, ELU), a
dense layer of 1024, a 1024-D Gaussian latent (``mu = tanh(.)``, ``log sigma = 0.5
tanh(.)``); the decoder mirrors it (dense to 4x4x1024, five transposed conv 3x3 stride 2
with 512/384/256/192/3 channels). It is trained here and differs from the authors' graph in
details (symmetric padding, batch norm and ELU on the dense layer, sigmoid output).
``authors`` is the authors' graph itself (:mod:`.vaegan_authors`), for their published
weights (``bids_facedecode-import-vaegan``); it is not trained here. ``small`` is the 64x64,
128-D default shipped with the package. ``tiny`` exists for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class VAEGANArch:
    """Architecture of a VAE-GAN (encoder, decoder, discriminator).

    Attributes
    ----------
    name : str
    image_size : int
        Input/output side ``S``; must equal ``base * 2**len(enc_channels)``.
    latent_dim : int
    enc_channels : tuple of int
        Output channels of the stride-2 conv layers of the encoder.
    enc_dense : int
        Width of the dense layer between the conv stack and the latent (0 = none).
    dec_fc_channels : int
        Channels of the decoder's first feature map (``base x base``).
    dec_channels : tuple of int
        Channels after each transposed conv except the last (which outputs RGB).
    disc_channels : tuple of int
        Stride-2 conv layers of the discriminator; its last layer's features give the
        feature-matching reconstruction loss.
    disc_dense : int
        Width of the discriminator's dense layer.
    kernel : int
    bounded_latent : bool
        ``mu = tanh(.)`` and ``log sigma = 0.5 tanh(.)`` as in the paper's code.
    graph : str
        ``"ours"`` (the networks below) or ``"authors"`` (:mod:`.vaegan_authors`: the
        authors' TensorFlow graph; ``enc_dense`` is then its linear layer's width).
    """

    name: str
    image_size: int
    latent_dim: int
    enc_channels: tuple[int, ...]
    enc_dense: int
    dec_fc_channels: int
    dec_channels: tuple[int, ...]
    disc_channels: tuple[int, ...]
    disc_dense: int
    kernel: int = 3
    bounded_latent: bool = False
    graph: str = "ours"

    @property
    def base(self) -> int:
        """Side of the smallest feature map."""
        return self.image_size // 2 ** len(self.enc_channels)

    def validate(self) -> None:
        """Raise ValueError if the sizes do not fit together."""
        n = len(self.enc_channels)
        if self.image_size % 2**n or self.base < 1:
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**{n}")
        if len(self.dec_channels) != n - 1:
            raise ValueError(f"dec_channels needs {n - 1} entries (one per upsampling but the "
                             f"last), got {len(self.dec_channels)}")
        if self.image_size % 2 ** len(self.disc_channels):
            raise ValueError("image_size must be divisible by 2**len(disc_channels)")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {self.latent_dim}")
        if self.graph not in GRAPHS:
            raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {self.graph!r}")
        if self.graph == "authors" and self.enc_dense < 1:
            raise ValueError("the authors' graph needs a linear layer (enc_dense > 0)")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["graph"] == "ours":  # the configs written before the authors' graph existed
            del d["graph"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> VAEGANArch:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown architecture fields: {sorted(unknown)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        arch = cls(**kw)
        arch.validate()
        return arch


GRAPHS = ("ours", "authors")

ARCHS: dict[str, VAEGANArch] = {
    "paper": VAEGANArch("paper", 128, 1024, (192, 256, 384, 512, 768), 1024, 1024,
                        (512, 384, 256, 192), (64, 128, 256, 256), 512, 3, True),
    "small": VAEGANArch("small", 64, 128, (48, 96, 192, 384), 0, 384, (192, 96, 48),
                        (32, 64, 128, 128), 256, 3, False),
    "tiny": VAEGANArch("tiny", 16, 8, (8, 16), 0, 16, (8,), (8, 16), 32, 3, False),
    "authors": VAEGANArch("authors", 128, 1024, (192, 256, 384, 512, 768), 1024, 1024,
                          (512, 384, 256, 192), (64, 128, 256, 256), 512, 3, True, "authors"),
}

#: architectures that ``bids_facedecode-train-latents`` trains (``authors`` is imported)
TRAINABLE = tuple(name for name, a in ARCHS.items() if a.graph == "ours")


def get_arch(name: str, latent_dim: int | None = None, image_size: int | None = None) -> VAEGANArch:
    """A named architecture, optionally with another latent dimension / image size."""
    if name not in ARCHS:
        raise KeyError(name)
    arch = ARCHS[name]
    changes = {}
    if latent_dim is not None:
        changes["latent_dim"] = int(latent_dim)
    if image_size is not None:
        changes["image_size"] = int(image_size)
    arch = dataclasses.replace(arch, **changes)
    arch.validate()
    return arch


def _conv_block(c_in: int, c_out: int, k: int, bn: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ELU())
    return nn.Sequential(*layers)


def _deconv(c_in: int, c_out: int, k: int) -> nn.ConvTranspose2d:
    # the transpose of a 'SAME' stride-2 conv: doubles the side
    return nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=1)


class Encoder(nn.Module):
    """Images ``(N, 3, S, S)`` in [0, 1] -> ``mu, logvar`` each ``(N, D)``."""

    def __init__(self, arch: VAEGANArch):
        super().__init__()
        chans = (3, *arch.enc_channels)
        self.convs = nn.Sequential(*[_conv_block(a, b, arch.kernel)
                                     for a, b in zip(chans[:-1], chans[1:], strict=True)])
        flat = arch.enc_channels[-1] * arch.base**2
        if arch.enc_dense:
            self.dense = nn.Sequential(nn.Linear(flat, arch.enc_dense, bias=False),
                                       nn.BatchNorm1d(arch.enc_dense), nn.ELU())
            flat = arch.enc_dense
        else:
            self.dense = nn.Identity()
        self.mu = nn.Linear(flat, arch.latent_dim)
        self.logvar = nn.Linear(flat, arch.latent_dim)
        self.bounded = arch.bounded_latent

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dense(self.convs(x * 2.0 - 1.0).flatten(1))
        mu, logvar = self.mu(h), self.logvar(h)
        if self.bounded:
            mu, logvar = torch.tanh(mu), torch.tanh(logvar)  # log var = 2 * 0.5 tanh
        return mu, logvar


class Decoder(nn.Module):
    """Latents ``(N, D)`` -> images ``(N, 3, S, S)`` in [0, 1]."""

    def __init__(self, arch: VAEGANArch):
        super().__init__()
        self.base, self.c0 = arch.base, arch.dec_fc_channels
        self.fc = nn.Sequential(nn.Linear(arch.latent_dim, self.c0 * self.base**2, bias=False),
                                nn.BatchNorm1d(self.c0 * self.base**2), nn.ELU())
        chans = (self.c0, *arch.dec_channels)
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [_deconv(a, b, arch.kernel), nn.BatchNorm2d(b), nn.ELU()]
        layers.append(_deconv(chans[-1], 3, arch.kernel))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.c0, self.base, self.base)
        return torch.sigmoid(self.deconvs(h))


class Discriminator(nn.Module):
    """Images ``(N, 3, S, S)`` -> (features of the last conv layer, real/fake logit ``(N,)``)."""

    def __init__(self, arch: VAEGANArch):
        super().__init__()
        chans = (3, *arch.disc_channels)
        blocks = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
            blocks.append(nn.Sequential(
                nn.Conv2d(a, b, arch.kernel, stride=2, padding=arch.kernel // 2, bias=i == 0),
                *([] if i == 0 else [nn.BatchNorm2d(b)]), nn.LeakyReLU(0.2)))
        self.convs = nn.Sequential(*blocks)
        side = arch.image_size // 2 ** len(arch.disc_channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(arch.disc_channels[-1] * side**2,
                                                          arch.disc_dense),
                                  nn.LeakyReLU(0.2), nn.Linear(arch.disc_dense, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.convs(x * 2.0 - 1.0)
        return feats, self.head(feats).squeeze(1)


def build_encoder(arch: VAEGANArch) -> nn.Module:
    """The encoder of ``arch``: :class:`Encoder` or the authors' graph."""
    if arch.graph == "authors":
        from .vaegan_authors import AuthorsEncoder

        return AuthorsEncoder(arch.enc_channels, arch.base, arch.enc_dense, arch.latent_dim,
                              arch.kernel)
    return Encoder(arch)


def build_decoder(arch: VAEGANArch) -> nn.Module:
    """The decoder of ``arch``: :class:`Decoder` or the authors' generator."""
    if arch.graph == "authors":
        from .vaegan_authors import AuthorsGenerator

        return AuthorsGenerator(arch.latent_dim, arch.base, arch.dec_fc_channels,
                                arch.dec_channels, arch.kernel)
    return Decoder(arch)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

"""Draw the figures of docs/models.md from the shipped models.

Usage: python scripts/model_card_figures.py [OUT_DIR]   (default docs/figures)
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bids_facedecode.latents.arithmetic import plot_latent_arithmetic  # noqa: E402
from bids_facedecode.latents.registry import SHIPPED_DIR, load_latent_model  # noqa: E402
from bids_facedecode.simulate.faces import GENDER_INDEX, face_corpus  # noqa: E402

HELDOUT_SEED = 987654321


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("docs/figures")
    out.mkdir(parents=True, exist_ok=True)
    images, params = face_corpus(400, seed=HELDOUT_SEED, size=64)
    is_male = params[:, GENDER_INDEX] > 0.5
    models = {name: load_latent_model(name) for name in ("pca", "vaegan")}
    for name, model in models.items():
        plot_latent_arithmetic(model, images, is_male, out / f"models_arithmetic_{name}.png")
    # reconstructions of held-out faces
    n = 8
    fig, axes = plt.subplots(3, n, figsize=(1.1 * n, 3.6))
    rows = [("held-out", images[:n])] + [(k, m.decode(m.encode(images[:n])))
                                         for k, m in models.items()]
    for r, (label, imgs) in enumerate(rows):
        for c in range(n):
            axes[r, c].imshow(imgs[c])
            axes[r, c].axis("off")
        axes[r, 0].set_title(label, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(out / "models_reconstructions.png", dpi=80)
    plt.close(fig)
    # VAE-GAN training losses
    losses = pd.read_csv(SHIPPED_DIR / "vaegan" / "losses.csv")
    per_epoch = losses.groupby("epoch").mean(numeric_only=True)
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.6))
    for ax, cols in zip(axes, (["pix"], ["feat"], ["gan_d", "gan_g"]), strict=True):
        for c in cols:
            ax.plot(per_epoch.index + 1, per_epoch[c], label=c)
        ax.set_xlabel("epoch")
        ax.set_yscale("log" if cols != ["gan_d", "gan_g"] else "linear")
    refine_csv = SHIPPED_DIR / "vaegan" / "refine_losses.csv"
    if refine_csv.is_file():  # second stage: decoder refined on the posterior means
        refine = pd.read_csv(refine_csv).groupby("epoch").mean(numeric_only=True)
        axes[0].plot(len(per_epoch) + refine.index + 1, refine["pix"],
                     label="pix of G(mu), refinement")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle("shipped VAE-GAN: training losses (epoch means)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "models_vaegan_losses.png", dpi=80)
    plt.close(fig)
    print("figures written to", out, np.round(per_epoch["pix"].iloc[-1], 5))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

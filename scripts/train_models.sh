#!/usr/bin/env bash
# Reproduce the shipped latent models (bids_facedecode/data/models/{pca,vaegan}).
#
#   scripts/train_models.sh [WORK_DIR] [DEVICE]      (DEVICE: cuda | cpu | auto; default auto)
#
# 1. writes the simulator's face corpus (20,000 faces, 64x64 PNG, seed 1) to WORK_DIR/corpus;
# 2. trains PCA with D = 128 (the small VAE-GAN's latent dimension);
# 3. trains the small VAE-GAN (D = 128) for 50 epochs (about 4 minutes on one H100/H200);
# 4. refines its decoder on the encoder's posterior means for 10 epochs, always on the CPU
#    (the shipped refinement ran there: about 6 minutes on 2 cores);
# 5. copies config.json + model.safetensors (+ losses.csv, refine_losses.csv,
#    pca_spectrum.csv) into the package.
# Bit-exact reproduction needs the same device type and library versions (see config.json:
# "training" for steps 2-3, "refinement" for step 4).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-work/models}
DEVICE=${2:-auto}
PY=${PYTHON:-python}
export CUBLAS_WORKSPACE_CONFIG=:4096:8 PYTHONHASHSEED=0
mkdir -p "$WORK"
if [ ! -f "$WORK/corpus/.done" ]; then
  rm -rf "$WORK/corpus"
  "$PY" scripts/write_face_corpus.py "$WORK/corpus" 20000 1 64
  touch "$WORK/corpus/.done"
fi
rm -rf "$WORK/pca" "$WORK/vaegan-adversarial" "$WORK/vaegan"
"$PY" -m bids_facedecode.latents.cli --images "$WORK/corpus" --space pca --latent-dim 128 \
  --image-size 64 --out "$WORK/pca" --device "$DEVICE" --seed 0 -v
"$PY" -m bids_facedecode.latents.cli --images "$WORK/corpus" --space vaegan --arch small \
  --latent-dim 128 --epochs 50 --batch-size 64 --lr 1e-3 --kl-weight 0.0001 --feat-weight 0.01 \
  --adv-weight 0.0001 --device "$DEVICE" --workers 4 --seed 0 --no-progress \
  --out "$WORK/vaegan-adversarial" -v
"$PY" -m bids_facedecode.latents.cli --images "$WORK/corpus" --space vaegan \
  --refine-from "$WORK/vaegan-adversarial" --refine-epochs 10 --refine-lr 1e-4 --batch-size 64 \
  --device cpu --workers 1 --seed 0 --no-progress --out "$WORK/vaegan" -v
for m in pca vaegan; do
  dest=bids_facedecode/data/models/$m
  mkdir -p "$dest"
  cp "$WORK/$m/config.json" "$WORK/$m/model.safetensors" "$dest/"
done
cp "$WORK/pca/pca_spectrum.csv" bids_facedecode/data/models/pca/
cp "$WORK/vaegan-adversarial/losses.csv" "$WORK/vaegan/refine_losses.csv" \
  bids_facedecode/data/models/vaegan/
echo "shipped models updated"

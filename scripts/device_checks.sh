#!/usr/bin/env bash
# shellcheck disable=SC2317  # the step functions run through "bash -c step_<name>"
# The checks that need a GPU, prepared as one run for a session that is lent a device machine
# (its image: Python 3.12 with PyTorch + CUDA, no network, 15 minutes of device time in all).
#
#   scripts/device_checks.sh [STEP ...]
#
# STEP (in the order given; default: setup tests glm participant):
#   setup        install the packages the image lacks from .whl/py312 (make device-wheels,
#                carried with the run) and this checkout, without touching torch or numpy
#   tests        the CUDA-parametrised tests (pytest -m cuda)
#   glm          benchmarks/bench_glm.py, GLM section on CUDA (T=10k/20k, V=50k/100k)
#   participant  benchmarks/bench_glm.py, whole participant level on CUDA (98 runs, V=100k),
#                the default AR(1) noise model and --noise-model ols side by side (cold, warm)
#   vaegan       train the small VAE-GAN with $VAEGAN_FLAGS (default: the shipped settings,
#                adversarial stage and decoder refinement, both on the device) on
#                the simulator's corpus and compare it with the shipped PCA
#                (benchmarks/bench_latents_quality.py); the model comes back in $OUT/vaegan-*
#
# Environment: OUT (logs and results; default work/device-out), DEVICE (default cuda; cpu for a
# rehearsal), STEP_TIMEOUT (seconds per step, default 300), NPROCS (default: all CPUs),
# SMOKE=1 (tiny sizes: rehearse the script on a CPU in a minute), PYTHON (default python3).
# All output goes to $OUT/steps.log and one line per step to $OUT/summary.txt (with the model of
# the vaegan step: 6 files, within what a device run sends back); a failing step does not stop
# the next; the exit status is the number of failed steps.
#
# Budget (15 device-minutes a session, a machine's start included): the default steps take about
# 6-8 minutes on an H100/H200 (run with timeout_s=580 and carry=[".whl/py312"]); `setup vaegan`
# about 6 more (a second call starts a fresh machine: only when >= 9 minutes are left).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-work/device-out}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
NPROCS=${NPROCS:-$(nproc)}
SMOKE=${SMOKE:-0}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(setup tests glm participant)
failed=0

step_setup() {
    if [ -d .whl/py312 ] && ls .whl/py312/*.whl >/dev/null 2>&1; then
        # --no-deps: only what the image lacks is in the folder; its torch and numpy stay
        "$PY" -m pip install --quiet --no-index --no-deps .whl/py312/*.whl || return 1
    else
        echo "no .whl/py312 (make device-wheels, then carry .whl/py312); using what is installed"
    fi
    "$PY" -m pip install --quiet --no-index --no-deps --no-build-isolation -e . || return 1
    "$PY" - <<'EOF'
import bids, isal, nibabel, nilearn, torch
import bids_facedecode
print("bids_facedecode", bids_facedecode.__version__, "| torch", torch.__version__,
      "| cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
}

step_tests() {
    "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_glm.py tests/test_decode.py \
        tests/test_device.py tests/test_latents_vaegan.py tests/test_latents_refine.py \
        tests/test_analyses_folds.py tests/test_streaming.py tests/test_noise.py
}

step_glm() {
    local sizes=10000x50000,20000x100000
    [ "$SMOKE" = 1 ] && sizes=2000x5000
    "$PY" benchmarks/bench_glm.py --device "$DEVICE" --sections glm --sizes "$sizes" \
        --nilearn-max 0 --ar1-max 0 --nprocs "$NPROCS"
}

step_participant() {
    local size=()
    [ "$SMOKE" = 1 ] && size=(--runs 4 --voxels 5000 --grid 24x28x24 --latent-dim 32 --small-mem 0.3)
    "$PY" benchmarks/bench_glm.py --device "$DEVICE" --sections participant --nprocs "$NPROCS" \
        --small-mem 2.9 --workdir "${BENCH_DIR:-/tmp/bids_facedecode-bench}" "${size[@]}"
}

step_vaegan() {
    local flags=${VAEGAN_FLAGS:-"--epochs 50 --batch-size 64 --lr 1e-3 --kl-weight 0.0001 --feat-weight 0.01 --adv-weight 0.0001 --refine-epochs 10 --refine-lr 1e-4"}
    local n=20000 tag model
    [ "$SMOKE" = 1 ] && { n=200; flags="$flags --epochs 1 --max-images 200"; }
    tag=$(echo "$flags" | tr -c 'A-Za-z0-9.\n' '_' | tr -s '_' | sed 's/^_//' | cut -c1-60)
    model="$OUT/vaegan-$tag"
    local corpus=${CORPUS_DIR:-/tmp/bids_facedecode-corpus}
    if [ ! -f "$corpus/.done" ]; then
        rm -rf "$corpus"
        "$PY" scripts/write_face_corpus.py "$corpus" "$n" 1 64 || return 1
        touch "$corpus/.done"
    fi
    # shellcheck disable=SC2086  # the flags are words
    "$PY" -m bids_facedecode.latents.cli --images "$corpus" --space vaegan --arch small \
        --latent-dim 128 $flags --device "$DEVICE" --workers 4 --seed 0 --no-progress \
        --out "$model" -v || return 1
    rm -rf "$model/checkpoints"  # only config, weights and losses come back
    "$PY" benchmarks/bench_latents_quality.py --vaegan "$model" --device "$DEVICE" \
        --n "$([ "$SMOKE" = 1 ] && echo 20 || echo 500)"
}

export OUT DEVICE PY NPROCS SMOKE
export -f step_setup step_tests step_glm step_participant step_vaegan
for step in "${steps[@]}"; do
    if ! declare -F "step_$step" >/dev/null; then
        echo "unknown step '$step' (setup tests glm participant vaegan)" | tee -a "$OUT/summary.txt"
        failed=$((failed + 1))
        continue
    fi
    t0=$SECONDS
    echo "===== $step" >>"$OUT/steps.log"
    timeout "$STEP_TIMEOUT" bash -c "set -o pipefail; step_$step" >"$OUT/.step.log" 2>&1
    rc=$?
    cat "$OUT/.step.log" >>"$OUT/steps.log"
    [ $rc -ne 0 ] && failed=$((failed + 1))
    echo "$step: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    tail -n 15 "$OUT/.step.log"
    rm -f "$OUT/.step.log"
done
exit "$failed"

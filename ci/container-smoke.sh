#!/usr/bin/env bash
# CI smoke test of the bids_facedecode container: build the image with podman and run the
# BIDS-App in it end to end on a tiny simulated dataset, the way users run it.
#
# Made for a fresh Debian bookworm machine, as root, without a Docker engine and without a
# reachable container registry (PyPI and the Debian mirror only); see docs/container.md.
#
#   ci/container-smoke.sh            # from the repository root (or anywhere: paths are resolved)
#
# Environment (all optional):
#   IMAGE            tag to build                    (default localhost/bids_facedecode:ci)
#   SMOKE_DIR        scratch folder for data/outputs (default /var/tmp/facedecode-smoke)
#   WHEEL_DIR        folder holding the CPU torch wheel (default: pip's find-links, see below)
#   TORCH_SPEC       torch requirement for the build (default: the CPU wheel found in WHEEL_DIR)
#   TORCH_INDEX_URL  index for torch instead of a wheel folder (e.g. the PyTorch CPU index)
#   RUN_UID/RUN_GID  user the container runs as     (default 4242:4242, not in the image)
#   SIM_ARGS         simulator options (default: 2 subjects, 1 session, 4 runs, 8 mm)
#   APP_ARGS         extra participant-level options (default: --nprocs 2 --device cpu)
#   SKIP_APT=1       do not apt-get install podman/runc/debootstrap
#   KEEP=1           keep SMOKE_DIR afterwards (it is always kept on failure)
# The stand-in base image (tag docker.io/library/python:3.11-slim) is reused when present.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-localhost/bids_facedecode:ci}
SMOKE_DIR=${SMOKE_DIR:-/var/tmp/facedecode-smoke}
RUN_UID=${RUN_UID:-4242}
RUN_GID=${RUN_GID:-4242}
SIM_ARGS=${SIM_ARGS:---subjects 2 --sessions 1 --runs 4 --resolution 8 --seed 7}
APP_ARGS=${APP_ARGS:---nprocs 2 --device cpu}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO/ci/containers.conf}

T_START=$SECONDS
declare -a TIMINGS=()
STEP="setup"

log() { echo "container-smoke: $*"; }
fail() {
    echo "container-smoke: FAILED at step '$STEP': $*" >&2
    exit 1
}
on_exit() {
    local rc=$?
    ((rc == 0)) || echo "container-smoke: exit $rc; logs and outputs kept in $SMOKE_DIR" >&2
}
trap on_exit EXIT

# step NAME COMMAND...: run a step, log its time, keep its output in $SMOKE_DIR/logs/NAME.log,
# and on failure print the log's tail and stop.
step() {
    local name=$1; shift
    STEP=$name
    local logf="$SMOKE_DIR/logs/${name// /_}.log" t0=$SECONDS rc=0
    log "--- $name"
    "$@" > "$logf" 2>&1 || rc=$?
    local dt=$((SECONDS - t0))
    if ((rc)); then
        echo "----- last lines of $logf -----" >&2
        tail -n 40 "$logf" >&2
        echo "-----" >&2
        fail "'$*' exited with $rc after ${dt}s"
    fi
    LAST_STEP_SECONDS=$dt
    TIMINGS+=("$(printf '%-24s %5ds' "$name" "$dt")")
    log "$name in ${dt}s"
}

# in_container ARGS...: run the image the way a careful user does: no network, read-only root,
# tmpfs /tmp (and nothing else writable: --read-only-tmpfs=false, as with Docker), an arbitrary
# non-root UID:GID; input read-only, output and work dirs writable. DATA_MODE=rw for the simulator.
in_container() {
    podman run --rm --network=none --read-only --read-only-tmpfs=false --tmpfs /tmp \
        -u "$RUN_UID:$RUN_GID" \
        -v "$SMOKE_DIR/bids:/data:${DATA_MODE:-ro}" -v "$SMOKE_DIR/out:/out" -v "$SMOKE_DIR/work:/work" \
        "$@"
}

# ---------------------------------------------------------------------------------------------
rm -rf "$SMOKE_DIR"
mkdir -p "$SMOKE_DIR/logs"
cd "$REPO"
[[ -f Dockerfile ]] || fail "no Dockerfile in $REPO"
[[ $(id -u) -eq 0 ]] || fail "run as root (podman builds as root here; debootstrap needs root)"

install_tools() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # With recommends: the combination checked on these machines (buildah, slirp4netns, ...).
    apt-get install -y -q podman runc debootstrap ca-certificates
}
if [[ "${SKIP_APT:-0}" != 1 ]] && ! command -v podman debootstrap runc > /dev/null 2>&1; then
    step "apt install" install_tools
fi
for tool in podman runc debootstrap; do
    command -v "$tool" > /dev/null || fail "$tool is not installed (apt-get install podman runc debootstrap)"
done
log "podman $(podman version --format '{{.Client.Version}}'), CONTAINERS_CONF=$CONTAINERS_CONF"

step "base image" "$REPO/ci/make-base-image.sh"

# The CPU torch wheel: PyPI's Linux torch is the multi-GB CUDA build, so CI builds from the
# host's local wheel folder (pip's find-links), mounted read-only into the build.
find_wheel_dir() {
    local d pip_cmd candidates=()
    [[ -n "${WHEEL_DIR:-}" ]] && candidates+=("$WHEEL_DIR")
    for pip_cmd in pip3 pip "python3 -m pip"; do
        if $pip_cmd --version > /dev/null 2>&1; then
            while read -r d; do candidates+=("$d"); done < <(
                $pip_cmd config list 2>/dev/null | sed -n "s/^[^=]*find-links='\(.*\)'$/\1/p" | tr ' ' '\n')
            break
        fi
    done
    if [[ -n "${PIP_FIND_LINKS:-}" ]]; then
        read -r -a d <<< "$PIP_FIND_LINKS"
        candidates+=("${d[@]}")
    fi
    for d in "${candidates[@]}"; do
        d=${d#file://}
        if compgen -G "$d/torch-*+cpu-cp311-*.whl" > /dev/null; then echo "$d"; return 0; fi
    done
    return 1
}
BUILD_ARGS=()
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    BUILD_ARGS+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL" --build-arg "TORCH_SPEC=${TORCH_SPEC:-torch}")
    log "torch from index $TORCH_INDEX_URL"
else
    WHEEL_DIR=$(find_wheel_dir) || fail "no CPU torch wheel (torch-*+cpu-cp311-*.whl) in WHEEL_DIR or pip's find-links; set WHEEL_DIR or TORCH_INDEX_URL"
    wheel=$(find "$WHEEL_DIR" -maxdepth 1 -name 'torch-*+cpu-cp311-*.whl' -printf '%f\n' | sort -V | tail -n 1)
    TORCH_SPEC=${TORCH_SPEC:-torch==$(echo "$wheel" | cut -d- -f2)}
    BUILD_ARGS+=(-v "$WHEEL_DIR:/wheels:ro" --build-arg TORCH_FIND_LINKS=/wheels --build-arg "TORCH_SPEC=$TORCH_SPEC")
    log "torch: $TORCH_SPEC from $WHEEL_DIR"
fi

VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' bids_facedecode/__init__.py)
[[ -n "$VERSION" ]] || fail "cannot read __version__ from bids_facedecode/__init__.py"
VCS_REF=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
SOURCE_URL=$(git -C "$REPO" remote get-url origin 2>/dev/null || true)

# Labels are also given with --label: podman 4.3 (buildah 1.28) reuses a cached LABEL layer even
# when the build arguments it expands have changed, which left a stale revision on the image.
step "image build" podman build --pull=never "${BUILD_ARGS[@]}" \
    --build-arg "VERSION=$VERSION" --build-arg "VCS_REF=$VCS_REF" --build-arg "BUILD_DATE=$BUILD_DATE" \
    --build-arg "SOURCE_URL=$SOURCE_URL" \
    --label "org.opencontainers.image.version=$VERSION" \
    --label "org.opencontainers.image.revision=$VCS_REF" \
    --label "org.opencontainers.image.created=$BUILD_DATE" \
    --label "org.opencontainers.image.source=$SOURCE_URL" \
    --label "org.opencontainers.image.url=$SOURCE_URL" \
    -t "$IMAGE" "$REPO"
BUILD_SECONDS=$LAST_STEP_SECONDS
log "image $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes"

check_image_metadata() {
    local user labels
    user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
    [[ -n "$user" && "$user" != root && "$user" != 0 ]] || { echo "image runs as root (USER '$user')"; return 1; }
    labels=$(podman image inspect --format '{{json .Labels}}' "$IMAGE")
    echo "labels: $labels"
    echo "$labels" | grep -q "\"org.opencontainers.image.version\":\"$VERSION\"" \
        || { echo "version label is not $VERSION"; return 1; }
    echo "$labels" | grep -q "\"org.opencontainers.image.revision\":\"$VCS_REF\"" \
        || { echo "revision label is not $VCS_REF"; return 1; }
    podman image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE" | grep -q '"bids_facedecode"' \
        || { echo "entrypoint is not bids_facedecode"; return 1; }
}
step "image metadata" check_image_metadata

mkdir -p "$SMOKE_DIR/out" "$SMOKE_DIR/work" "$SMOKE_DIR/bids"
chown "$RUN_UID:$RUN_GID" "$SMOKE_DIR/out" "$SMOKE_DIR/work" "$SMOKE_DIR/bids"

# Package data (embedded models, report templates) must be inside the image, and TemplateFlow
# must resolve to the baked, read-only home without touching the network.
check_package_data() {
    local expected actual
    expected=$(cd "$REPO/bids_facedecode" && find data report/templates -type f ! -name '*.pyc' \
        ! -path '*/__pycache__/*' 2>/dev/null | sort)
    actual=$(in_container --entrypoint python "$IMAGE" -c '
import pathlib, bids_facedecode
root = pathlib.Path(bids_facedecode.__file__).parent
for sub in ("data", "report/templates"):
    for p in sorted((root / sub).rglob("*")) if (root / sub).is_dir() else []:
        if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts:
            print(p.relative_to(root))
' | sort)
    echo "expected: $expected"
    echo "in image: $actual"
    [[ "$expected" == "$actual" ]] || { echo "package data in the image differ from the repository"; return 1; }
    in_container --entrypoint python "$IMAGE" -W error::ResourceWarning -c '
import os, templateflow.conf as tf
assert str(tf.TF_HOME) == os.environ["TEMPLATEFLOW_HOME"], tf.TF_HOME
assert tf.TF_CACHED, "TemplateFlow home is not baked"
assert not os.access(tf.TF_HOME, os.W_OK), "TemplateFlow home is writable"
print("templateflow home", tf.TF_HOME)'
}
step "package data" check_package_data

check_version() {
    local out
    out=$(in_container "$IMAGE" --version)
    echo "$out"
    grep -q -- "$VERSION" <<< "$out" || { echo "--version does not print $VERSION"; return 1; }
}
step "--version" check_version

check_help() {
    local out
    out=$(in_container "$IMAGE" --help)
    echo "$out"
    grep -q "participant" <<< "$out" || { echo "--help does not mention the participant level"; return 1; }
}
step "--help" check_help

# shellcheck disable=SC2086  # SIM_ARGS / APP_ARGS are word lists on purpose
DATA_MODE=rw step "simulate" in_container --entrypoint bids_facedecode-simulate \
    "$IMAGE" /data/ds $SIM_ARGS
[[ -f "$SMOKE_DIR/bids/ds/dataset_description.json" ]] || fail "the simulator wrote no dataset_description.json"
mapfile -t LABELS < <(find "$SMOKE_DIR/bids/ds" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' -printf '%f\n' \
    | sed 's/^sub-//' | sort)
((${#LABELS[@]})) || fail "the simulator wrote no sub-* folder"
log "simulated subjects: ${LABELS[*]}"

# shellcheck disable=SC2086
step "participant level" in_container "$IMAGE" /data/ds /out participant \
    --participant-label "${LABELS[@]}" -w /work $APP_ARGS
step "group level" in_container "$IMAGE" /data/ds /out group -w /work

check_outputs() {
    local out=$SMOKE_DIR/out label n missing=0
    need() {  # need DESCRIPTION GLOB...: at least one file matches
        local what=$1; shift
        local f
        for f in "$@"; do [[ -s "$f" ]] && { echo "ok  $what: ${f#"$out"/}"; return 0; }; done
        echo "MISSING $what (looked for: ${*#"$out"/})"; missing=1
    }
    shopt -s nullglob globstar
    need "derivative dataset_description.json" "$out/dataset_description.json"
    in_container --entrypoint python "$IMAGE" -c '
import json
d = json.load(open("/out/dataset_description.json"))
assert d.get("DatasetType") == "derivative", ("DatasetType", d.get("DatasetType"))
assert d.get("GeneratedBy"), "GeneratedBy is missing"
print("ok  DatasetType derivative, GeneratedBy", d["GeneratedBy"][0].get("Name"), d["GeneratedBy"][0].get("Version"))
' || missing=1
    for label in "${LABELS[@]}"; do
        need "metrics of sub-$label" "$out"/sub-"$label"/**/sub-"$label"_*metrics.json
        need "report of sub-$label" "$out"/sub-"$label".html "$out"/**/sub-"$label".html
        n=$(find "$out/sub-$label" -name '*.nii.gz' | wc -l)
        if ((n > 0)); then echo "ok  sub-$label: $n NIfTI maps"; else echo "MISSING NIfTI maps of sub-$label"; missing=1; fi
    done
    need "group table" "$out"/group*.tsv "$out"/group/**/*.tsv "$out"/**/group*.tsv
    need "group report" "$out"/group.html "$out"/**/group.html
    if find "$out" -user root | grep -q .; then echo "files owned by root in the output"; missing=1; fi
    return "$missing"
}
step "outputs" check_outputs
cat "$SMOKE_DIR/logs/outputs.log"

TOTAL=$((SECONDS - T_START))
log "=== timings ==="
for t in "${TIMINGS[@]}"; do log "$t"; done
log "$(printf '%-24s %5ds' total "$TOTAL")"
log "PASSED: image $IMAGE built in ${BUILD_SECONDS}s, whole smoke test in ${TOTAL}s"
STEP="finished"
[[ "${KEEP:-0}" == 1 ]] || rm -rf "$SMOKE_DIR"

#!/usr/bin/env bash
# Build a local stand-in for docker.io/library/python:3.11-slim when no registry is reachable.
#
# debootstrap (minbase) a Debian bookworm root file system from the mirror apt already uses,
# with Debian's Python 3.11, venv and pip; trust the host's extra CA certificates (so pip inside
# a build reaches PyPI the way the host does); import it into podman and tag it with the name
# the project's Dockerfile starts FROM. The Dockerfile itself stays unchanged.
#
# Usage: ci/make-base-image.sh [--force]
#   BASE_TAG   tag to create (default docker.io/library/python:3.11-slim)
#   SUITE      Debian suite (default bookworm; bookworm ships Python 3.11)
#   MIRROR     Debian mirror (default: the one apt on this host uses for $SUITE)
# An existing $BASE_TAG is kept unless --force is given (cache between local runs).
set -euo pipefail

BASE_TAG=${BASE_TAG:-docker.io/library/python:3.11-slim}
SUITE=${SUITE:-bookworm}
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

die() { echo "make-base-image: ERROR: $*" >&2; exit 1; }
log() { echo "make-base-image: $*"; }

command -v podman >/dev/null || die "podman is not installed (apt-get install podman runc)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
[[ $(id -u) -eq 0 ]] || die "debootstrap and chroot need root"

if [[ $FORCE -eq 0 ]] && podman image exists "$BASE_TAG"; then
    log "$BASE_TAG already present, skipping debootstrap (use --force to rebuild)"
    exit 0
fi

if [[ -z "${MIRROR:-}" ]]; then
    # The first repository apt knows for the plain suite (not -updates / -security).
    # shellcheck disable=SC2016  # $(...) is apt's format syntax, not the shell's
    MIRROR=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
        | awk -v s="$SUITE" '$2 == s { print $1; exit }')
    MIRROR=${MIRROR:-http://deb.debian.org/debian/}
fi
log "mirror: $MIRROR"

WORKDIR=$(mktemp -d /var/tmp/facedecode-base.XXXXXX)
cleanup() {
    # Never leave a half-mounted chroot behind.
    umount "$WORKDIR/rootfs/proc" 2>/dev/null || true
    rm -rf --one-file-system "$WORKDIR"
}
trap cleanup EXIT
ROOTFS=$WORKDIR/rootfs

t0=$SECONDS
debootstrap --variant=minbase \
    --include=ca-certificates,python3,python3-venv,python3-pip \
    "$SUITE" "$ROOTFS" "$MIRROR" > "$WORKDIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORKDIR/debootstrap.log" >&2; die "debootstrap $SUITE from $MIRROR failed"; }
log "debootstrap done in $((SECONDS - t0))s"

# Trust the host's locally added CA certificates (next to Debian's store), nothing else.
shopt -s nullglob
extra=(/usr/local/share/ca-certificates/*.crt)
if ((${#extra[@]})); then
    cp "${extra[@]}" "$ROOTFS/usr/local/share/ca-certificates/"
    log "trusting ${#extra[@]} extra CA certificate(s) from the host"
fi
chroot "$ROOTFS" update-ca-certificates > /dev/null

# Look like the official image: `python` and `pip` on PATH, pip allowed to install (PEP 668
# marker removed, as in python:3.11-slim whose interpreter is not Debian's).
ln -sf /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip"
rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
# Slim it: apt lists, caches, docs and locales are not needed to run Python.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*

bundle=/etc/ssl/certs/ca-certificates.crt
t1=$SECONDS
tar --numeric-owner -C "$ROOTFS" -c . | podman import \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV PIP_CERT=$bundle" \
    --change "ENV REQUESTS_CA_BUNDLE=$bundle" \
    --change "ENV SSL_CERT_FILE=$bundle" \
    --change 'CMD ["python3"]' \
    --message "stand-in for python:3.11-slim: debootstrap $SUITE minbase + Debian python3" \
    - "$BASE_TAG" > /dev/null || die "podman import of the root file system failed"
log "imported as $BASE_TAG in $((SECONDS - t1))s ($(podman image inspect --format '{{.Size}}' "$BASE_TAG") bytes)"

# bids_facedecode BIDS-App image.
#
# Default build (GPU-ready: PyPI's Linux torch wheel is the CUDA build):
#   docker build -t bids_facedecode:0.1.0 \
#       --build-arg VERSION=0.1.0 --build-arg VCS_REF=$(git rev-parse HEAD) .
# CPU-only torch (small image) from the PyTorch CPU index:
#   docker build --build-arg TORCH_SPEC=torch==2.13.0 \
#       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t bids_facedecode:cpu .
# CPU-only torch from a local wheel folder (podman/buildah, no index needed for torch):
#   podman build -v /opt/wheels:/wheels:ro --build-arg TORCH_SPEC=torch==2.13.0+cpu \
#       --build-arg TORCH_FIND_LINKS=/wheels -t bids_facedecode:cpu .
# See docs/container.md. Run:
#   docker run --rm --read-only --tmpfs /tmp -u $(id -u):$(id -g) \
#       -v /data/bids:/data:ro -v /data/out:/out bids_facedecode:0.1.0 /data /out participant

ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim
FROM ${PYTHON_IMAGE}

# Runtime environment. Everything a run writes outside the output/work folders goes under /tmp,
# so the image works with --read-only --tmpfs /tmp and any -u UID:GID.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/bidsapp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    MPLBACKEND=Agg \
    TORCH_HOME=/tmp/.cache/torch \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    TEMPLATEFLOW_AUTOUPDATE=0 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Non-root user. HOME is world-writable (sticky) so an arbitrary -u UID:GID can use it when the
# root file system is writable; with --read-only the caches above live in the /tmp tmpfs.
RUN groupadd --gid 1000 bidsapp \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /home/bidsapp \
        --shell /bin/bash bidsapp \
    && mkdir -p /home/bidsapp \
    && chmod 1777 /home/bidsapp \
    && python -m venv /opt/venv \
    && pip install --upgrade "pip>=24" "setuptools>=68" wheel

# Torch first: the largest layer, changed only by these build arguments.
#   TORCH_SPEC        requirement for torch (default: PyPI's build, CUDA-enabled on Linux x86_64)
#   TORCH_INDEX_URL   an index serving torch (e.g. https://download.pytorch.org/whl/cpu); PyPI
#                     stays the index for torch's own dependencies
#   TORCH_FIND_LINKS  a folder of wheels mounted into the build (podman build -v DIR:/wheels:ro)
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=""
ARG TORCH_FIND_LINKS=""
RUN set -eu; \
    opts=""; \
    if [ -n "$TORCH_INDEX_URL" ]; then \
        opts="$opts --index-url $TORCH_INDEX_URL --extra-index-url https://pypi.org/simple"; \
    fi; \
    if [ -n "$TORCH_FIND_LINKS" ]; then opts="$opts --find-links $TORCH_FIND_LINKS"; fi; \
    pip install $opts "$TORCH_SPEC"; \
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# The other dependencies, read from pyproject.toml, before the source (cache-friendly).
COPY pyproject.toml /src/pyproject.toml
RUN python -c "import tomllib; d = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; print('\n'.join(d['dependencies'] + d.get('optional-dependencies', {}).get('fast', [])))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && mkdir -p "$TEMPLATEFLOW_HOME" \
    && python -W ignore -c "import templateflow.conf" \
    && chmod -R a+rX,go-w "$TEMPLATEFLOW_HOME"

# The package itself, with its embedded models (package data under bids_facedecode/data/).
COPY . /src
RUN pip install --no-deps --no-build-isolation /src \
    && rm -rf /src \
    && python -c "import bids_facedecode; print('bids_facedecode', bids_facedecode.__version__)"

# Provenance (last, so that a new commit does not invalidate the layers above).
ARG VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
# The repository URL; set it when building a release (no default guess).
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="bids_facedecode" \
      org.opencontainers.image.description="BIDS-App: decode and reconstruct seen and imagined faces from fMRI (VanRullen & Reddy, 2019)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.url="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV BIDS_FACEDECODE_CONTAINER="bids_facedecode:${VERSION}"

USER bidsapp
WORKDIR /tmp
ENTRYPOINT ["bids_facedecode"]
CMD ["--help"]

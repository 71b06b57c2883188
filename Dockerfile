# blockserve container image. See docs/container.md.
#
#   docker build -t blockserve .                                      # CPU, from the package index
#   docker build --build-arg VARIANT=gpu -t blockserve:gpu .          # CUDA torch + onnxruntime-gpu
#   docker build --network none --build-arg WHEELHOUSE=1 \
#       --build-arg BASE_IMAGE=blockserve-base:bookworm -t blockserve .  # air-gapped (CI)
#   docker build --target runtime-slim -t blockserve:slim .           # ONNX serving, no torch
#
# Stages: requirements (the lists pyproject.toml asks for) -> deps (venv with the dependencies)
# -> builder (+ the project, in its own directory) -> artifacts (trains digits, exports the
# config's bundles); venv (deps without pip) -> runtime (lean, non-root). The project lives
# apart from the venv (a .pth file points at it), so a source change rebuilds a 1 MB layer of
# the runtime image, not the 950 MB venv. The slim image: deps-slim (the dependencies without
# pyproject's [tool.blockserve] export-only: torch, onnx, onnxscript) -> runtime-slim (the
# artifacts stage's bundles, served by ONNX Runtime alone; the build fails when the config
# needs more). Both runtime images share service-base (user, environment, health check).

ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# The requirement lists alone: `deps` copies them, and the builder caches a copy by its content,
# so an edit of pyproject.toml that leaves them as they are (a dev tool, the ruff settings)
# does not reinstall the venv.
FROM ${BASE_IMAGE} AS requirements
# cpu | gpu: selects the pyproject extra (onnxruntime | onnxruntime-gpu) and torch's build.
ARG VARIANT=cpu
COPY scripts/ci/requirements.py pyproject.toml /src/
RUN case "${VARIANT}" in cpu|gpu) ;; *) echo "VARIANT must be cpu or gpu, not '${VARIANT}'" >&2; exit 1;; esac \
    && python3 /src/requirements.py /src/pyproject.toml --extras "${VARIANT}" \
        > /requirements.txt \
    && python3 /src/requirements.py /src/pyproject.toml --extras "${VARIANT}" \
        --without-export-only > /slim-requirements.txt \
    && python3 /src/requirements.py /src/pyproject.toml --extras train --extras-only \
        > /train-requirements.txt

# ---------------------------------------------------------------------------------------------
# An empty venv and the means to fill it; deps and deps-slim install their lists into it.
FROM ${BASE_IMAGE} AS venv-base
ARG VARIANT=cpu
# 1: install only from the wheels in ./wheelhouse (scripts/ci/wheelhouse.sh), no index.
ARG WHEELHOUSE=0
# Extra index for torch's build when installing from the index. Empty: by VARIANT, PyTorch's
# CPU index for cpu, none for gpu (PyPI's torch is the CUDA build). See scripts/ci/pip-install.sh.
ARG TORCH_INDEX_URL=
ENV VARIANT=${VARIANT} \
    WHEELHOUSE=${WHEELHOUSE} \
    TORCH_INDEX_URL=${TORCH_INDEX_URL} \
    PATH=/opt/blockserve/app/bin:/opt/venv/bin:${PATH}

RUN python3 -m venv /opt/venv \
    && python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > /tmp/purelib \
    && echo /opt/blockserve/app > "$(cat /tmp/purelib)/blockserve-app.pth"
COPY wheelhouse/ /wheelhouse/
COPY scripts/ci/pip-install.sh /usr/local/lib/blockserve-build/
COPY --from=requirements /requirements.txt /slim-requirements.txt /train-requirements.txt /tmp/

# ---------------------------------------------------------------------------------------------
FROM venv-base AS deps
# Dependencies in a layer of their own: rebuilt only when their list (or a wheel) changes.
RUN /usr/local/lib/blockserve-build/pip-install.sh -r /tmp/requirements.txt

# ---------------------------------------------------------------------------------------------
FROM deps AS builder
COPY pyproject.toml README.md /src/
COPY models/ /src/models/
COPY service/ /src/service/
RUN /usr/local/lib/blockserve-build/pip-install.sh --no-deps --target /opt/blockserve/app /src \
    && blockserve --help > /dev/null

# ---------------------------------------------------------------------------------------------
# Training needs scikit-learn (the `train` extra), which the runtime does not. Then one real
# `blockserve serve` until every model of the config is READY exports their bundles into the
# cache, exactly as serving looks them up: containers start from warm bundles in seconds.
FROM builder AS artifacts
RUN /usr/local/lib/blockserve-build/pip-install.sh -r /tmp/train-requirements.txt
COPY scripts/ci/warm-cache.py /usr/local/lib/blockserve-build/
ENV BLOCKSERVE_HOME=/var/lib/blockserve \
    BLOCKSERVE_CONFIG=/var/lib/blockserve/config/models.yaml
RUN mkdir -p /var/lib/blockserve/config \
    && cp /src/service/configs/default.yaml "${BLOCKSERVE_CONFIG}" \
    && blockserve train-digits
# The state directory ships empty (the runtime stages copy it owned by the service user): each
# container writes its own API token and the models changed through the API there.
RUN python /usr/local/lib/blockserve-build/warm-cache.py --port 8765 \
    && mkdir -p /var/lib/blockserve/state

# ---------------------------------------------------------------------------------------------
# The runtime venv: no packaging tools, and none of torch's C++ headers and test binaries.
FROM deps AS venv
RUN python -m pip uninstall --yes --quiet pip setuptools \
    && cd "$(cat /tmp/purelib)/torch" \
    && rm -rf include test bin/*Test bin/test_* bin/protoc*

# ---------------------------------------------------------------------------------------------
# The slim runtime venv: ONNX Runtime and the server; no torch, no onnx, no packaging tools, no
# test suites, and no libonnxruntime.so (ONNX Runtime's C API library: its Python binding is a
# library of its own and never loads it).
FROM venv-base AS deps-slim
RUN /usr/local/lib/blockserve-build/pip-install.sh -r /tmp/slim-requirements.txt \
    && python -m pip uninstall --yes --quiet pip setuptools \
    && cd "$(cat /tmp/purelib)" \
    && find . -depth -type d -name tests -exec rm -rf {} + \
    && rm onnxruntime/capi/libonnxruntime.so.*

# ---------------------------------------------------------------------------------------------
# What both runtime images are, apart from their venv and project files.
FROM ${BASE_IMAGE} AS service-base
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="blockserve" \
      org.opencontainers.image.description="Dynamic-batching inference server for residual-block CNNs" \
      io.blockserve.variant="${VARIANT}"

RUN groupadd --system --gid 10001 blockserve \
    && useradd --system --uid 10001 --gid blockserve --no-create-home \
        --home-dir /var/lib/blockserve --shell /usr/sbin/nologin blockserve

ENV PATH=/opt/blockserve/app/bin:/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    BLOCKSERVE_HOME=/var/lib/blockserve \
    BLOCKSERVE_CONFIG=/var/lib/blockserve/config/models.yaml \
    BLOCKSERVE_HOST=0.0.0.0 \
    BLOCKSERVE_PORT=8000 \
    BLOCKSERVE_GRPC_PORT=8001

USER blockserve
WORKDIR /var/lib/blockserve
EXPOSE 8000 8001

# No curl in slim images: Python's urllib (non-2xx raises, so the check fails).
# /v2/health/ready is 200 only once every configured model is READY (strict readiness), and
# turns non-2xx as soon as a shutdown starts.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ['BLOCKSERVE_PORT'], timeout=4)"]

# Exec form: the server is PID 1 and gets `docker stop`'s SIGTERM itself; it turns not ready,
# answers for server.drain_delay_s, closes the listener, answers every request already sent
# (for at most server.shutdown_timeout_s, 30 s), then exits 0. Give `docker stop` a longer
# grace than that (`--time 60`; compose sets stop_grace_period). `blockserve serve` reads
# the BLOCKSERVE_* env.
STOPSIGNAL SIGTERM
CMD ["blockserve", "serve"]

# ---------------------------------------------------------------------------------------------
# Serves the bundles the artifacts stage exported, with ONNX Runtime alone. One serve until
# every model is READY checks, at build time, that the config needs nothing torch makes
# (TorchScript, an export): otherwise the build fails naming the model; build `runtime`.
FROM service-base AS runtime-slim
LABEL io.blockserve.image="slim"
COPY --from=deps-slim /opt/venv /opt/venv
COPY --from=builder /opt/blockserve/app /opt/blockserve/app
COPY --from=artifacts --chown=blockserve:blockserve /var/lib/blockserve /var/lib/blockserve
COPY scripts/ci/warm-cache.py /usr/local/lib/blockserve-build/
RUN python /usr/local/lib/blockserve-build/warm-cache.py --port 8766 --timeout 300

# ---------------------------------------------------------------------------------------------
# The full image, the default target: TorchScript, and exports at run time.
FROM service-base AS runtime
LABEL io.blockserve.image="full"
COPY --from=venv /opt/venv /opt/venv
COPY --from=builder /opt/blockserve/app /opt/blockserve/app
# Config, trained weights, bundle cache: owned by the service user, so the cache can grow.
COPY --from=artifacts --chown=blockserve:blockserve /var/lib/blockserve /var/lib/blockserve

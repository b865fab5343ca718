#!/usr/bin/env bash
# Build the EE tier's base image without any registry: a minimal Debian bookworm root
# filesystem with python3/pip/venv from the Debian mirror (mmdebstrap), imported into podman.
# Stands in for the upstream EE base image (quay.io/ansible/awx-ee and friends) in tests.
#   tests/ee/build-base-image.sh [TAG]      (default localhost/gpuinfer-ee-base:bookworm)
# Env: GPUINFER_EE_DEBIAN_MIRROR (default http://deb.debian.org/debian), CONTAINER_ENGINE (podman).
# Does nothing when the image exists (GPUINFER_EE_REBUILD_BASE=1 forces a rebuild).
set -euo pipefail

tag=${1:-${GPUINFER_EE_BASE_IMAGE:-localhost/gpuinfer-ee-base:bookworm}}
engine=${CONTAINER_ENGINE:-podman}
mirror=${GPUINFER_EE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [[ ${GPUINFER_EE_REBUILD_BASE:-0} != 1 ]] && "$engine" image exists "$tag" 2>/dev/null; then
  echo "build-base-image.sh: $tag exists"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "build-base-image.sh: mmdebstrap is missing (tests/ee/install-podman.sh installs it)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Debian's system python refuses `python3 -m ensurepip` (PEP 668), which ansible-builder's first
# step runs, so the image's Python is a venv on PATH: /opt/ee-python (EE build: --build-arg
# PYCMD=/opt/ee-python/bin/python3, tests/ee/build.sh passes it). The host's CA bundle is not baked
# in here; the EE build adds it from the host's pip configuration (tests/ee/prepare_files.py).
mmdebstrap --quiet --variant=minbase \
  --include=python3,python3-pip,python3-venv,ca-certificates \
  --customize-hook='chroot "$1" python3 -m venv /opt/ee-python' \
  --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb' \
  bookworm "$work/base.tar" "$mirror"
"$engine" import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/opt/ee-python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$work/base.tar" "$tag" >/dev/null
echo "build-base-image.sh: built $tag ($(du -h "$work/base.tar" | cut -f1) root filesystem)"

#!/usr/bin/env bash
# Build the gpuinfer.serving execution environment from the root execution-environment.yml.
#   tests/ee/build.sh                      (make ee)
# Env:
#   EE_TAG          image tag (default localhost/gpuinfer-serving-ee:latest)
#   EE_BASE_IMAGE   base image; "local" (the default here) builds and uses a Debian bookworm image
#                   without any registry (tests/ee/build-base-image.sh); give e.g.
#                   quay.io/ansible/awx-ee:24.6.1 for the upstream base
#   EE_PKGMGR       the base image's package manager (default: /usr/bin/apt-get for the local base,
#                   ansible-builder's dnf/microdnf detection otherwise)
#   GPUINFER_EE_HELM  helm binary to put in the image (default: the simulated cluster's build)
#   CONTAINER_ENGINE  podman (default) or docker
# Prints the build time; `ansible-builder create` output lands in out/ee/context/.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
venv_bin=${VENV_BIN:-$repo/.venv/bin}
engine=${CONTAINER_ENGINE:-podman}
tag=${EE_TAG:-localhost/gpuinfer-serving-ee:latest}
base=${EE_BASE_IMAGE:-local}
local_base=localhost/gpuinfer-ee-base:bookworm

command -v "$engine" >/dev/null || {
  echo "tests/ee/build.sh: no container engine '$engine' (tests/ee/install-podman.sh installs podman)" >&2
  exit 2
}

SECONDS=0
build_args=()
if [[ $base == local ]]; then
  tests/ee/build-base-image.sh "$local_base"
  base=$local_base
  build_args+=(--build-arg "PKGMGR=${EE_PKGMGR:-/usr/bin/apt-get}" --build-arg PYCMD=/opt/ee-python/bin/python3)
elif [[ -n ${EE_PKGMGR:-} ]]; then
  build_args+=(--build-arg "PKGMGR=$EE_PKGMGR")
fi

"$venv_bin/python" tests/ee/prepare_files.py --out out/ee/files

# --network=host: the RUN steps reach the package index the way the host does (proxy, mirror).
"$venv_bin/ansible-builder" build \
  --file execution-environment.yml \
  --context out/ee/context \
  --tag "$tag" \
  --container-runtime "$engine" \
  --build-arg "EE_BASE_IMAGE=$base" \
  "${build_args[@]}" \
  --extra-build-cli-args="--network=host" \
  --verbosity "${EE_BUILD_VERBOSITY:-2}"

echo "tests/ee/build.sh: built $tag on $base in ${SECONDS} s"

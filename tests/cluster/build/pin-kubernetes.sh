#!/usr/bin/env bash
# Re-pin the Kubernetes release built for the sim cluster:
#   tests/cluster/build/pin-kubernetes.sh v1.37.2
# Rewrites tests/cluster/build/kubernetes/go.mod so that it requires
# k8s.io/kubernetes at that version and replaces every staging module listed
# in that release's own go.mod with the matching v0.X.Y, then runs
# `go mod tidy`. The next `tests/cluster/sim.sh build` rebuilds the binaries.
set -euo pipefail

version=${1:?usage: pin-kubernetes.sh vX.Y.Z}
[[ $version =~ ^v1\.[0-9]+\.[0-9]+$ ]] || { echo "pin-kubernetes.sh: expected vX.Y.Z, got $version" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
moddir="$here/kubernetes"
go=${GPUINFER_SIM_GO:-$(command -v go || echo /usr/local/go/bin/go)}
staging="v0.${version#v1.}"

gomod=$(cd "$moddir" && "$go" mod download -json "k8s.io/kubernetes@$version" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[[ -f "$gomod" ]] || { echo "pin-kubernetes.sh: cannot download the go.mod of k8s.io/kubernetes@$version" >&2; exit 1; }

{
  echo "// Wrapper module: builds the Kubernetes control-plane binaries used by the"
  echo "// local simulated cluster (tests/cluster/sim.sh) from the k8s.io/kubernetes"
  echo "// module. k8s.io/kubernetes replaces its staging modules with local paths, which"
  echo "// do not apply to a dependent module, so each one is pinned here."
  echo "// Regenerate with tests/cluster/build/pin-kubernetes.sh vX.Y.Z."
  echo "module gpuinfer.local/sim/kubernetes"
  echo
  echo "go 1.26.0"
  echo
  echo "tool ("
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    printf '\tk8s.io/kubernetes/cmd/%s\n' "$t"
  done
  echo ")"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  # Every "k8s.io/x => ./staging/src/k8s.io/x" line of the release's go.mod.
  awk -v v="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }' "$gomod"
  echo ")"
} >"$moddir/go.mod"
rm -f "$moddir/go.sum"
(cd "$moddir" && "$go" mod tidy)
echo "pinned k8s.io/kubernetes $version (staging modules $staging) in $moddir/go.mod"

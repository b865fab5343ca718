#!/usr/bin/env bash
# Install and configure the container engine the EE tier needs (Debian/Ubuntu, as root):
# podman + runc + mmdebstrap, with the settings that work on CI hosts like this one
# (cgroupfs cgroup manager, runc instead of crun, default ulimits no higher than the host's).
#   sudo tests/ee/install-podman.sh
set -euo pipefail

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v mmdebstrap >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-podman.sh: podman/runc/mmdebstrap missing and not root; run it as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q podman runc mmdebstrap uidmap slirp4netns fuse-overlayfs
fi

conf_dir=/etc/containers/containers.conf.d
conf=$conf_dir/50-gpuinfer-ee.conf
if [[ ! -f $conf && $(id -u) -eq 0 ]]; then
  # Limits at or below the host's hard limits: raising them fails in unprivileged CI sandboxes.
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [[ $nofile == unlimited || $nofile -gt 1024 ]] && nofile=1024
  [[ $nproc == unlimited || $nproc -gt 4096 ]] && nproc=4096
  mkdir -p "$conf_dir"
  cat >"$conf" <<CONF
# Written by tests/ee/install-podman.sh (gpuinfer.serving EE tier).
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
  echo "install-podman.sh: wrote $conf"
fi
podman --version
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphDriverName}}'

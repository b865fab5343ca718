#!/usr/bin/env bash
# Run galaxy-importer (the code Galaxy runs on every upload) on the built collection tarball.
#   tests/ee/galaxy-check.sh            (make galaxy-check)
# galaxy-importer pins an older attrs than ansible-lint in .venv needs, so it lives in its own venv,
# .venv/galaxy-importer (created on first use; GALAXY_IMPORTER_VENV moves it).
# Turned off: `ansible-test sanity` in a container image pulled from a registry (RUN_ANSIBLE_TEST;
# `make sanity` runs ansible-test locally instead). Everything else Galaxy runs is on: ansible-doc on
# every plugin and role, ansible-lint, changelog, tags, docs and file checks.
# Fails on any error (GALAXY_CHECK_STRICT=1: on any warning too); warnings are listed either way.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
venv=${GALAXY_IMPORTER_VENV:-$repo/.venv/galaxy-importer}
out=$repo/out/galaxy
py=${PYTHON:-python3}

if ! "$venv/bin/python" -c 'import galaxy_importer' 2>/dev/null; then
  echo "galaxy-check: creating $venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'galaxy-importer>=0.4.30,<0.5'
fi

rm -rf "$out"
mkdir -p "$out/tmp"
# The collection's dependency (galaxy.yml: kubernetes.core), so ansible-doc and ansible-lint resolve
# kubernetes.core.* as they do on Galaxy: the kubernetes.core of .venv's `ansible` package, installed
# where ansible-core scans sys.path (COLLECTIONS_SCAN_SYS_PATH), without Galaxy access.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [[ ! -f $site/ansible_collections/kubernetes/core/MANIFEST.json ]]; then
  "$repo/.venv/bin/python" -c 'import sys; sys.path.insert(0, "tests/ee"); from pathlib import Path; import prepare_files as p
p.pack_installed_collection(p.installed_collection("kubernetes", "core"), Path(sys.argv[1]))' "$out/kubernetes-core.tar.gz"
  "$venv/bin/ansible-galaxy" collection install --offline -p "$site" "$out/kubernetes-core.tar.gz" >"$out/kubernetes-core-install.log" 2>&1 \
    || { cat "$out/kubernetes-core-install.log" >&2; exit 1; }
fi
"$venv/bin/ansible-galaxy" collection build --force --output-path "$out" "${COLLECTION_DIR:-collections/ansible_collections/gpuinfer/serving}" >/dev/null
tarball=$(ls "$out"/gpuinfer-serving-*.tar.gz)

cat >"$out/galaxy-importer.cfg" <<CFG
[galaxy-importer]
LOG_LEVEL_MAIN = INFO
RUN_ANSIBLE_TEST = False
ANSIBLE_TEST_LOCAL_IMAGE = False
LOCAL_IMAGE_DOCKER = False
RUN_ANSIBLE_DOC = True
RUN_ANSIBLE_LINT = True
OFFLINE_ANSIBLE_LINT = True
CHECK_CHANGELOG = True
CHECK_REQUIRED_TAGS = True
RUN_FLAKE8 = False
TMP_ROOT_DIR = $out/tmp
ANSIBLE_LOCAL_TMP = $out/tmp/ansible
CFG

SECONDS=0
set +e
# The importer's own venv first on PATH: it runs ansible-doc / ansible-lint as subprocesses.
# (run from $out: the importer writes importer_result.json into its working directory)
(cd "$out" && PATH="$venv/bin:$PATH" GALAXY_IMPORTER_CONFIG="$out/galaxy-importer.cfg" \
  "$venv/bin/python" -m galaxy_importer.main "$tarball" >"$out/importer.log" 2>&1)
rc=$?
set -e
grep -E '(^|\s)(ERROR|WARNING)' "$out/importer.log" | cut -c1-600 | sed 's/^/  /' || true
errors=$(grep -cE '(^|\s)ERROR' "$out/importer.log" || true)
warnings=$(grep -cE '(^|\s)WARNING' "$out/importer.log" || true)
echo "galaxy-check: $(basename "$tarball"): importer rc=$rc, $errors error(s), $warnings warning(s) in ${SECONDS} s (log $out/importer.log)"
if ((rc != 0 || errors > 0)); then
  exit 1
fi
if ((warnings > 0)) && [[ ${GALAXY_CHECK_STRICT:-0} == 1 ]]; then
  echo "galaxy-check: warnings fail the check (GALAXY_CHECK_STRICT=1)" >&2
  exit 1
fi

#!/usr/bin/env bash
# ansible-test sanity for the collection, in its own virtualenvs (--venv), no Docker needed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=$(cd "${VENV:-$repo/.venv}" && pwd)
# The pip version ansible-test bootstraps into each of its virtualenvs.
pip_version=$(grep -oP "pip='\K[0-9.]+" "$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -1)
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  cp "$repo/tests/sanity/get_pip_offline.py" "$cache"
fi
cd "$repo/collections/ansible_collections/gpuinfer/serving"
exec "$venv/bin/ansible-test" sanity --venv --python "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no "$@"

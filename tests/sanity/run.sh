#!/usr/bin/env bash
# Runs `ansible-test sanity` on a copy of the collection laid out as ansible_collections/voltx/vastai.
# ansible-test wants to download its pip bootstrap from a host we cannot reach; the stand-in in this
# folder bootstraps pip with ensurepip and then installs from the package index instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VENV:-$root/.venv}
pip_version=$("$venv/bin/python" - <<'PY'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
# ansible-test keeps its state under ~/.ansible/test: give it a home inside this checkout, so that two checkouts
# (or two runs of `make test`) never share or clobber it.
export HOME=$root/.build/sanity-home
cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$cache")"
[ -s "$cache" ] || cp "$root/tests/sanity/get_pip_offline.py" "$cache"

work=$root/.build/sanity/ansible_collections/voltx/vastai
rm -rf "$root/.build/sanity"
mkdir -p "$work"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work")
cd "$work"
git init -q && git add -A   # ansible-test lists a collection's files through git when it is a repository
exec "$venv/bin/ansible-test" sanity --requirements --python 3.11 --color no "$@"

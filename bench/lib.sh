# Shared by the benchmarks: install what a benchmark needs, build kapi.
# Benchmarks are never part of `make test`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAPI=${KAPI:-$ROOT/build/kapi}

need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

build_kapi() {
  make -C "$ROOT" build >/dev/null 2>&1 || make -C "$ROOT" build
}

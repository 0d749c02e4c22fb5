# shellcheck shell=bash
# ensure_packages PKG...: install the Debian packages among PKG that are not installed (apt-get, as root),
# quietly and once. Sourced by the scripts that need system packages (.ci/run, scripts/test.sh,
# scripts/fleet/up.sh), so that `npm run demo` and `npm test` each install what they need, in either order.
# Not root: names what is missing and how to install it, and fails.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" != 0 ]]; then
    printf 'missing Debian packages: %s (install them as root: apt-get install -y %s)\n' "${missing[*]}" "${missing[*]}" >&2
    return 1
  fi
  printf 'installing Debian packages: %s\n' "${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

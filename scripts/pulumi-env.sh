# shellcheck shell=bash
# Source this file (bash) to run the local Pulumi CLI with no account and no
# internet:
#
#   . scripts/pulumi-env.sh && pulumi version
#
# It puts the bin dir of scripts/pulumi-install.sh on PATH (running the
# install script only when that dir is incomplete; a cold build takes
# minutes) and sets, unless already set:
#   PULUMI_BACKEND_URL     file://${PULUMI_LXC_BTRFS_STATE:-/var/tmp/pulumi-lxc-btrfs/state}
#   PULUMI_CONFIG_PASSPHRASE  local-test-passphrase (a test value, not a secret;
#                          left alone when PULUMI_CONFIG_PASSPHRASE_FILE is set)
#   PULUMI_HOME            /var/tmp/pulumi-lxc-btrfs/home (keeps ~/.pulumi untouched)
# and always:
#   PULUMI_SKIP_UPDATE_CHECK=true
#   PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
#   PULUMI_LXC_BTRFS_BIN   the bin dir
#
# test/support/pulumi.ts computes the same environment for the e2e tests.

_plb_env() {
  local repo version bin
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
  version="$(node -p 'require(process.argv[1]).version' \
    "$repo/node_modules/@pulumi/pulumi/package.json" 2>/dev/null || true)"
  bin="${PULUMI_LXC_BTRFS_CACHE:-/var/cache/pulumi-lxc-btrfs}/pulumi-$version/bin"
  if [[ -z "$version" || ! -x "$bin/pulumi" || ! -x "$bin/pulumi-language-nodejs" ||
    ! -x "$bin/pulumi-resource-pulumi-nodejs" ]]; then
    bin="$(bash "$repo/scripts/pulumi-install.sh" | tail -n 1)" || {
      echo "pulumi-env.sh: scripts/pulumi-install.sh failed" >&2
      return 1
    }
  fi
  case ":$PATH:" in
  *":$bin:"*) ;;
  *) PATH="$bin:$PATH" ;;
  esac
  export PATH
  export PULUMI_LXC_BTRFS_BIN="$bin"

  local state="${PULUMI_LXC_BTRFS_STATE:-/var/tmp/pulumi-lxc-btrfs/state}"
  if [[ -z "${PULUMI_BACKEND_URL:-}" ]]; then
    mkdir -p "$state" && export PULUMI_BACKEND_URL="file://$state"
  fi
  if [[ -z "${PULUMI_CONFIG_PASSPHRASE+x}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
    export PULUMI_CONFIG_PASSPHRASE=local-test-passphrase
  fi
  if [[ -z "${PULUMI_HOME:-}" ]]; then
    mkdir -p /var/tmp/pulumi-lxc-btrfs/home && export PULUMI_HOME=/var/tmp/pulumi-lxc-btrfs/home
  fi
  export PULUMI_SKIP_UPDATE_CHECK=true
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
}
_plb_env
_plb_status=$?
unset -f _plb_env
# The last command's status is this file's, sourced or run (a `return` here would make shellcheck take
# the rest of a sourcing script for unreachable).
(exit "$_plb_status")

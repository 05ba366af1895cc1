#!/usr/bin/env bash
# build.sh compiles the pinned dev servers (Temporal CLI, the authorizing Temporal server,
# Vault, Hydra) and checkers (staticcheck, workflowcheck) once into a cache folder keyed by
# tool, version and go.mod/go.sum (plus our own Go sources for a package of the tools module
# itself), and links them into bin/ of the clone. A second run, or a fresh clone on the same
# machine, only relinks.
#
# Usage: tools/build.sh [temporal|temporal-server|vault|hydra|staticcheck|workflowcheck ...]   (default: all)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OIDCFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oidcflow}/tools
mkdir -p "$root/bin" "$cache"

# name:package:build tags:expected minutes on 2 cores[:module folder under tools/, default name]
specs=(
  "temporal:github.com/temporalio/cli/cmd/temporal::4"
  "temporal-server:github.com/oidcflow/oidcflow/tools/temporal/server::4:temporal"
  "vault:github.com/hashicorp/vault::10"
  "hydra:github.com/ory/hydra/v2:sqlite,sqlite_omit_load_extension:2"
  "staticcheck:honnef.co/go/tools/cmd/staticcheck::1"
  "workflowcheck:go.temporal.io/sdk/contrib/tools/workflowcheck::1"
)

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(temporal temporal-server vault hydra staticcheck workflowcheck)

build() {
  local name=$1 pkg=$2 tags=$3 minutes=$4 dir="$root/tools/${5:-$1}"
  local version key out modpath
  modpath=$(awk '$1=="module" {print $2; exit}' "$dir/go.mod")
  if [ "$pkg" = "$modpath" ] || [ "${pkg#"$modpath"/}" != "$pkg" ]; then
    # our own code in the tools module: the key also covers its Go sources
    version=local
    key=$( { cat "$dir/go.mod" "$dir/go.sum"
             (cd "$dir" && find . -name '*.go' ! -name '*_test.go' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); } |
           sha256sum | cut -c1-12)
  else
    # the version of the required module that is the longest prefix of the package path
    version=$(awk -v p="$pkg" '($1==p || index(p, $1"/")==1) && length($1)>n {n=length($1); v=$2} END {print v}' "$dir/go.mod")
    key=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)
  fi
  out="$cache/$name-$version-$key/$name"
  if [ -x "$out" ]; then
    echo "tools: $name $version already built"
  else
    echo "tools: building $name $version (about $minutes min on 2 cores; once per machine)"
    mkdir -p "$(dirname "$out")"
    local log="$cache/$name-$version-$key/build.log" start=$SECONDS
    ( cd "$dir" && CGO_ENABLED=1 go build -v -trimpath ${tags:+-tags "$tags"} -o "$out.tmp" "$pkg" ) >"$log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      sleep 15
      kill -0 "$pid" 2>/dev/null || break
      printf 'tools:   %s: %3ds, %d packages compiled\n' "$name" $((SECONDS - start)) "$(wc -l <"$log")"
    done
    if ! wait "$pid"; then
      echo "tools: building $name failed; last lines of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    mv "$out.tmp" "$out"
    echo "tools: built $name $version in $((SECONDS - start))s"
  fi
  ln -sfn "$out" "$root/bin/$name"
}

for spec in "${specs[@]}"; do
  IFS=: read -r name pkg tags minutes folder <<<"$spec"
  for w in "${want[@]}"; do
    [ "$w" = "$name" ] && build "$name" "$pkg" "$tags" "$minutes" "$folder"
  done
done
exit 0

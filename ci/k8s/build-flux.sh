#!/usr/bin/env bash
# Build Flux's controllers for the real Kubernetes test tier from the Go module proxy, at the
# versions that the pinned Flux release ships (ci/k8s/flux/versions), into a cache outside the
# checkout keyed by that Flux version:
#
#   ${XDG_CACHE_HOME:-~/.cache}/alga-appliance-tests/flux/<flux version>/
#       source-controller  kustomize-controller  helm-controller   the binaries
#       crds/*.yaml                                                 each controller's CRDs
#       crds/SOURCES                                                where each CRD file came from
#       <controller>.unavailable                                    why a controller is not built
#
# Each controller keeps its API types in an `api` submodule that its go.mod replaces with ./api,
# so `go install pkg@version` cannot build it: ci/k8s/flux/<controller>/go.mod is a wrapper
# module that requires the controller and pins the api submodule to its published tag. The CRDs
# are the module's own config/crd/bases/*.yaml. When the proxy does not serve a controller's
# module at the shipped version, neither its binary nor its CRDs can be had here: the proxy's
# answer is written to <controller>.unavailable, and the tests that need it skip quoting it.
#
# A cache built from the same ci/k8s/flux files is left alone (a warm run takes well under a
# second); delete the directory to build again.
#
#   ci/k8s/build-flux.sh            build what the cache lacks; exit 0 even if a controller is
#                                   unavailable from the proxy (it says which, on stderr)
#   ci/k8s/build-flux.sh --strict   the same, but exit 1 if any controller is unavailable
#   ci/k8s/build-flux.sh --dir      print the cache directory and exit
#
# The Go module cache and build cache are Go's own (GOMODCACHE, GOCACHE): set them to fresh
# directories to measure a cold build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
flux_dir="$here/flux"
repo="$(cd "$here/../.." && pwd)"

version_of() { awk -v n="$1" '$1 == n { print $2; exit }' "$flux_dir/versions"; }
flux_version="$(version_of flux)"
if [ -z "$flux_version" ]; then
  echo "ci/k8s/build-flux.sh: no 'flux' line in ci/k8s/flux/versions" >&2
  exit 1
fi
controllers=(source-controller kustomize-controller helm-controller)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/alga-appliance-tests/flux/${flux_version}"

strict=0
case "${1:-}" in
  --dir) echo "$cache"; exit 0 ;;
  --strict) strict=1 ;;
  "") ;;
  *) echo "usage: ci/k8s/build-flux.sh [--dir|--strict]" >&2; exit 2 ;;
esac

# What the cache is built from: the versions and the wrapper modules' pins.
stamp="$(cd "$flux_dir" && find . -type f \( -name versions -o -name go.mod -o -name go.sum \) \
  | LC_ALL=C sort | xargs sha256sum)"

summary() { # summary DIR: one line per controller; returns 1 if any is unavailable
  local c missing=0
  for c in "${controllers[@]}"; do
    if [ -x "$1/$c" ]; then
      echo "    $c $(version_of "$c"): $1/$c"
    else
      missing=1
      echo "    $c $(version_of "$c"): NOT BUILT: $(head -n 1 "$1/$c.unavailable" 2>/dev/null || echo '?')" >&2
    fi
  done
  echo "    CRDs: $(ls "$1/crds" | grep -c '\.yaml$') in $1/crds (origins in crds/SOURCES)"
  return "$missing"
}
finish() { # finish DIR
  if summary "$1"; then
    exit 0
  fi
  echo "ci/k8s/build-flux.sh: WARNING: some Flux controllers are not available from the Go module proxy (above); the tests that need them skip" >&2
  exit "$strict"
}

if [ -f "$cache/.stamp" ] && [ "$(cat "$cache/.stamp")" = "$stamp" ]; then
  echo "==> Flux $flux_version controllers: built already ($cache)"
  finish "$cache"
fi

if ! command -v go >/dev/null; then
  echo "ci/k8s/build-flux.sh: no Go toolchain on PATH: the Flux controllers cannot be built" >&2
  exit 1
fi

pinned="$(sed -n 's/^FLUX_VERSION *= *"\(v[^"]*\)".*/\1/p' "$repo/host/core/pins.py")"
if [ "$pinned" != "$flux_version" ]; then
  echo "ci/k8s/build-flux.sh: host/core/pins.py pins Flux $pinned but ci/k8s/flux/versions says $flux_version: update ci/k8s/flux (versions and wrapper modules) to the controllers that Flux $pinned ships" >&2
  exit 1
fi

export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export GOTOOLCHAIN=local

download() { # download MODULE@VERSION: prints the module's directory, or fails printing the proxy's error
  local json
  json="$(cd / && go mod download -json "$1" 2>/dev/null || true)"
  local dir err
  dir="$(printf '%s\n' "$json" | sed -n 's/^\t"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  if [ -n "$dir" ] && [ -d "$dir" ]; then
    printf '%s\n' "$dir"
    return 0
  fi
  err="$(printf '%s\n' "$json" | sed -n 's/^\t"Error": "\(.*\)",\{0,1\}$/\1/p')"
  printf '%b\n' "${err:-go mod download $1 gave no directory}"
  return 1
}

echo "==> building Flux $flux_version's controllers into $cache"
mkdir -p "$(dirname "$cache")"
work="$(mktemp -d "$cache.partial.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/crds"

# The versions file must name what the Flux release ships.
flux2="$(download "github.com/fluxcd/flux2/v2@$flux_version")" || {
  echo "ci/k8s/build-flux.sh: cannot read the Flux release's manifests: $flux2" >&2
  exit 1
}
for c in "${controllers[@]}"; do
  shipped="$(grep -o "fluxcd/$c/releases/download/v[^/]*" "$flux2/manifests/bases/$c/kustomization.yaml" \
    | head -n 1 | sed 's|.*/||')"
  if [ "$shipped" != "$(version_of "$c")" ]; then
    echo "ci/k8s/build-flux.sh: Flux $flux_version ships $c $shipped, ci/k8s/flux/versions says $(version_of "$c")" >&2
    exit 1
  fi
done

for c in "${controllers[@]}"; do
  v="$(version_of "$c")"
  if dir="$(download "github.com/fluxcd/$c@$v")"; then
    if [ -f "$flux_dir/$c/go.mod" ]; then
      want="$(awk -v m="github.com/fluxcd/$c" '($1 == m || ($1 == "require" && $2 == m)) && $0 !~ /=>/ {
        print ($1 == "require" ? $3 : $2); exit }' "$flux_dir/$c/go.mod")"
      if [ "$want" != "$v" ]; then
        echo "ci/k8s/build-flux.sh: ci/k8s/flux/$c/go.mod requires $c $want, ci/k8s/flux/versions says $v" >&2
        exit 1
      fi
      echo "==> $c $v"
      # The controllers are static Go programs (CGO_ENABLED=0), as Flux releases them.
      (cd "$flux_dir/$c" && CGO_ENABLED=0 go build -ldflags=-s -o "$work/$c" "github.com/fluxcd/$c")
    else
      echo "github.com/fluxcd/$c@$v is served, but ci/k8s/flux/$c/go.mod (a wrapper module like kustomize-controller's) is missing" \
        > "$work/$c.unavailable"
    fi
    for f in "$dir"/config/crd/bases/*.yaml; do
      install -m 644 "$f" "$work/crds/"
      echo "$(basename "$f")  github.com/fluxcd/$c@$v config/crd/bases (the module's own file)" >> "$work/crds/SOURCES"
    done
  else
    echo "==> $c $v: not served by the Go module proxy: $(head -n 1 <<<"$dir")" >&2
    printf 'the Go module proxy does not serve it: %s\n' "$dir" > "$work/$c.unavailable"
  fi
done

printf '%s\n' "$stamp" > "$work/.stamp"
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
chmod 755 "$cache"
du -sh "$cache"
finish "$cache"

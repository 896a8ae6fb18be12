#!/usr/bin/env bash
# Build the real Kubernetes components the tests run (tests/support/apiserver.py) from the Go
# module proxy, at the versions pinned in this directory's go.mod files, into a cache outside
# the checkout keyed by those versions:
#
#   ${XDG_CACHE_HOME:-~/.cache}/alga-appliance-tests/k8s/<k8s version>-<kine version>/
#       kube-apiserver  kube-controller-manager  kube-scheduler  kubectl  kine
#
# A cache that already holds all of them is left alone (a warm run takes well under a second).
#
#   ci/k8s/build.sh          build what is missing
#   ci/k8s/build.sh --dir    print the cache directory and exit (the test fixture asks this)
#
# The Go module cache and build cache are Go's own (GOMODCACHE, GOCACHE): set them to fresh
# directories to measure a cold build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

pin() { # pin GO_MOD MODULE: the version GO_MOD requires MODULE at
  awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) && $0 !~ /=>/ {
    print ($1 == "require" ? $3 : $2); exit }' "$1"
}
k8s_version="$(pin "$here/go.mod" k8s.io/kubernetes)"
kine_version="$(pin "$here/kine/go.mod" github.com/k3s-io/kine)"
if [ -z "$k8s_version" ] || [ -z "$kine_version" ]; then
  echo "ci/k8s/build.sh: no k8s.io/kubernetes or github.com/k3s-io/kine pin in the go.mod files" >&2
  exit 1
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/alga-appliance-tests/k8s/${k8s_version}-${kine_version}"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl kine)

if [ "${1:-}" = "--dir" ]; then
  echo "$cache"
  exit 0
fi

missing=0
for binary in "${binaries[@]}"; do
  [ -x "$cache/$binary" ] || missing=1
done
if [ "$missing" -eq 0 ]; then
  echo "==> Kubernetes $k8s_version and kine $kine_version: built already ($cache)"
  exit 0
fi

if ! command -v go >/dev/null; then
  echo "ci/k8s/build.sh: no Go toolchain on PATH: the real API server tier cannot be built" >&2
  exit 1
fi

echo "==> building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl" \
  "$k8s_version, kine $kine_version into $cache"
mkdir -p "$(dirname "$cache")"
work="$(mktemp -d "$cache.partial.XXXXXX")"
trap 'rm -rf "$work"' EXIT

export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export GOTOOLCHAIN=local

# The version the binaries report (kubectl version, /version), as Kubernetes' own build
# stamps it; without it they say v0.0.0-master and kubectl warns of a version skew.
minor="${k8s_version#v1.}"
minor="${minor%%.*}"
stamp=""
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $package.gitVersion=$k8s_version -X $package.gitMajor=1"
  stamp+=" -X $package.gitMinor=$minor -X $package.gitTreeState=clean"
done

# The control plane and kubectl are static Go programs, as Kubernetes releases them.
(cd "$here" && CGO_ENABLED=0 go build -ldflags "-s -w$stamp" -o "$work/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
# kine's SQLite driver is mattn/go-sqlite3, which is cgo (without cgo kine refuses sqlite).
(cd "$here/kine" && CGO_ENABLED=1 go build \
  -ldflags "-s -w -X github.com/k3s-io/kine/pkg/version.Version=$kine_version" \
  -o "$work/kine" github.com/k3s-io/kine)

rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
chmod 755 "$cache"
ls -l "$cache"

#!/usr/bin/env bash
# Build the vcsim test vCenter (tests/vcsim/main.go) from Debian packages only:
# GOPATH mode, no network. Usage: bash tests/vcsim/build.sh [OUT]
# OUT defaults to target/vcsim/vcsim under the repo root. Skips the build when OUT
# is newer than main.go. Needs: apt-get install golang-go golang-github-vmware-govmomi-dev
set -euo pipefail

src="${BASH_SOURCE[0]%/*}"
[ "$src" != "${BASH_SOURCE[0]}" ] || src=.
src="$(cd "$src" && pwd)"
root="$(cd "$src/../.." && pwd)"
out="${1:-$root/target/vcsim/vcsim}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
gopath=/usr/share/gocode
pkgs="golang-go golang-github-vmware-govmomi-dev"

if ! command -v go >/dev/null 2>&1; then
    echo "vcsim build: 'go' not found; install the Debian packages: apt-get install $pkgs" >&2
    exit 1
fi
if [ ! -d "$gopath/src/github.com/vmware/govmomi/simulator" ]; then
    echo "vcsim build: govmomi sources missing in $gopath/src/github.com/vmware/govmomi;" \
        "install the Debian packages: apt-get install $pkgs" >&2
    exit 1
fi

if [ -x "$out" ] && [ "$out" -nt "$src/main.go" ]; then
    exit 0
fi

mkdir -p "$(dirname "$out")" "$root/target/vcsim/gocache"
cd "$src"
GOPATH="$gopath" GO111MODULE=off GOFLAGS= GOPROXY=off \
    GOCACHE="$root/target/vcsim/gocache" \
    go build -o "$out.tmp" .
mv -f "$out.tmp" "$out"

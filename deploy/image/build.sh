#!/bin/sh
# Builds the wirelens agent image from this repository, offline (no base image is pulled):
#
#   deploy/image/build.sh [--binary PATH] [--engine podman|docker]
#
# 1. the release binary: `cargo build --release --locked -p wirelens`, unless --binary names
#    one already built (the integration test passes target/release/wirelens);
# 2. a root filesystem in a temporary directory: the binary with its debug sections removed
#    (`strip --strip-debug`: symbols stay, for panic backtraces), exactly the shared libraries
#    `ldd` lists for it (glibc's), and the host's CA bundle (roots for an https:// collector).
#    bpftrace (for `--script`) is not in it: Debian's bpftrace 0.17 and its libraries (about
#    200 MB) copied the same way crash on tracepoint probes, and the agent's own tracing does
#    not need it;
# 3. `podman build` (or `docker build`: --engine or $ENGINE) of deploy/image/Containerfile
#    (FROM scratch) on that directory, tagged localhost/wirelens:<version>, the version being
#    the binary's own (`wirelens --version`), which is the Helm chart's appVersion. An image
#    the tag named before is removed.
#
# The last line printed is the image's reference. Needs the build's toolchain (scripts/setup.sh)
# unless --binary is given, binutils (strip), and podman or docker.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=""
engine=${ENGINE:-podman}
repository=localhost/wirelens

while [ $# -gt 0 ]; do
    case "$1" in
    --binary) binary=$2; shift 2 ;;
    --binary=*) binary=${1#--binary=}; shift ;;
    --engine) engine=$2; shift 2 ;;
    --engine=*) engine=${1#--engine=}; shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    (cd "$root" && cargo build --release --locked -p wirelens)
    binary=$root/target/release/wirelens
fi
[ -x "$binary" ] || { echo "build.sh: $binary is not an executable" >&2; exit 1; }
version=$("$binary" --version | awk '{print $2}')
[ -n "$version" ] || { echo "build.sh: no version from $binary --version" >&2; exit 1; }
reference=$repository:$version

stage=$(mktemp -d "${TMPDIR:-/tmp}/wirelens-image.XXXXXX")
trap 'rm -rf "$stage"' EXIT
rootfs=$stage/rootfs

# copy FILE [TO]: the host's FILE (symlinks followed) at the same path (or TO) in the tree.
copy() {
    mkdir -p "$rootfs$(dirname "${2:-$1}")"
    cp -L "$1" "$rootfs${2:-$1}"
}

# libraries EXE: every shared library `ldd` lists for EXE, at the path it lists.
libraries() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
        while read -r lib; do copy "$lib"; done
}

mkdir -p "$rootfs/usr/bin"
strip --strip-debug -o "$rootfs/usr/bin/wirelens" "$binary"
libraries "$binary"
[ ! -f /etc/ssl/certs/ca-certificates.crt ] || copy /etc/ssl/certs/ca-certificates.crt
# Mount points of the chart's host paths, so a read-only root needs none created.
mkdir -p "$rootfs/sys/kernel/tracing" "$rootfs/proc" "$rootfs/run/wirelens" "$rootfs/tmp"

old=$("$engine" image inspect --format '{{.Id}}' "$reference" 2>/dev/null || true)
"$engine" build --quiet --file "$here/Containerfile" --build-arg "VERSION=$version" \
    --tag "$reference" "$stage" >/dev/null
new=$("$engine" image inspect --format '{{.Id}}' "$reference")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
    "$engine" rmi "$old" >/dev/null 2>&1 || true
fi
size=$("$engine" image inspect --format '{{.Size}}' "$reference")
echo "built $reference ($(awk "BEGIN {printf \"%.1f\", $size / 1000000}") MB)" >&2
echo "$reference"

#!/usr/bin/env bash
# `make image`: build the glusterfs-provisioner image with podman, without a
# container registry or a Python package index in the build, and save it as an
# OCI archive.
#
#   IMAGE     name:tag of the image (default glusterfs-provisioner:<version>)
#   BASE      base image; unset: a Debian 12 minbase from debootstrap, imported
#             into podman and cached (see base_image). Where a registry is
#             reachable, BASE=python:3.11-slim-bookworm builds on the official image.
#   ARCHIVE   where the OCI archive goes (default build/image/<name>-<tag>.oci.tar)
#   PYTHON    CPython 3.11 with pip, builds the wheels (default python3)
#   MAX_IMAGE_MB  size budget, uncompressed (default 250); a bigger image fails
#   DEBIAN_MIRROR debootstrap's mirror (default: debootstrap's own default)
#
# Needs root (debootstrap, podman with chroot isolation: containers cannot be
# *run* on machines whose sandbox refuses the rlimits runc/crun set, but builds
# with chroot isolation work), podman and debootstrap (Debian packages), and the
# network to Debian's packages (apt in the build) and to PyPI (pip wheel).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
IMAGE=${IMAGE:-glusterfs-provisioner:$VERSION}
MAX_IMAGE_MB=${MAX_IMAGE_MB:-250}
SUITE=bookworm
# A base built this ISO week is reused; a new week debootstraps again, so the
# base picks up Debian's updates at most a week late.
BASE_WEEK=$(date -u +%G-w%V)
BASE_REPO=localhost/glusterfs-provisioner-base
# Changing how the base is made (this list, the pruning) must change its key.
BASE_RECIPE="debootstrap --variant=minbase $SUITE ${DEBIAN_MIRROR:-default}; prune v1"

work=build/image
context=$work/context
name=${IMAGE##*/}
ARCHIVE=${ARCHIVE:-$work/${name//:/-}.oci.tar}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'make image: %s\n' "$*" >&2; exit 1; }

check_tools() {
    command -v podman >/dev/null || die "podman is not installed (apt-get install podman)"
    if [[ -z ${BASE:-} ]]; then
        command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
        [[ $(id -u) == 0 ]] || die "debootstrap needs root"
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
        || die "$PYTHON is not CPython 3.11; the image's Python is 3.11 and the wheels must match it"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (it builds the wheels)"
}

build_wheels() {
    say "wheels of the package and its runtime dependencies (pip wheel)"
    rm -rf "$context"
    mkdir -p "$context/wheels"
    # pip's own wheel only runs the install inside the build; it is not installed.
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check \
        --wheel-dir "$context/wheels" . pip
    ls "$context/wheels" >&2
}

# Debian's sources for the base: the suite and its updates from the mirror
# debootstrap used, and the security archive beside it.
write_sources() {
    local root=$1 mirror
    mirror=$(awk '$1 == "deb" {print $2; exit}' "$root/etc/apt/sources.list")
    [[ -n $mirror ]] || die "debootstrap wrote no mirror into $root/etc/apt/sources.list"
    rm -f "$root/etc/apt/sources.list"
    cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_SECURITY_MIRROR:-$mirror-security}
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

# Everything an image never reads: downloaded packages, package lists, docs.
prune_base() {
    local root=$1
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
        "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
        "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*.log
}

# The debootstrap base, cached in podman's storage under a tag keyed by the ISO
# week and the recipe: a second `make image` the same week skips debootstrap.
# Older bases of this repository are removed so the cache holds one.
base_image() {
    local key tag root
    key=$(printf '%s' "$BASE_RECIPE" | sha256sum | cut -c1-12)
    tag="$BASE_REPO:$SUITE-$BASE_WEEK-$key"
    if podman image exists "$tag"; then
        say "base $tag (cached)"
    else
        say "base: debootstrap --variant=minbase $SUITE (about a minute)"
        root=$(mktemp -d "${TMPDIR:-/tmp}/glusterfs-provisioner-base.XXXXXX")
        # shellcheck disable=SC2064 # the path is fixed now; base_image runs in $( )
        trap "rm -rf '$root'" EXIT
        # shellcheck disable=SC2086 # the mirror is one optional word
        debootstrap --variant=minbase "$SUITE" "$root" ${DEBIAN_MIRROR:-} >"$work/debootstrap.log" 2>&1 \
            || die "debootstrap failed; see $work/debootstrap.log"
        write_sources "$root"
        prune_base "$root"
        tar -C "$root" --numeric-owner -c . | podman import --quiet - "$tag" >/dev/null
        say "base $tag imported"
    fi
    podman images --format '{{.Repository}}:{{.Tag}}' "$BASE_REPO" \
        | grep -vxF "$tag" | xargs -r podman rmi --force >/dev/null || true
    printf '%s\n' "$tag"
}

build() {
    local base=$1 smoke_uid
    # An arbitrary UID from OpenShift's range (namespaces get blocks of 10,000
    # from 1000000000 upwards), different in every build.
    smoke_uid=$((1000000000 + (RANDOM * 32768 + RANDOM) % 1000000000))
    say "podman build $IMAGE from $base (smoke stage as uid $smoke_uid:0)"
    podman build --isolation chroot --layers \
        -f deploy/Dockerfile \
        --build-arg "BASE=$base" --build-arg "SMOKE_UID=$smoke_uid" \
        -t "$IMAGE" "$context"
}

# The digest of the archive's manifest (names this build; a push that compresses
# the layers makes a new one) and the record the smoke stage left in the
# image's last layer, read from the archive.
archive_facts() {
    "$PYTHON" - "$1" <<'EOF'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    def blob(digest):
        return archive.extractfile("blobs/" + digest.replace(":", "/"))
    (entry,) = json.load(archive.extractfile("index.json"))["manifests"]
    layer = json.load(blob(entry["digest"]))["layers"][-1]["digest"]
    with tarfile.open(fileobj=blob(layer), mode="r:*") as files:
        smoke = files.extractfile("usr/share/glusterfs-provisioner/smoke-passed").read()
print(entry["digest"])
print(smoke.decode().strip())
EOF
}

report() {
    local size_bytes size_mb archive_bytes facts
    size_bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
    size_mb=$(( (size_bytes + 999999) / 1000000 ))
    rm -f "$ARCHIVE"
    podman save --quiet --format oci-archive -o "$ARCHIVE" "$IMAGE"
    archive_bytes=$(stat -c %s "$ARCHIVE")
    mapfile -t facts < <(archive_facts "$ARCHIVE")
    cat <<EOF

image    $IMAGE
smoke    passed: ${facts[1]}
size     ${size_mb} MB uncompressed (budget ${MAX_IMAGE_MB} MB)
archive  $ARCHIVE ($(( (archive_bytes + 999999) / 1000000 )) MB, OCI image layout in a tar)
digest   ${facts[0]}

load it:  podman load -i $ARCHIVE
push it:  skopeo copy oci-archive:$ARCHIVE docker://registry.example.com/glusterfs-provisioner:$VERSION
          (or podman load, then podman push)
EOF
    (( size_mb <= MAX_IMAGE_MB )) || die "the image is ${size_mb} MB, over the ${MAX_IMAGE_MB} MB budget"
}

main() {
    local base
    check_tools
    mkdir -p "$work"
    build_wheels
    base=${BASE:-$(base_image)}
    build "$base"
    report
}

main "$@"

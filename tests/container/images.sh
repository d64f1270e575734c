#!/usr/bin/env bash
# Builds, on a machine that reaches no container registry, the base images that Galley's
# deploy/Dockerfile and deploy/compose.yaml name, under the very names they use, so the
# same files build and run here and on an operator's machine. Nothing is ever pulled.
#
#   tests/container/images.sh [debian] [postgres] [maildev] [rust]   (default: the first three)
#
# - debian:   docker.io/library/debian:bookworm-slim, imported from an mmdebstrap tarball
#             (minbase, slimmed like the official image) cached under $CONTAINER_CACHE
#             (default ~/.cache/galley/containers).
# - postgres: a test stand-in for docker.io/library/postgres:15-bookworm
#             (tests/container/images/postgres).
# - maildev:  a test stand-in for docker.io/maildev/maildev:<version in compose.yaml>
#             (tests/container/images/maildev).
# - rust:     a test stand-in for the Dockerfile's RUST_IMAGE: bookworm-slim plus this
#             machine's own Rust toolchain (tests/container/images/rust), for
#             scripts/build-image.
#
# An image that exists is kept; a stand-in is rebuilt when its directory, the version it
# is built for, the base image or the toolchain it copies changed (a label records a
# hash of them). Remove the tarball and the debian image to make the base anew.
# Every stand-in also trusts the CA certificates this machine adds locally
# (/usr/local/share/ca-certificates), so that npm and cargo inside a build reach their
# registries wherever this machine does.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${CONTAINER_CACHE:-$HOME/.cache/galley/containers}"
IMAGES_DIR=tests/container/images

say() { echo "images.sh: $*" >&2; }

# The names come from the files that use them, so they cannot drift apart.
DEBIAN_IMAGE="$(sed -nE 's/^ARG DEBIAN_IMAGE=(.+)$/\1/p' deploy/Dockerfile)"
RUST_IMAGE="$(sed -nE 's/^ARG RUST_IMAGE=(.+)$/\1/p' deploy/Dockerfile)"
POSTGRES_IMAGE="$(grep -oE 'docker\.io/library/postgres:[A-Za-z0-9._-]+' deploy/compose.yaml | head -n 1)"
MAILDEV_IMAGE="$(grep -oE 'docker\.io/maildev/maildev:[A-Za-z0-9._-]+' deploy/compose.yaml | head -n 1)"
for name in DEBIAN_IMAGE RUST_IMAGE POSTGRES_IMAGE MAILDEV_IMAGE; do
  if [ -z "${!name}" ]; then
    say "could not read $name from deploy/Dockerfile or deploy/compose.yaml"
    exit 1
  fi
done

LABEL=io.galley.test.stand-in-hash

# The hash of what a stand-in is built from: its directory, the extra words given, and
# the local CA certificates it copies in.
input_hash() {
  local dir="$1"
  shift
  {
    (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
    podman image inspect --format '{{.Id}}' "$DEBIAN_IMAGE"
    printf '%s\n' "$@"
  } | sha256sum | cut -c1-16
}

image_hash() {
  podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}

# A build context holding the stand-in's directory and this machine's local CAs.
context_for() {
  local dir="$1" ctx
  ctx="$(mktemp -d "${TMPDIR:-/tmp}/galley-image-ctx.XXXXXX")"
  cp -a "$dir/." "$ctx/"
  mkdir -p "$ctx/local-ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/local-ca/" 2>/dev/null || true
  echo "$ctx"
}

build_debian() {
  if podman image exists "$DEBIAN_IMAGE"; then
    return
  fi
  local tarball="$CACHE/bookworm-slim.tar"
  if [ ! -s "$tarball" ]; then
    mkdir -p "$CACHE"
    say "making $tarball with mmdebstrap (about a minute)"
    rm -f "$tarball.partial"
    # Like the official slim image: no documentation, manual pages or translations,
    # for the packages installed now and in every image built on it, and its apt
    # settings (images/debian/docker-clean: no package caches, no downloaded packages
    # kept); /usr is merged by mmdebstrap's hook rather than by the usrmerge package
    # (which would bring Perl along).
    # shellcheck disable=SC2016 # the hook's $1 is mmdebstrap's, not this script's
    mmdebstrap --quiet --variant=minbase --format=tar \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/groff/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/lintian/*' \
      --dpkgopt='path-exclude=/usr/share/linda/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook="upload $PWD/$IMAGES_DIR/debian/docker-clean /etc/apt/apt.conf.d/docker-clean" \
      --customize-hook='rm -f "$1"/var/cache/apt/*.bin' \
      bookworm "$tarball.partial" >"$CACHE/mmdebstrap.log" 2>&1 || {
      tail -n 40 "$CACHE/mmdebstrap.log" >&2
      exit 1
    }
    mv "$tarball.partial" "$tarball"
  fi
  say "importing $DEBIAN_IMAGE"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "test stand-in: Debian bookworm-slim from mmdebstrap" \
    "$tarball" "$DEBIAN_IMAGE" >/dev/null
}

# build_stand_in NAME DIR HASH [podman build args...]
build_stand_in() {
  local image="$1" dir="$2" hash="$3"
  shift 3
  if [ "$(image_hash "$image")" = "$hash" ]; then
    return
  fi
  say "building the test stand-in $image"
  local ctx
  ctx="$(context_for "$dir")"
  # shellcheck disable=SC2064
  trap "rm -rf '$ctx' '$ctx.log'" RETURN
  podman build --format docker --pull=never --label "$LABEL=$hash" --tag "$image" "$@" "$ctx" \
    >"$ctx.log" 2>&1 || {
    tail -n 40 "$ctx.log" >&2
    say "building $image failed"
    exit 1
  }
  rm -f "$ctx.log"
}

build_postgres() {
  build_debian
  build_stand_in "$POSTGRES_IMAGE" "$IMAGES_DIR/postgres" \
    "$(input_hash "$IMAGES_DIR/postgres" "$POSTGRES_IMAGE")"
}

build_maildev() {
  build_debian
  local version="${MAILDEV_IMAGE##*:}"
  build_stand_in "$MAILDEV_IMAGE" "$IMAGES_DIR/maildev" \
    "$(input_hash "$IMAGES_DIR/maildev" "$MAILDEV_IMAGE")" \
    --build-arg "MAILDEV_VERSION=$version"
}

build_rust() {
  build_debian
  local sysroot version hash
  sysroot="$(rustc --print sysroot)"
  version="$(rustc --version | awk '{print $2}')"
  hash="$(input_hash "$IMAGES_DIR/rust" "$RUST_IMAGE" "$(rustc -vV)" "$(cargo -V)")"
  if [ "$(image_hash "$RUST_IMAGE")" = "$hash" ]; then
    return
  fi
  case "$RUST_IMAGE" in
    *":$version-"* | *":${version%.*}-"*) ;;
    *) say "note: $RUST_IMAGE is built from this machine's Rust $version" ;;
  esac
  say "building the test stand-in $RUST_IMAGE from this machine's Rust $version"
  local ctx
  ctx="$(context_for "$IMAGES_DIR/rust")"
  # shellcheck disable=SC2064
  trap "rm -rf '$ctx' '$ctx.log'" RETURN
  # The toolchain without its documentation (share/); hard links where possible.
  mkdir -p "$ctx/toolchain"
  for part in bin lib libexec; do
    [ -d "$sysroot/$part" ] || continue
    cp -al "$sysroot/$part" "$ctx/toolchain/" 2>/dev/null || cp -a "$sysroot/$part" "$ctx/toolchain/"
  done
  podman build --format docker --pull=never --label "$LABEL=$hash" --build-arg "RUST_VERSION=$version" \
    --tag "$RUST_IMAGE" "$ctx" >"$ctx.log" 2>&1 || {
    tail -n 40 "$ctx.log" >&2
    say "building $RUST_IMAGE failed"
    exit 1
  }
  rm -f "$ctx.log"
}

if [ "$#" -eq 0 ]; then
  set -- debian postgres maildev
fi
for what in "$@"; do
  case "$what" in
    debian) build_debian ;;
    postgres) build_postgres ;;
    maildev) build_maildev ;;
    rust) build_rust ;;
    *)
      say "unknown image '$what' (debian, postgres, maildev, rust)"
      exit 2
      ;;
  esac
done

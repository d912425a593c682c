#!/usr/bin/env bash
# Sets up everything the tests need on a Debian controller, from nothing:
# Debian packages, a running Docker daemon, the base images (from debootstrap and
# Debian's mirror; the Rust builder also takes this machine's rustup toolchain and
# the Rust crate registry's crates), the Python venv and the venv of the oldest
# ansible-core for sanity and one scenario. Each step is skipped when its result is
# already there, so a second run takes seconds. Usage: setup.sh [debs|daemon|images|venv|core-venv|all]...
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${VENV:-$root/.venv}
core_venv=$root/.venv-core2.17
python=${PYTHON:-python3}
suite=${TESTBED_SUITE:-trixie}
base_image=local/debian:$suite
busybox_image=local/busybox:test
# The Rust toolchain (rustup's, on this machine) the builder image carries.
rust_version=${TESTBED_RUST_VERSION:-1.95.0}
archives=$root/.cache/images
debs=(docker.io debootstrap busybox-static gpg git make shellcheck chromium openssh-client)

log() { printf '==> %s\n' "$*"; }

# Run a noisy command, showing its output only when it fails.
quietly() {
  local out
  out=$(mktemp)
  if ! "$@" >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    rm -f "$out"
    exit 1
  fi
  rm -f "$out"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Run commands side by side (a clean machine builds images and venvs at once: most of
# it waits on the network, and the Rust builder's compile has the cores meanwhile);
# fails when any of them failed, after all ended.
side_by_side() {
  local pids=() pid rc=0 command
  for command in "$@"; do
    $command &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || rc=1
  done
  return "$rc"
}

step_debs() {
  local missing=()
  for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "Debian packages present"; return; fi
  log "installing Debian packages: ${missing[*]}"
  quietly as_root apt-get update -qq
  quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

step_daemon() {
  if docker info >/dev/null 2>&1; then log "Docker daemon running"; return; fi
  if [ -d /run/systemd/system ]; then
    log "starting docker.service"
    as_root systemctl start docker
  else
    # No systemd on the controller: run the daemon in the background.
    log "starting dockerd in the background (log: /var/log/dockerd-testbed.log)"
    as_root sh -c 'setsid nohup dockerd >/var/log/dockerd-testbed.log 2>&1 &'
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  echo "dockerd did not come up; see /var/log/dockerd-testbed.log" >&2
  exit 1
}

# Pieces of a build context taken from this machine rather than the repository,
# named in a recipe's file `machine-context` (one per line). `context_NAME DIR MODE`
# puts the piece in DIR; MODE `id` puts only what identifies it (for recipe_hash),
# with the function's own text, so that a change of what it copies rebuilds too.

# This machine's rustup toolchain $rust_version, trimmed to rustc, cargo, rustdoc and
# the host's standard library (about 570 MB instead of 1.4 GB: no docs, clippy, rustfmt,
# rust-analyzer), under rust/toolchains/NAME, and the rustup binary as rust/rustup.
context_rust_toolchain() {
  local dir=$1 mode=$2 rustup sysroot host target
  rustup=$(command -v rustup || echo "${CARGO_HOME:-$HOME/.cargo}/bin/rustup")
  if ! sysroot=$("$rustup" run "$rust_version" rustc --print sysroot 2>/dev/null); then
    echo "Rust $rust_version is not installed with rustup on this machine (rustup toolchain install $rust_version)" >&2
    exit 1
  fi
  host=$("$rustup" run "$rust_version" rustc -vV | sed -n 's/^host: //p')
  target=$dir/rust/toolchains/$rust_version-$host
  mkdir -p "$target/lib/rustlib"
  if [ "$mode" = id ]; then
    {
      "$rustup" run "$rust_version" rustc -vV
      "$rustup" run "$rust_version" cargo -V
      "$rustup" --version 2>/dev/null
      declare -f context_rust_toolchain
    } >"$target/ID"
    return
  fi
  (
    cd "$sysroot"
    cp -a --parents bin/rustc bin/cargo bin/rustdoc lib/*.so* "lib/rustlib/$host/lib" "lib/rustlib/$host/bin" \
      lib/rustlib/rust-installer-version lib/rustlib/multirust-*.toml lib/rustlib/manifest-rustc-* \
      lib/rustlib/manifest-cargo-* lib/rustlib/manifest-rust-std-* "$target/"
  )
  printf 'rustc\ncargo\nrust-std-%s\n' "$host" >"$target/lib/rustlib/components"
  cp "$(readlink -f "$rustup")" "$dir/rust/rustup"
  # World-writable as in the official image; set here, since a chmod in the image
  # would copy the whole toolchain into another layer.
  chmod -R a+w "$dir/rust"
}

# TEST BED ONLY: the CA bundle this machine trusts (SSL_CERT_FILE), for builds that
# reach the registries through its egress; an empty file without SSL_CERT_FILE.
context_ca_bundle() {
  local dir=$1
  if [ -n "${SSL_CERT_FILE:-}" ]; then
    cp "$SSL_CERT_FILE" "$dir/testbed-ca.crt"
  else
    : >"$dir/testbed-ca.crt"
  fi
}

# A recipe's build context: its folder, plus the repository paths its file
# `extra-context` lists (one per line), copied under the same relative paths (in a git
# checkout only the files .gitignore lets through), plus
# the pieces of this machine its file `machine-context` names. MODE: full or id.
recipe_context() {
  local recipe=$1 context=$2 mode=${3:-full} path name
  cp -a "$recipe/." "$context/"
  if [ -f "$recipe/extra-context" ]; then
    while read -r path; do
      if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
        # The files git would commit: not what .gitignore keeps out (target/, a lock).
        (cd "$root" && git ls-files -z --cached --others --exclude-standard -- "$path" |
          while IFS= read -r -d '' file; do
            [ ! -e "$file" ] || cp -a --parents "$file" "$context/"
          done)
      else
        mkdir -p "$context/$(dirname "$path")"
        cp -a "$root/$path" "$context/$path"
      fi
    done <"$recipe/extra-context"
  fi
  if [ -f "$recipe/machine-context" ]; then
    while read -r name; do
      "context_$name" "$context" "$mode"
    done <"$recipe/machine-context"
  fi
}

# Rebuild an image only when its recipe (the files of its build context) changed.
recipe_hash() {
  local context
  context=$(mktemp -d)
  recipe_context "$1" "$context" id
  (cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
  rm -rf "$context"
}
image_label() {
  docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

step_images() {
  if docker image inspect "$base_image" >/dev/null 2>&1; then
    log "$base_image present"
  else
    log "building $base_image with debootstrap (about a minute)"
    local dir
    dir=$(mktemp -d)
    as_root debootstrap --variant=minbase "$suite" "$dir" >/dev/null
    as_root tar -C "$dir" -c . | docker import - "$base_image" >/dev/null
    as_root rm -rf "$dir"
  fi
  if docker image inspect "$busybox_image" >/dev/null 2>&1; then
    log "$busybox_image present"
  else
    # A 1 MB image for tests that only need a shell, wget, nc and httpd.
    log "building $busybox_image"
    local dir
    dir=$(mktemp -d)
    mkdir -p "$dir/bin" "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    for applet in $(/bin/busybox --list); do
      [ "$applet" = busybox ] || ln -s busybox "$dir/bin/$applet"
    done
    tar -C "$dir" -c . | docker import -c 'CMD ["/bin/sh"]' - "$busybox_image" >/dev/null
    rm -rf "$dir"
  fi
  # Every folder under images/ is an image local/<folder>:<suite>, rebuilt when
  # a file of its recipe changes; those to build, side by side.
  local recipe builds=()
  for recipe in "$here"/images/*/; do
    builds+=("build_recipe ${recipe%/}")
  done
  side_by_side "${builds[@]}"
  step_archives
}

build_recipe() {
  local recipe=$1 image sum context args start
  image=local/$(basename "$recipe"):$suite
  sum=$(recipe_hash "$recipe")
  if [ "$(image_label "$image" org.algotrade.recipe)" = "$sum" ]; then
    log "$image present"
    return
  fi
  log "building $image"
  start=$SECONDS
  context=$(mktemp -d)
  recipe_context "$recipe" "$context"
  args=(--build-arg "BASE=$base_image" --label "org.algotrade.recipe=$sum" -t "$image")
  if grep -qx rust_toolchain "$recipe/machine-context" 2>/dev/null; then
    args+=(--build-arg "RUST_VERSION=$rust_version")
  fi
  # The legacy builder needs no buildx plugin and fetches no frontend image.
  DOCKER_BUILDKIT=0 quietly docker build "${args[@]}" "$context"
  rm -rf "$context"
  log "built $image in $((SECONDS - start)) s"
}

# Hosts get the images as `docker save` tarballs (the stack role's
# stack_image_archives), re-exported only when the image changed.
step_archives() {
  local name image id
  mkdir -p "$archives"
  for name in app-runtime nginx rust-builder timescaledb; do
    image=local/$name:$suite
    id=$(docker image inspect -f '{{.Id}}' "$image")
    if [ -s "$archives/$name.tar" ] && [ "$(cat "$archives/$name.id" 2>/dev/null)" = "$id" ]; then
      continue
    fi
    log "exporting $image to $archives/$name.tar"
    docker save -o "$archives/$name.tar.part" "$image"
    mv "$archives/$name.tar.part" "$archives/$name.tar"
    echo "$id" >"$archives/$name.id"
  done
}

# A venv from a pinned requirements file, made again when the file changes. With a
# fifth argument, also the collections of the dev venv's `ansible` package (the line of
# requirements-dev.txt), without its dependencies: that package pins the dev venv's
# ansible-core, and a venv of another core wants the same collections.
make_venv() {
  local venv=$1 req=$2 probe=$3 collections=${4:-} stamp=$1/.requirements.sha256 sum line=
  if [ -n "$collections" ]; then
    line=$(grep -E '^ansible==' "$root/requirements-dev.txt")
  fi
  sum=$( (cat "$req"; echo "$line") | sha256sum | cut -d' ' -f1)
  if [ -x "$venv/bin/$probe" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    log "Python venv up to date ($venv)"
    return
  fi
  log "creating Python venv at $venv"
  "$python" -m venv "$venv"
  quietly "$venv/bin/pip" install --disable-pip-version-check --upgrade pip
  quietly "$venv/bin/pip" install --disable-pip-version-check -r "$req"
  if [ -n "$line" ]; then
    quietly "$venv/bin/pip" install --disable-pip-version-check --no-deps "$line"
  fi
  echo "$sum" >"$stamp"
}

step_venv() {
  make_venv "$venv" "$root/requirements-dev.txt" ansible
}

# ansible-core 2.17, the oldest release meta/runtime.yml allows, for ansible-test sanity
# (tools/sanity.sh) and the `default` scenario (tools/scenario-on-core.sh), with the
# collections that scenario uses. The newest (2.21, Python >= 3.12) is the image
# local/ansible-core-2.21.
step_core_venv() {
  make_venv "$core_venv" "$here/requirements-core-2.17.txt" molecule collections
}

[ $# -gt 0 ] || set -- all
for step in "$@"; do
  case $step in
    all) step_debs; step_daemon; side_by_side step_images step_venv step_core_venv ;;
    debs | daemon | images | venv) "step_$step" ;;
    core-venv) step_core_venv ;;
    *) echo "usage: $0 [debs|daemon|images|venv|core-venv|all]..." >&2; exit 2 ;;
  esac
done

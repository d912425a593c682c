#!/usr/bin/env bash
# Sets up everything the tests need on a Debian controller, from nothing:
# Debian packages, a running Docker daemon, the offline base images and the
# Python venv. Each step is skipped when its result is already there, so a
# second run takes seconds. Usage: setup.sh [debs|daemon|images|venv|all]...
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
suite=${TESTBED_SUITE:-trixie}
base_image=local/debian:$suite
busybox_image=local/busybox:test
archives=$root/.cache/images
debs=(docker.io debootstrap busybox-static gpg git make shellcheck chromium)

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

# A recipe's build context: its folder, plus the repository paths its file
# `extra-context` lists (one per line), copied under the same relative paths.
recipe_context() {
  local recipe=$1 context=$2 path
  cp -a "$recipe/." "$context/"
  [ -f "$recipe/extra-context" ] || return 0
  while read -r path; do
    mkdir -p "$context/$(dirname "$path")"
    cp -a "$root/$path" "$context/$path"
  done <"$recipe/extra-context"
}

# Rebuild an image only when its recipe (the files of its build context) changed.
recipe_hash() {
  local context
  context=$(mktemp -d)
  recipe_context "$1" "$context"
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
  # a file of its recipe changes.
  local recipe image sum context
  for recipe in "$here"/images/*/; do
    recipe=${recipe%/}
    image=local/$(basename "$recipe"):$suite
    sum=$(recipe_hash "$recipe")
    if [ "$(image_label "$image" org.algotrade.recipe)" = "$sum" ]; then
      log "$image present"
      continue
    fi
    log "building $image"
    context=$(mktemp -d)
    recipe_context "$recipe" "$context"
    # The legacy builder needs no buildx plugin and fetches nothing.
    DOCKER_BUILDKIT=0 quietly docker build --build-arg "BASE=$base_image" \
      --label "org.algotrade.recipe=$sum" -t "$image" "$context"
    rm -rf "$context"
  done
  step_archives
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

step_venv() {
  local req=$root/requirements-dev.txt stamp=$venv/.requirements.sha256 sum
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$venv/bin/ansible" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    log "Python venv up to date ($venv)"
    return
  fi
  log "creating Python venv at $venv"
  "$python" -m venv "$venv"
  quietly "$venv/bin/pip" install --disable-pip-version-check --upgrade pip
  quietly "$venv/bin/pip" install --disable-pip-version-check -r "$req"
  echo "$sum" >"$stamp"
}

[ $# -gt 0 ] || set -- all
for step in "$@"; do
  case $step in
    all) step_debs; step_daemon; step_images; step_venv ;;
    debs | daemon | images | venv) "step_$step" ;;
    *) echo "usage: $0 [debs|daemon|images|venv|all]..." >&2; exit 2 ;;
  esac
done

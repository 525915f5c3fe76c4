#!/usr/bin/env bash
# Prepares a Docker engine and local images on a machine that has no engine running and no container
# registry: starts dockerd, builds one Debian base image (redis-server, nginx, Node 24) with debootstrap,
# tags it for the redis / nginx / node roles, and builds the app image from the real Dockerfile. The k6 image
# for the compose `k6` service is that base with ../shared/tools/k6 copied in.
# Also builds an nginx image from Debian testing, whose nginx (>= 1.27.3) has the `resolve` parameter the
# compose default upstream needs. Prints the env lines the tests need (REDIS_IMAGE, NGINX_IMAGE,
# NGINX_UPSTREAM, APP_IMAGE, K6_IMAGE) to the file named by $1.
set -euo pipefail
cd "$(dirname "$0")/.."
out_env=${1:?usage: scripts/ci-images.sh <env-file>}
work=${CI_WORK:-$PWD/.ci-work}
mkdir -p "$work"
log() { echo "--- [images] $*"; }

export DEBIAN_FRONTEND=noninteractive
need=()
[ -x /usr/bin/docker ] || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-compose >/dev/null || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Debian's client (20.10, BuildKit built in); a newer client earlier on PATH refuses BuildKit without buildx.
DOCKER=/usr/bin/docker
if ! $DOCKER info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >"$work/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do $DOCKER info >/dev/null 2>&1 && break; sleep 1; done
  $DOCKER info >/dev/null || { tail -30 "$work/dockerd.log"; exit 1; }
fi

mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)

base=rt-local/base:bookworm
if ! $DOCKER image inspect "$base" >/dev/null 2>&1; then
  log "debootstrap bookworm from $mirror"
  rootfs="$work/rootfs"
  rm -rf "$rootfs"
  for attempt in 1 2; do
    debootstrap --variant=minbase --include=redis-server,nginx-light,ca-certificates bookworm "$rootfs" "$mirror" \
      >"$work/debootstrap.log" 2>&1 && break
    tail -30 "$work/debootstrap.log"
    [ "$attempt" -eq 1 ] || exit 1
    log "debootstrap failed, retrying once"
    rm -rf "$rootfs"
  done
  node_bin=$(command -v node)
  [ "$("$node_bin" -p 'process.versions.node.split(".")[0]')" -ge 22 ] || { echo "node >= 22 must be first on PATH"; exit 1; }
  install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  # The official node image has a `node` user (uid 1000); the Dockerfile runs as it.
  grep -q '^node:' "$rootfs/etc/passwd" || {
    echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$rootfs/etc/passwd"
    echo 'node:x:1000:' >>"$rootfs/etc/group"
    mkdir -p "$rootfs/home/node" && chown 1000:1000 "$rootfs/home/node"
  }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | $DOCKER import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$base" >/dev/null
  rm -rf "$rootfs"
fi
for role in node:24 redis:7 nginx:1.22; do $DOCKER tag "$base" "rt-local/$role"; done

# The compose default upstream (nginx/upstream.docker.conf) re-resolves `app` with `resolve`, which
# open-source nginx has since 1.27.3; bookworm's is 1.22, Debian testing's is newer. Should testing not
# bootstrap, bookworm's nginx with the static upstream stands in, and the log says so.
nginx_resolve=rt-local/nginx:testing
if ! $DOCKER image inspect "$nginx_resolve" >/dev/null 2>&1; then
  log "debootstrap testing (nginx with resolve) from $mirror"
  rootfs="$work/rootfs-nginx"
  rm -rf "$rootfs"
  if debootstrap --variant=minbase --include=nginx-light testing "$rootfs" "$mirror" >"$work/debootstrap-nginx.log" 2>&1; then
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | $DOCKER import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$nginx_resolve" >/dev/null
  else
    tail -20 "$work/debootstrap-nginx.log"
  fi
  rm -rf "$rootfs"
fi
if $DOCKER image inspect "$nginx_resolve" >/dev/null 2>&1; then
  nginx_image=$nginx_resolve nginx_upstream=upstream.docker.conf
else
  nginx_image=rt-local/nginx:1.22 nginx_upstream=upstream.static.conf
fi
log "nginx image $nginx_image ($($DOCKER run --rm "$nginx_image" nginx -v 2>&1 | tail -1)), upstream $nginx_upstream"

# A self-contained npmrc for the build: the registry plus the machine's CA certificates inline
# (a cafile= path would not exist inside the build).
npmrc="$work/npmrc"
cafile=$(npm config get cafile 2>/dev/null || true)
[ -f "$cafile" ] || cafile=/etc/ssl/certs/ca-certificates.crt
{
  echo "registry=$(npm config get registry)"
  awk '/BEGIN CERTIFICATE/{c=""} {c=c $0 "\\n"} /END CERTIFICATE/{print "ca[]=\"" c "\""}' "$cafile"
} >"$npmrc"
chmod 600 "$npmrc"

app=realtime-server:ci
log "building $app from Dockerfile"
DOCKER_BUILDKIT=1 $DOCKER build --network host --build-arg NODE_IMAGE=rt-local/node:24 \
  --secret id=npmrc,src="$npmrc" -t "$app" . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
rm -f "$npmrc"
log "app image $app: $($DOCKER image inspect -f '{{.Size}}' "$app" | awk '{printf "%.0f MB", $1/1e6}')"

cat >"$out_env" <<ENV
REDIS_IMAGE=rt-local/redis:7
NGINX_IMAGE=$nginx_image
NGINX_UPSTREAM=$nginx_upstream
APP_IMAGE=$app
ENV

# The compose `k6` service (profile loadtest): grafana/k6 cannot be pulled here, so the k6 binary of this
# project's machines (../shared/tools/k6, Grafana k6 v2.2.0, static) goes onto the local Debian base. Without
# that binary, K6_IMAGE stays unset and compose falls back to grafana/k6.
k6_bin=${K6:-../shared/tools/k6}
if [ -x "$k6_bin" ]; then
  k6_version=$("$k6_bin" version | awk '{print $2; exit}')
  k6_image=rt-local/k6:${k6_version:-local}
  k6_ctx="$work/k6-image"
  rm -rf "$k6_ctx" && mkdir -p "$k6_ctx"
  install -m 0755 "$k6_bin" "$k6_ctx/k6"
  printf 'FROM %s\nCOPY k6 /usr/bin/k6\nWORKDIR /home/k6\nENTRYPOINT ["k6"]\n' "$base" >"$k6_ctx/Dockerfile"
  DOCKER_BUILDKIT=1 $DOCKER build -t "$k6_image" "$k6_ctx" >"$work/build-k6.log" 2>&1 || { tail -20 "$work/build-k6.log"; exit 1; }
  rm -rf "$k6_ctx"
  log "k6 image $k6_image ($($DOCKER run --rm "$k6_image" version | head -1))"
  echo "K6_IMAGE=$k6_image" >>"$out_env"
else
  log "no k6 binary at $k6_bin: K6_IMAGE not set (compose uses grafana/k6)"
fi

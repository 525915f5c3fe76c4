#!/usr/bin/env bash
# Validates docker-compose.yml and brings the stack up on the local images (see ci-images.sh): the example
# client must print every seed response through nginx; then `--scale app=5` must reach 5 replicas with no
# config edit. Needs the env file written by ci-images.sh as $1.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
. "${1:?usage: scripts/ci-compose.sh <env-file>}"
set +a
# NGINX_UPSTREAM comes from ci-images.sh: the compose default (upstream.docker.conf, `resolve`) when its nginx
# image has it, else the static upstream (names resolved at nginx start, so nginx restarts after scaling).
export NGINX_UPSTREAM=${NGINX_UPSTREAM:-upstream.static.conf} LB_PORT=${LB_PORT:-5600}
# A password of this run's own, as production sets one (REDIS_PASSWORD; the compose default is for development).
REDIS_PASSWORD=$(openssl rand -hex 16)
export REDIS_PASSWORD
compose() { docker-compose -p rtci "$@"; }
log() { echo "--- [compose] $*"; }
trap 'compose down -v -t 25 >/dev/null 2>&1 || true' EXIT

compose config -q
log "docker-compose.yml is valid"
compose up -d >/dev/null 2>&1
lb=http://127.0.0.1:$LB_PORT
for _ in $(seq 1 60); do curl -fs "$lb/healthz" >/dev/null && break; sleep 1; done
compose ps

out=$(node --import tsx examples/client.ts "$lb")
echo "$out"
for line in "[Echo Response] Hello, server!" "[Broadcast] From " "[Room] Joined: test-room" "[Room Message] From " "[Server Time] "; do
  grep -qF "$line" <<<"$out" || { echo "example client through compose: missing '$line'"; exit 1; }
done
log "example client works through compose nginx"

replicas_seen() { for _ in $(seq 1 60); do curl -fs -D - -o /dev/null "$lb/healthz" | grep -i '^x-replica-id'; done | sort -u | wc -l; }
seen=$(replicas_seen)
[ "$seen" -eq 3 ] || { echo "expected 3 replicas behind nginx, saw $seen"; exit 1; }
compose up -d --scale app=5 >/dev/null 2>&1
if [ "$NGINX_UPSTREAM" = upstream.docker.conf ]; then
  how="nginx re-resolved app through Docker's DNS, no restart"
else
  compose restart nginx >/dev/null 2>&1
  how="static upstream: nginx restarted"
fi
# The new replicas pass their healthcheck and nginx re-resolves every 5 s (valid=5s).
for _ in $(seq 1 30); do
  seen=$(replicas_seen)
  [ "$seen" -eq 5 ] && break
  sleep 2
done
[ "$seen" -eq 5 ] || { echo "expected 5 replicas after --scale app=5, saw $seen"; exit 1; }
log "scaled to 5 replicas without editing any config (seen 5 distinct X-Replica-Id; $how)"

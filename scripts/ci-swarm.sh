#!/usr/bin/env bash
# Deploys the Docker Swarm stack (deploy/swarm/stack.yml) on this machine's engine with the local images (see
# ci-images.sh) and checks it for real: nginx answers through its host-mode published port, a broadcast crosses
# replicas (deploy/swarm/smoke.ts), the file-descriptor limits are applied, and `docker service scale
# <stack>_app=5` reaches 5 replicas through the same nginx container (it re-resolves tasks.app through Swarm's
# DNS: no restart). Then removes the stack. With no swarm on the engine it creates a one-node swarm advertising
# 127.0.0.1 (no routable interface needed) and leaves it at the end; a swarm it did not create is left as it is.
# Needs the env file written by ci-images.sh as $1. SWARM_STACK (rtswarm) and SWARM_PORT (5610) move it.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
. "${1:?usage: scripts/ci-swarm.sh <env-file>}"
set +a

# Debian's client by default (the one ci-images.sh installs, matching its engine); DOCKER picks another.
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
stack=${SWARM_STACK:-rtswarm}
port=${SWARM_PORT:-5610}
lb=http://127.0.0.1:$port
started=$SECONDS
log() { echo "--- [swarm +$((SECONDS - started))s] $*"; }
die() {
  echo "swarm: FAILED: $*" >&2
  exit 1
}
# Every docker call that waits on the engine is bounded.
d() { timeout 60 "$DOCKER" "$@"; }

[ "${NGINX_UPSTREAM:-}" = upstream.docker.conf ] ||
  die "the stack needs an nginx with \`resolve\` (>= 1.27.3); $1 has NGINX_IMAGE=${NGINX_IMAGE:-unset}, NGINX_UPSTREAM=${NGINX_UPSTREAM:-unset}"
for v in APP_IMAGE REDIS_IMAGE NGINX_IMAGE; do
  d image inspect "${!v}" >/dev/null 2>&1 || die "image ${!v} ($v) is not on this engine: run scripts/ci-images.sh first"
done
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "127.0.0.1:$port is already in use (SWARM_PORT)"; fi

# --- the swarm: reuse a manager, else create one and remember to leave it
created_swarm=0 had_gwbridge=1
case $(d info -f '{{.Swarm.LocalNodeState}}') in
  inactive)
    d network inspect docker_gwbridge >/dev/null 2>&1 || had_gwbridge=0
    d swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null ||
      die "docker swarm init --advertise-addr 127.0.0.1 failed"
    created_swarm=1
    log "created a one-node swarm (advertise 127.0.0.1)"
    ;;
  active)
    [ "$(d info -f '{{.Swarm.ControlAvailable}}')" = true ] || die "this engine is in a swarm but not a manager"
    log "using the swarm this engine is already in (left as it is afterwards)"
    ;;
  *) die "this engine's swarm state is $(d info -f '{{.Swarm.LocalNodeState}}'), neither inactive nor active" ;;
esac

containers_of() { d ps -aq --filter "label=com.docker.stack.namespace=$stack" "$@"; }
remove_stack() {
  d stack rm "$stack" >/dev/null 2>&1 || true
  # The app drains on SIGTERM (DRAIN_DELAY_S + DRAIN_CLOSE_S, about 10 s); stop_grace_period is 25 s.
  for _ in $(seq 1 60); do [ -z "$(containers_of)" ] && break; sleep 1; done
  [ -z "$(containers_of)" ] || echo "swarm: containers of stack $stack still there after 60 s" >&2
  for _ in $(seq 1 30); do d network inspect "${stack}_default" >/dev/null 2>&1 || break; sleep 1; done
  d volume rm "${stack}_redis-data" >/dev/null 2>&1 || true
}
diagnose() {
  echo "=== swarm diagnostics"
  d service ls --filter "label=com.docker.stack.namespace=$stack" || true
  d stack ps --no-trunc "$stack" 2>/dev/null | head -30 || true
  for s in nginx app redis; do
    echo "--- logs of ${stack}_$s (last 20 lines)"
    d service logs --no-task-ids --tail 20 "${stack}_$s" 2>&1 | tail -20 || true
  done
}
cleanup() {
  rc=$?
  set +e
  [ "$rc" -eq 0 ] || diagnose
  remove_stack
  if [ "$created_swarm" -eq 1 ]; then
    d swarm leave --force >/dev/null 2>&1 || echo "swarm: docker swarm leave --force failed" >&2
    # swarm init created docker_gwbridge; drop it with the swarm (only when nothing else uses it).
    [ "$had_gwbridge" -eq 1 ] || d network rm docker_gwbridge >/dev/null 2>&1 || true
  fi
  log "stack removed$([ "$created_swarm" -eq 1 ] && echo ", swarm left")"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A leftover of an interrupted run of this script carries the same stack name.
if grep -qx "$stack" <<<"$(d stack ls --format '{{.Name}}')"; then
  log "removing a leftover stack $stack"
  remove_stack
fi

# --- deploy: local images (no registry, so no digest to resolve), a password and config names of this run
export LB_PORT=$port REDIS_IMAGE APP_IMAGE NGINX_IMAGE
REDIS_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
NGINX_CONFIG_VERSION=$stack-$(cat nginx/nginx.conf nginx/upstream.swarm.conf nginx/limits.conf | sha256sum | cut -c1-12)
export REDIS_PASSWORD NGINX_CONFIG_VERSION
out=$(d stack deploy --resolve-image never -c deploy/swarm/stack.yml "$stack" 2>&1) ||
  die "docker stack deploy -c deploy/swarm/stack.yml $stack failed: $out"
log "stack $stack deployed (app $APP_IMAGE, nginx $NGINX_IMAGE, redis $REDIS_IMAGE), waiting for $lb"

deadline=$((SECONDS + 90))
until body=$(curl -s -m 2 "$lb/" || true) && [ "$body" = "Hello server is working" ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "GET $lb/ did not answer 'Hello server is working' within 90 s (got '$body')"
  sleep 1
done
log "nginx answers GET / through the published port: $body"

# Distinct X-Replica-Id over 100 Engine.IO handshakes through nginx (each one is hashed on a fresh request id),
# for at most 20 s.
replicas_seen() {
  local until=$((SECONDS + 20))
  for _ in $(seq 1 100); do
    [ "$SECONDS" -lt "$until" ] || break
    { curl -s -m 2 -D - -o /dev/null "$lb/socket.io/?EIO=4&transport=polling" || true; } |
      tr -d '\r' | sed -n 's/^[Xx]-[Rr]eplica-[Ii]d: //p'
  done | sort -u | wc -l
}
wait_replicas() {
  local want=$1 seen=0 deadline=$((SECONDS + 90))
  while :; do
    seen=$(replicas_seen)
    [ "$seen" -eq "$want" ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || die "expected $want replicas behind nginx, saw $seen after 90 s"
    sleep 2
  done
}
wait_replicas 3
log "nginx reaches 3 replicas (distinct X-Replica-Id over 100 handshakes)"

smoke() { timeout 60 node --import tsx deploy/swarm/smoke.ts "$lb"; }
smoke || die "no message crossed replicas through nginx (deploy/swarm/smoke.ts)"
log "a broadcast crossed replicas through nginx and Redis"

# --- file-descriptor limits (ulimits in the stack) as the containers really got them
nginx_id=$(d ps -q --no-trunc --filter "label=com.docker.swarm.service.name=${stack}_nginx")
app_id=$(d ps -q --no-trunc --filter "label=com.docker.swarm.service.name=${stack}_app" | head -1)
[ "$(wc -w <<<"$nginx_id")" -eq 1 ] || die "expected one nginx container, found: ${nginx_id:-none}"
# Both from the service spec (HostConfig.Ulimits: not merely inherited from dockerd) and in effect (/proc/1/limits).
for c in "$nginx_id" "$app_id"; do
  spec=$(d inspect -f '{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}/{{.Hard}} {{end}}' "$c")
  limits=$(d exec "$c" cat /proc/1/limits | awk '/^Max open files/ {print $4 "/" $5}')
  [ "$spec" = "nofile=20000/20000 " ] && [ "$limits" = 20000/20000 ] ||
    die "container ${c:0:12}: ulimits '$spec', open files $limits; expected nofile=20000/20000 from the stack"
done
log "open-file limits from the stack applied: nginx and app nofile 20000/20000"

# --- scale: the same nginx container must find the 2 new tasks by itself
nginx_started=$(d inspect -f '{{.State.StartedAt}}' "$nginx_id")
d service scale --detach "${stack}_app=5" >/dev/null || die "docker service scale ${stack}_app=5 failed"
scaled_at=$SECONDS
wait_replicas 5
log "scaled to 5: nginx reaches 5 replicas $((SECONDS - scaled_at)) s after docker service scale"
now_id=$(d ps -q --no-trunc --filter "label=com.docker.swarm.service.name=${stack}_nginx")
[ "$now_id" = "$nginx_id" ] || die "the nginx container changed while scaling (${nginx_id:0:12} → ${now_id:0:12})"
[ "$(d inspect -f '{{.State.StartedAt}} {{.RestartCount}}' "$nginx_id")" = "$nginx_started 0" ] ||
  die "the nginx container restarted while scaling"
[ "$(d service ps -q "${stack}_nginx" | wc -l)" -eq 1 ] || die "nginx was rescheduled while scaling"
log "same nginx container ${nginx_id:0:12} (started $nginx_started, no restart, one task)"

smoke || die "no message crossed replicas after scaling"
log "done: deploy, cross-replica broadcast, ulimits, scale to 5 without an nginx restart"

#!/usr/bin/env bash
# Brings the compose stack up on a Redis Cluster (profile redis-cluster of docker-compose.yml with
# docker-compose.redis-cluster.yml: six nodes, 3 masters and 3 replicas, formed by the one-shot job
# redis-cluster-init; the single `redis` not started) on the local images (see ci-images.sh) and checks it for
# real: GET / through nginx, cluster_state:ok with 3 masters and 3 replicas, a broadcast and a room message that
# cross replicas (sharded pub/sub), then the same after `down` and `up` again with the volumes kept (the job must
# find the cluster formed and re-introduce its nodes, whose container IPs change; no node may reach for its peers'
# IPs of the first start). Removes everything it created, volumes included. Needs the env file written by ci-images.sh as $1 (APP_IMAGE: an image of the current tree).
# RC_PROJECT (rtrc) and LB_PORT (5620) move it.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
. "${1:?usage: scripts/ci-compose-redis-cluster.sh <env-file>}"
set +a

if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
project=${RC_PROJECT:-rtrc}
export NGINX_UPSTREAM=${NGINX_UPSTREAM:-upstream.static.conf} LB_PORT=${LB_PORT:-5620}
lb=http://127.0.0.1:$LB_PORT
# A password of this run's own, as production sets one.
REDIS_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export REDIS_PASSWORD
started=$SECONDS
log() { echo "--- [compose redis-cluster +$((SECONDS - started))s] $*"; }
die() {
  echo "compose redis-cluster: FAILED: $*" >&2
  exit 1
}
# Every call that waits on the engine is bounded.
d() { timeout 60 "$DOCKER" "$@"; }
compose() { timeout 240 docker-compose -p "$project" -f docker-compose.yml -f docker-compose.redis-cluster.yml --profile redis-cluster "$@"; }
nodes="redis-node-1 redis-node-2 redis-node-3 redis-node-4 redis-node-5 redis-node-6"

for v in APP_IMAGE REDIS_IMAGE NGINX_IMAGE; do
  d image inspect "${!v}" >/dev/null 2>&1 || die "image ${!v} ($v) is not on this engine: run scripts/ci-images.sh first"
done
d run --rm "$APP_IMAGE" grep -q REDIS_CLUSTER_NODES dist/config.js ||
  die "$APP_IMAGE has no Redis Cluster support (REDIS_CLUSTER_NODES): rebuild it from this tree"
if (exec 3<>"/dev/tcp/127.0.0.1/$LB_PORT") 2>/dev/null; then die "127.0.0.1:$LB_PORT is already in use (LB_PORT)"; fi

project_volumes() { d volume ls -q --filter "label=com.docker.compose.project=$project"; }
teardown() {
  compose down -v --remove-orphans -t 25 >/dev/null 2>&1 || true
  # Volumes of this project only (its label): what `down -v` left, if anything.
  local left
  left=$(project_volumes || true)
  [ -z "$left" ] || d volume rm $left >/dev/null 2>&1 || echo "compose redis-cluster: volumes left: $left" >&2
}
diagnose() {
  echo "=== compose redis-cluster diagnostics"
  compose ps || true
  for s in redis-cluster-init app nginx; do
    echo "--- logs of $s (last 20 lines)"
    compose logs --no-color --tail 20 "$s" 2>&1 | tail -20 || true
  done
}
cleanup() {
  rc=$?
  set +e
  [ "$rc" -eq 0 ] || diagnose
  teardown
  log "torn down (containers, network, volumes of project $project)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A leftover of an interrupted run carries the same project name.
[ -z "$(compose ps -q 2>/dev/null)$(project_volumes)" ] || { log "removing a leftover project $project"; teardown; }

# --- configuration: plain compose unchanged (one Redis), the cluster variant without REDIS_URL
plain=$(timeout 60 docker-compose -p "$project" config)
grep -q "REDIS_URL: redis://:$REDIS_PASSWORD@redis:6379" <<<"$plain" || die "plain compose: app has no REDIS_URL to redis"
! grep -q REDIS_CLUSTER_NODES <<<"$plain" || die "plain compose: app has REDIS_CLUSTER_NODES"
merged=$(compose config)
app_cfg=$(sed -n '/^  app:/,/^  [a-z]/p' <<<"$merged")
grep -q "REDIS_URL: ''" <<<"$app_cfg" || die "cluster variant: app's REDIS_URL is not empty"
grep -q "REDIS_CLUSTER_NODES: redis-node-1:6379," <<<"$app_cfg" || die "cluster variant: app has no REDIS_CLUSTER_NODES"
log "config valid: plain compose keeps REDIS_URL, the cluster variant sets REDIS_CLUSTER_NODES and an empty REDIS_URL"

# --- checks, run after each `up`
node_ips() { for n in $nodes; do d inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(compose ps -q "$n")"; done | tr '\n' ' '; }
cli() { compose exec -T redis-node-1 redis-cli --no-auth-warning -a "$REDIS_PASSWORD" "$@" | tr -d '\r'; }
smoke() {
  timeout 60 node --input-type=module - "$lb" <<'JS'
import { io } from "socket.io-client";
const url = process.argv[2];
const T = 10_000;
const clients = [];
const fail = (why) => {
  console.error(`smoke: FAILED: ${why}`);
  for (const c of clients) c.disconnect();
  process.exit(1);
};
const connect = () =>
  new Promise((resolve, reject) => {
    const s = io(url, { reconnection: false, timeout: T, forceNew: true });
    clients.push(s);
    s.once("connect", () => resolve(s));
    s.once("connect_error", (err) => reject(new Error(`cannot connect to ${url}: ${err.message}`)));
  });
const ack = async (s, event, ...args) => {
  const res = await s.timeout(T).emitWithAck(event, ...args);
  if (!res.ok) throw new Error(`${event} refused: ${res.error.code} ${res.error.message}`);
  return res;
};
const waitFor = (s, event, match, what) =>
  new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setTimeout(() => reject(new Error(`${what}: nothing within ${T} ms`)), T);
    s.on(event, (data) => {
      if (!match(data)) return;
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
try {
  const a = await connect();
  const ra = (await ack(a, "server-info")).replica;
  let b, rb;
  for (let i = 0; i < 16 && !b; i++) {
    const c = await connect();
    const r = (await ack(c, "server-info")).replica;
    if (r !== ra) [b, rb] = [c, r];
  }
  if (!b) fail(`16 clients all landed on replica ${ra}: is only one replica up?`);
  const text = `cross-replica ${Date.now()} ${Math.random().toString(16).slice(2)}`;
  const got = waitFor(b, "broadcast-message", (m) => m.message === text, `broadcast from ${ra} to ${rb}`);
  const sent = await ack(a, "broadcast", text);
  if (sent.delivered !== "cluster") fail(`broadcast delivered "${sent.delivered}", not "cluster"`);
  console.log(`smoke: broadcast from replica ${ra} received on replica ${rb} in ${await got} ms`);

  await ack(a, "join-room", "lobby");
  await ack(b, "join-room", "lobby");
  const id = `rc-${Date.now()}-${Math.random().toString(16).slice(2)}`;
  const room = waitFor(b, "room-message-received", (m) => m.room === "lobby" && m.id === id && m.message === "hi", "room message");
  const stored = await ack(a, "room-message", { room: "lobby", message: "hi", id });
  console.log(`smoke: room-message "hi" in lobby (offset ${stored.offset}) from replica ${ra} received on replica ${rb} in ${await room} ms`);
  for (const c of clients) c.disconnect();
  process.exit(0);
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
JS
}
check_stack() {
  local when=$1 state init_id body info nodes_out
  init_id=$(compose ps -q redis-cluster-init)
  state=$(d inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$init_id")
  [ "$state" = "exited 0" ] || die "redis-cluster-init: $state, expected exited 0"
  log "$when: redis-cluster-init: $(d logs "$init_id" 2>&1 | grep '^redis-cluster-init:' | tr '\n' ' ')"
  [ -z "$(compose ps -q redis)" ] || die "the single redis service has a container in the cluster variant"
  [ "$(compose ps -q app | wc -l)" -eq 3 ] || die "expected 3 app containers"

  local deadline=$((SECONDS + 90))
  until body=$(curl -s -m 2 "$lb/" || true) && [ "$body" = "Hello server is working" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "GET $lb/ did not answer 'Hello server is working' within 90 s (got '$body')"
    sleep 1
  done
  log "$when: GET / through nginx: $body"

  info=$(cli cluster info)
  nodes_out=$(cli cluster nodes)
  grep -qx 'cluster_state:ok' <<<"$info" || die "cluster info: $(grep cluster_state <<<"$info")"
  grep -qx 'cluster_size:3' <<<"$info" || die "cluster info: $(grep cluster_size <<<"$info"), expected 3 masters"
  grep -qx 'cluster_known_nodes:6' <<<"$info" || die "cluster info: $(grep cluster_known_nodes <<<"$info")"
  [ "$(awk '$3 ~ /master/ && $3 !~ /fail/' <<<"$nodes_out" | wc -l)" -eq 3 ] &&
    [ "$(awk '$3 ~ /slave/ && $3 !~ /fail/' <<<"$nodes_out" | wc -l)" -eq 3 ] ||
    die "cluster nodes: expected 3 masters and 3 replicas:"$'\n'"$nodes_out"
  log "$when: redis-cli -a … cluster info: cluster_state:ok, cluster_size:3, cluster_known_nodes:6 (3 masters, 3 replicas)"

  smoke || die "$when: no broadcast or room message crossed replicas through nginx and the Redis Cluster"
  log "$when: a broadcast and a room message crossed replicas"
}

# --- first start: the job creates the cluster
log "up (project $project, app $APP_IMAGE, redis $REDIS_IMAGE, nginx $NGINX_IMAGE, $lb)"
compose up -d >/dev/null 2>&1 || die "docker-compose up failed"
log "up done"
ips1=$(node_ips)
check_stack "first start"

# --- down with the volumes kept, up again: the job finds the cluster formed. The nodes start one by one in the
# reverse order first, so that their container IPs differ from the first start's.
compose down -t 25 >/dev/null 2>&1 || die "docker-compose down failed"
log "down (volumes kept)"
for n in $(tr ' ' '\n' <<<"$nodes" | tac); do compose up -d "$n" >/dev/null 2>&1 || die "up $n failed"; done
compose up -d >/dev/null 2>&1 || die "docker-compose up (second start) failed"
ips2=$(node_ips)
changed=0
for i in 1 2 3 4 5 6; do [ "$(cut -d' ' -f$i <<<"$ips1")" = "$(cut -d' ' -f$i <<<"$ips2")" ] || changed=$((changed + 1)); done
log "up again: $changed of 6 nodes on another IP (${ips1% } → ${ips2% })"
# Read whole first: `docker logs | grep -q` fails under pipefail when grep exits before docker logs is done.
init_log=$(d logs "$(compose ps -q redis-cluster-init)" 2>&1)
grep -q 'already form a cluster' <<<"$init_log" ||
  die "second start: redis-cluster-init did not find the cluster formed: $init_log"
# No node may have reached for its peers' IPs of the first start (by now possibly other containers' on this host):
# every replica connects to a current node IP, and no cluster bus sees a stranger.
node_logs=$(for n in $nodes; do compose logs --no-color "$n" 2>&1; done)
stray=$(sed -n 's/.*Connecting to MASTER \([0-9.]*\):.*/\1/p' <<<"$node_logs" | sort -u |
  while read -r ip; do case " $ips2" in *" $ip "*) ;; *) echo "$ip" ;; esac; done)
[ -z "$stray" ] || die "second start: replicas connected to stale master IPs: $stray"
! grep -q 'Bad message length or signature received from Cluster bus' <<<"$node_logs" ||
  die "second start: foreign traffic on a cluster bus: $(grep -c 'Bad message length' <<<"$node_logs") messages"
log "second start: replicas connected to current node IPs only ($(grep -c 'Connecting to MASTER' <<<"$node_logs") connects), no foreign bus traffic"
check_stack "second start"
log "done in $((SECONDS - started)) s (before teardown)"

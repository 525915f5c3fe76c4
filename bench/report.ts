export interface SetupSummary {
  name: string;
  deliveredPerSec: number;
  cpuUsPerMsg: number;
  /** write syscalls of all server processes per delivered message (the robust half of the CPU figure). */
  writesPerMsg: number;
  deliveryRatio: number;
  p50: number;
  p99: number;
  remoteP99: number;
  rssPerConn: number | undefined;
  runs: object[];
}

export interface Summary {
  date: string;
  quick: boolean;
  params: {
    runs: number;
    clients: number;
    loadProcesses: number;
    window: number;
    rooms: number;
    saturateMs: number;
    steadyRate: number;
    steadyMs: number;
    idleConnections: number;
    idleProcesses: number;
  };
  machine: { cpus: number; model: string; memGiB: number };
  node: string;
  seconds: number;
  setups: SetupSummary[];
}

const TARGETS = { singleVsRaw: 1.0, singleVsRawBatched: 1.25, cluster2VsSingle: 1.1, remoteP99Ms: 10, rssVsRaw: 1.5 };

const MISSING: SetupSummary = {
  name: "missing",
  deliveredPerSec: NaN,
  cpuUsPerMsg: NaN,
  writesPerMsg: NaN,
  deliveryRatio: NaN,
  p50: NaN,
  p99: NaN,
  remoteP99: NaN,
  rssPerConn: NaN,
  runs: [],
};

// A setup left out of the run (--setups) shows as "–" in the ratios.
function find(summary: Summary, name: string): SetupSummary {
  return summary.setups.find((s) => s.name === name) ?? MISSING;
}

export function ratios(summary: Summary) {
  const raw = find(summary, "raw-ws");
  const rawBatched = find(summary, "raw-ws-batched");
  const single = find(summary, "single");
  return {
    singleVsRaw: single.cpuUsPerMsg / raw.cpuUsPerMsg,
    singleVsRawBatched: single.cpuUsPerMsg / rawBatched.cpuUsPerMsg,
    writesSingleVsRawBatched: single.writesPerMsg / rawBatched.writesPerMsg,
    cluster2VsSingle: find(summary, "cluster-2").cpuUsPerMsg / single.cpuUsPerMsg,
    cluster3VsSingle: find(summary, "cluster-3").cpuUsPerMsg / single.cpuUsPerMsg,
    rssVsRaw: (single.rssPerConn ?? NaN) / (raw.rssPerConn ?? NaN),
    cluster2RemoteP99: find(summary, "cluster-2").remoteP99,
    cluster3RemoteP99: find(summary, "cluster-3").remoteP99,
  };
}

const f = (n: number | undefined, digits = 2) => (n === undefined || Number.isNaN(n) ? "–" : n.toFixed(digits));
const verdict = (ok: boolean) => (ok ? "met" : "**missed**");

export function renderTable(summary: Summary): string {
  const rows = summary.setups.map(
    (s) =>
      `| ${s.name} | ${Math.round(s.deliveredPerSec).toLocaleString("en-US")} | ${f(s.cpuUsPerMsg)} | ${f(s.writesPerMsg, 3)} | ` +
      `${f(s.deliveryRatio * 100)} % | ${f(s.p50)} | ${f(s.p99)} | ${s.name.includes("cluster") ? f(s.remoteP99) : "–"} | ` +
      `${s.rssPerConn === undefined ? "–" : f(s.rssPerConn / 1024)} |`,
  );
  const r = ratios(summary);
  return [
    "| setup | delivered msg/s | server CPU µs / delivered msg | server writes / delivered msg | delivered | p50 ms | p99 ms | cross-replica p99 ms | RSS KiB / idle conn |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
    "",
    "| ratio | measured | target | |",
    "| --- | ---: | ---: | --- |",
    `| single / raw-ws (CPU per delivered message) | ${f(r.singleVsRaw)} | ≤ ${TARGETS.singleVsRaw.toFixed(2)} | ${verdict(r.singleVsRaw <= TARGETS.singleVsRaw)} |`,
    `| single / raw-ws-batched (CPU per delivered message) | ${f(r.singleVsRawBatched)} | ≤ ${TARGETS.singleVsRawBatched.toFixed(2)} | ${verdict(r.singleVsRawBatched <= TARGETS.singleVsRawBatched)} |`,
    `| single / raw-ws-batched (writes per delivered message) | ${f(r.writesSingleVsRawBatched)} | – | |`,
    `| cluster-2 / single | ${f(r.cluster2VsSingle)} | ≤ ${TARGETS.cluster2VsSingle.toFixed(2)} | ${verdict(r.cluster2VsSingle <= TARGETS.cluster2VsSingle)} |`,
    `| cluster-3 / single | ${f(r.cluster3VsSingle)} | – | |`,
    `| cross-replica room message p99 (cluster-2 / cluster-3) | ${f(r.cluster2RemoteP99)} / ${f(r.cluster3RemoteP99)} ms | ≤ ${TARGETS.remoteP99Ms} ms | ${verdict(Math.max(r.cluster2RemoteP99, r.cluster3RemoteP99) <= TARGETS.remoteP99Ms)} |`,
    `| RSS per idle connection, single / raw-ws | ${f(r.rssVsRaw)} | ≤ ${TARGETS.rssVsRaw.toFixed(2)} | ${verdict(r.rssVsRaw <= TARGETS.rssVsRaw)} |`,
  ].join("\n");
}

/** Two bar panels: CPU per delivered message, and p99 latency. Plain SVG, no dependencies. */
export function renderChart(summary: Summary): string {
  const panels = [
    { title: "server CPU µs per delivered message (lower is better)", value: (s: SetupSummary) => s.cpuUsPerMsg },
    { title: "p99 latency at the steady rate, ms (lower is better)", value: (s: SetupSummary) => s.p99 },
  ];
  const width = 640;
  const barH = 22;
  const panelH = 40 + summary.setups.length * (barH + 8);
  const parts: string[] = [];
  panels.forEach((panel, p) => {
    const top = p * (panelH + 10);
    const max = Math.max(...summary.setups.map(panel.value));
    parts.push(`<text x="10" y="${top + 24}" font-size="14" font-weight="bold">${panel.title}</text>`);
    summary.setups.forEach((s, i) => {
      const y = top + 36 + i * (barH + 8);
      const w = Math.max(1, (panel.value(s) / max) * (width - 250));
      const color = s.name.startsWith("raw-ws") ? "#999" : "#2a6fdb";
      parts.push(`<text x="10" y="${y + 16}" font-size="13">${s.name}</text>`);
      parts.push(`<rect x="120" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"/>`);
      parts.push(`<text x="${(126 + w).toFixed(1)}" y="${y + 16}" font-size="13">${f(panel.value(s))}</text>`);
    });
  });
  const height = panels.length * (panelH + 10);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${parts.join("\n")}
</svg>
`;
}

export function renderDoc(summary: Summary, table: string, analysis: string): string {
  const p = summary.params;
  return `# Benchmarks

Measured ${summary.date.slice(0, 10)} by \`npm run bench -- --publish\` (${summary.seconds} s), on ${summary.machine.cpus} cores
(${summary.machine.model}), ${summary.machine.memGiB} GiB, Node ${summary.node}. The machine is shared and noisy and the
load generator competes with the servers for the 2 cores, so every figure is the **median of ${p.runs} runs**, all setups
in **one run**, and the comparisons are **ratios**.

![CPU per delivered message and p99 latency per setup](benchmark-chart.svg)

${table}

## Setups

- **raw-ws**: a minimal \`ws\` server (\`bench/servers/raw-ws.ts\`) that writes every frame it receives to every client,
  once each: the physical-limit proxy.
- **raw-ws-batched**: the same minimal server written the way ours writes under fan-out
  (\`bench/servers/raw-ws-batched.ts\`): each message framed once for all its recipients, each recipient's frames
  queued and written at the end of the tick inside one cork of its TCP socket (one writev per socket per tick). The
  floor for our single replica's cost per delivered message.
- **single**: our server, one replica, every feature on: zod validation, room membership checks, JSON logs at \`info\`,
  Prometheus metrics (counted per event; the bench does not scrape).
- **vanilla** (only with \`--setups=vanilla,…\`): Socket.IO 4 as documented, in-memory adapter, the same events,
  nothing else (\`bench/servers/vanilla-socketio.ts\`).
- **vanilla-cluster-2**, **vanilla-cluster-3**: vanilla with \`@socket.io/redis-adapter\`, one replica per process.
  **vanilla-rtt-cluster-3**: the same in the shape of ours: a room message's publish leaves at once, and the members
  on the sender's replica get it after one Redis round trip (a \`PING\` written with the publish), as ours get it
  from the append's reply. The structural price of storing before delivering, apart from everything else ours
  does (chat workload only).
- **cluster-2**, **cluster-3**: our replicas + \`redis-server\`, clients spread evenly over the replicas, the publisher
  on replica 1. Server CPU is the sum over the replicas **and Redis**.

Every server runs as in production, without a TypeScript loader in the process: ours from its compiled \`dist/\`
(built by the bench, baseline worktrees too), the baseline servers through Node's own type stripping.
\`BENCH_RUNTIME=tsx\` runs them all through the tsx loader instead, as every run published before 2026-11-26 did.

## Workload

- ${p.clients} websocket clients from ${p.loadProcesses} load processes (\`bench/load.ts\`, speaking Socket.IO through the same
  protocol module as the k6 scripts), ~100-byte payloads.
- Saturation: one publisher sends \`broadcast\` (raw-ws: a frame) with at most ${p.window} messages in flight, for
  ${p.saturateMs / 1000} s, then until every copy is delivered. Delivered messages/s, and server CPU time (user+sys from
  \`/proc/<pid>/stat\`) per delivered message. Server writes per delivered message count the write-family syscalls
  of the server processes (\`syscw\` in \`/proc/<pid>/io\`): less noisy than CPU time, and most of the system time.
- Steady rate: every client is in one of ${p.rooms} rooms of ${p.clients / p.rooms} (the publisher in all); ${p.steadyRate} room
  messages/s in total, round-robin over the rooms, for ${p.steadyMs / 1000} s (raw-ws: the same rooms in its minimal protocol);
  end-to-end latency from the send time in the payload. Cross-replica p99 counts only clients on another replica
  than the publisher.
- Memory: RSS growth of the server process per idle connection, ${p.idleConnections.toLocaleString("en-US")} connections
  from ${p.idleProcesses} load processes.

## Reproduce

\`\`\`sh
npm ci
apt-get install -y redis-server      # the cluster setups need it
npm run bench -- --quick             # under 3 minutes; prints the table, writes bench/results/latest.json
npm run bench -- --publish           # the full run; rewrites this page and the chart
npm run bench:hops                   # the latency floor, hop by hop (about 20 s)
npm run bench:heap                   # V8 heap per idle connection: raw ws, vanilla Socket.IO, ours
npm run bench:fsync                  # room-log appends under appendfsync everysec vs always (about 20 s)
npm run bench -- --workload=chat --baseline=42bf97f   # chat rate, this tree against another revision, interleaved
npm run bench:k6                     # the chat rate with the real k6 through nginx: ours vs a vanilla cluster (about 5 min)
BENCH_RUNTIME=tsx npm run bench      # every server through the tsx loader instead of compiled JavaScript
BENCH_NODE_FLAGS=--max-semi-space-size=1 npm run bench -- --setups=raw-ws,single   # V8 flags on the servers
\`\`\`

${analysis}`;
}

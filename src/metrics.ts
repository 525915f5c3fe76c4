import { monitorEventLoopDelay } from "node:perf_hooks";
import { isClientEvent, type ErrorCode } from "./contract.js";

/**
 * Prometheus metrics for one app, in the text exposition format, without a client library: a handful
 * of counters and gauges read at scrape time. Counting an event is one increment on a cell resolved
 * when the listener is built; nothing on the per-recipient path touches metrics.
 */

interface Cell {
  value: number;
}

class Counter {
  private readonly cells = new Map<string, Cell & { labels: string }>();

  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly labelNames: readonly string[] = [],
  ) {}

  /** The cell for one combination of label values, created on first use. */
  cell(...values: string[]): Cell {
    const key = values.join("\u0000");
    let cell = this.cells.get(key);
    if (!cell) {
      cell = { labels: renderLabels(this.labelNames, values), value: 0 };
      this.cells.set(key, cell);
    }
    return cell;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const cell of this.cells.values()) out.push(`${this.name}${cell.labels} ${cell.value}`);
  }
}

interface Gauge {
  name: string;
  help: string;
  read(): Array<[labels: string, value: number]>;
}

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

function renderLabels(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  return `{${names.map((name, i) => `${name}="${escapeLabel(values[i] ?? "")}"`).join(",")}}`;
}

/** Event names come from clients: anything outside the contract is counted as "unknown" (bounded labels). */
const eventLabel = (event: string): string => (isClientEvent(event) ? event : "unknown");

export interface MetricsSources {
  replicaId: string;
  version: string;
  connections(): number;
  /** 1 when this replica can serve (not shutting down, Redis connected when configured). */
  ready(): boolean;
  redisConnected?(): boolean;
}

export interface Metrics {
  /** The counter cell of one client event, for its listener to increment. */
  eventReceived(event: string): Cell;
  eventRejected(event: string, code: ErrorCode): void;
  connected(): void;
  disconnected(reason: string): void;
  postCreated(): void;
  /** A counter registered by another module (rendered with the others); its cells are incremented in place. */
  counter(name: string, help: string, labelNames?: readonly string[]): { cell(...values: string[]): Cell };
  /** The exposition text; also resets the event-loop delay window. */
  render(): string;
  close(): void;
}

export function createMetrics(sources: MetricsSources): Metrics {
  const received = new Counter("realtime_events_received_total", "Client events received, by event.", ["event"]);
  const rejected = new Counter(
    "realtime_events_rejected_total",
    "Client events answered with an error, by event and code.",
    ["event", "code"],
  );
  const connects = new Counter("realtime_connections_opened_total", "Socket.IO connections opened.");
  const disconnects = new Counter("realtime_connections_closed_total", "Socket.IO connections closed, by reason.", [
    "reason",
  ]);
  const posts = new Counter("realtime_posts_created_total", "Posts created through POST /api/posts.");
  const registered: Counter[] = [];
  const opened = connects.cell();
  const created = posts.cell();

  // Event-loop delay is what a slow handler, a GC pause or CPU starvation looks like from inside.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const seconds = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);

  const gauges: Gauge[] = [
    {
      name: "realtime_replica_info",
      help: "This replica's id and version.",
      read: () => [[renderLabels(["replica", "version"], [sources.replicaId, sources.version]), 1]],
    },
    {
      name: "realtime_connections",
      help: "Socket.IO connections open now.",
      read: () => [["", sources.connections()]],
    },
    { name: "realtime_ready", help: "1 when /readyz answers 200.", read: () => [["", sources.ready() ? 1 : 0]] },
    {
      name: "realtime_event_loop_delay_seconds",
      help: "Event-loop delay since the previous scrape.",
      read: () => [
        ['{quantile="0.5"}', seconds(loopDelay.percentile(50))],
        ['{quantile="0.99"}', seconds(loopDelay.percentile(99))],
        ['{quantile="1"}', seconds(loopDelay.max)],
      ],
    },
    {
      name: "process_resident_memory_bytes",
      help: "Resident set size.",
      read: () => [["", process.memoryUsage.rss()]],
    },
    {
      name: "nodejs_heap_used_bytes",
      help: "V8 heap in use.",
      read: () => [["", process.memoryUsage().heapUsed]],
    },
    {
      name: "process_cpu_seconds_total",
      help: "User and system CPU time.",
      read: () => {
        const { user, system } = process.cpuUsage();
        return [["", (user + system) / 1e6]];
      },
    },
  ];

  const { redisConnected } = sources;
  if (redisConnected) {
    gauges.push({
      name: "realtime_redis_connected",
      help: "1 when both Redis connections (publish and subscribe) are ready.",
      read: () => [["", redisConnected() ? 1 : 0]],
    });
  }

  return {
    eventReceived: (event) => received.cell(eventLabel(event)),
    eventRejected: (event, code) => void rejected.cell(eventLabel(event), code).value++,
    connected: () => void opened.value++,
    disconnected: (reason) => void disconnects.cell(reason).value++,
    postCreated: () => void created.value++,
    counter(name, help, labelNames = []) {
      const counter = new Counter(name, help, labelNames);
      registered.push(counter);
      return counter;
    },
    render() {
      const out: string[] = [];
      for (const counter of [received, rejected, connects, disconnects, posts, ...registered]) counter.render(out);
      for (const gauge of gauges) {
        const type = gauge.name.endsWith("_total") ? "counter" : "gauge";
        out.push(`# HELP ${gauge.name} ${gauge.help}`, `# TYPE ${gauge.name} ${type}`);
        for (const [labels, value] of gauge.read()) out.push(`${gauge.name}${labels} ${value}`);
      }
      loopDelay.reset();
      return out.join("\n") + "\n";
    },
    close: () => loopDelay.disable(),
  };
}

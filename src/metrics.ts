import { monitorEventLoopDelay } from "node:perf_hooks";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { isClientEvent, type ErrorCode } from "./contract.js";

/**
 * Prometheus metrics for one app, rendered by prom-client (one Registry per app, Node's default metrics from a
 * process-wide one). The hot path stays what it was: counting an event is one increment on a cell resolved
 * when the listener is built (`cell.value++`, about 1.5 ns); prom-client counters read those cells when
 * scraped (`collect()`), rather than hashing their labels on every `inc()` (about 65 ns). Histograms are
 * prom-client's own, observed through label children bound once; event handling time is timed on one event
 * in TIMING_SAMPLE_EVERY, room delivery latency on the sampled entries the Redis log carries a send time on.
 * Measured cost: `npm run bench:metrics` (bench/metrics-cost.ts). Nothing on the per-recipient path touches
 * metrics.
 */

export interface Cell {
  value: number;
}

/** One event of this many (per event name, per replica) has its handling time observed. */
export const TIMING_SAMPLE_EVERY = 8;

/** Buckets of event handling time: most events are answered within a millisecond, stored ones wait on Redis. */
const HANDLING_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];
/** Buckets of room delivery latency (append on one replica → live entry read on another). */
const DELIVERY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Counter cells keyed by label values, exposed through a prom-client Counter that copies them when scraped:
 * `cell(...)` is called once per listener, the increment itself is a plain field update.
 */
class Cells {
  private readonly cells = new Map<string, Cell & { labels: Record<string, string> }>();

  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly labelNames: readonly string[] = [],
  ) {
    const cells = this.cells;
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const cell of cells.values()) this.inc(cell.labels, cell.value);
      },
    });
  }

  /** The cell for one combination of label values, created on first use. */
  cell(...values: string[]): Cell {
    const key = values.join("\u0000");
    let cell = this.cells.get(key);
    if (!cell) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i] ?? ""));
      cell = { labels, value: 0 };
      this.cells.set(key, cell);
    }
    return cell;
  }
}

/** Event names come from clients: anything outside the contract is counted as "unknown" (bounded labels). */
const eventLabel = (event: string): string => (isClientEvent(event) ? event : "unknown");

/**
 * How often the event-loop delay is sampled (both monitors: prom-client's `nodejs_eventloop_lag_*` and ours). Each
 * sample is a timer that wakes the process: at 10 ms an idle replica woke 100 times a second and spent 4.9 ms of CPU
 * per second on it (vanilla Socket.IO: none), which at chat rates is several µs per delivered message. At 100 ms a
 * stall of 100 ms or more is always seen, a shorter one when a sample falls due during it.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

// Node's default metrics describe the process, not an app: collected once per process (tests run several apps
// in one), into a registry merged with each app's at scrape time.
let processRegistry: Registry | undefined;
function defaultMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }
  return processRegistry;
}

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
  /** Observes one sampled handling time (seconds) of `event`: bound once per listener. */
  eventHandled(event: string): (seconds: number) => void;
  eventRejected(event: string, code: ErrorCode): void;
  connected(): void;
  disconnected(reason: string): void;
  postCreated(): void;
  /** One sampled room entry: appended by a replica, read from the live feed here this many seconds later. */
  roomDelivered(seconds: number): void;
  /** A counter registered by another module (rendered with the others); its cells are incremented in place. */
  counter(name: string, help: string, labelNames?: readonly string[]): { cell(...values: string[]): Cell };
  /** The exposition text (Prometheus text format 0.0.4); also resets the event-loop delay window. */
  render(): Promise<string>;
  readonly contentType: string;
  close(): void;
}

export function createMetrics(sources: MetricsSources): Metrics {
  const registry = new Registry();
  const counter = (name: string, help: string, labelNames: readonly string[] = []) =>
    new Cells(registry, name, help, labelNames);

  const received = counter("realtime_events_received_total", "Client events received, by event.", ["event"]);
  const rejected = counter(
    "realtime_events_rejected_total",
    "Client events answered with an error, by event and code.",
    ["event", "code"],
  );
  const opened = counter("realtime_connections_opened_total", "Socket.IO connections opened.").cell();
  const disconnects = counter("realtime_connections_closed_total", "Socket.IO connections closed, by reason.", [
    "reason",
  ]);
  const created = counter("realtime_posts_created_total", "Posts created through POST /api/posts.").cell();

  const handling = new Histogram({
    name: "realtime_event_handling_seconds",
    help: `Time from an event's arrival to its answer (ack sent), by event; one event in ${TIMING_SAMPLE_EVERY} is timed.`,
    labelNames: ["event"],
    buckets: HANDLING_BUCKETS,
    registers: [registry],
  });
  const delivery = new Histogram({
    name: "realtime_room_delivery_seconds",
    help: "Room message from its append on the sending replica to its live delivery on this one (sampled entries; wall clocks, so skew between hosts adds to it).",
    buckets: DELIVERY_BUCKETS,
    registers: [registry],
  });

  new Gauge({
    name: "realtime_replica_info",
    help: "This replica's id and version.",
    labelNames: ["replica", "version"],
    registers: [registry],
  }).set({ replica: sources.replicaId, version: sources.version }, 1);
  new Gauge({
    name: "realtime_connections",
    help: "Socket.IO connections open now.",
    registers: [registry],
    collect() {
      this.set(sources.connections());
    },
  });
  new Gauge({
    name: "realtime_ready",
    help: "1 when /readyz answers 200.",
    registers: [registry],
    collect() {
      this.set(sources.ready() ? 1 : 0);
    },
  });

  // Event-loop delay is what a slow handler, a GC pause or CPU starvation looks like from inside.
  const loopDelay = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLE_MS });
  loopDelay.enable();
  const seconds = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
  new Gauge({
    name: "realtime_event_loop_delay_seconds",
    help: "Event-loop delay since the previous scrape.",
    labelNames: ["quantile"],
    registers: [registry],
    collect() {
      this.set({ quantile: "0.5" }, seconds(loopDelay.percentile(50)));
      this.set({ quantile: "0.99" }, seconds(loopDelay.percentile(99)));
      this.set({ quantile: "1" }, seconds(loopDelay.max));
      loopDelay.reset();
    },
  });
  new Gauge({
    name: "nodejs_heap_used_bytes",
    help: "V8 heap in use.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });

  const { redisConnected } = sources;
  if (redisConnected) {
    new Gauge({
      name: "realtime_redis_connected",
      help: "1 when both Redis connections (publish and subscribe) are ready.",
      registers: [registry],
      collect() {
        this.set(redisConnected() ? 1 : 0);
      },
    });
  }

  const processMetrics = defaultMetrics();

  return {
    eventReceived: (event) => received.cell(eventLabel(event)),
    eventHandled(event) {
      const labels = { event: eventLabel(event) };
      // Zeroed at once: every event's series exists from start-up, for dashboards and rate().
      handling.zero(labels);
      const child = handling.labels(labels);
      return (value) => child.observe(value);
    },
    eventRejected: (event, code) => void rejected.cell(eventLabel(event), code).value++,
    connected: () => void opened.value++,
    disconnected: (reason) => void disconnects.cell(reason).value++,
    postCreated: () => void created.value++,
    roomDelivered: (value) => delivery.observe(Math.max(0, value)),
    counter,
    // Merged at each scrape: other modules register counters after this.
    render: () => Registry.merge([registry, processMetrics]).metrics(),
    contentType: registry.contentType,
    close: () => loopDelay.disable(),
  };
}

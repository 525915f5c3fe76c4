import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProcessClusterOnFreePorts, waitForExit, type ProcessCluster } from "../scripts/cluster/processes.js";
import { freePort } from "./support/redis.js";
import { connect, sleep, type ClientSocket } from "./support/server.js";

/**
 * The monitoring setup for real: Debian's `prometheus` scrapes the replicas of a process cluster (the
 * `npm run cluster` machinery, each replica on its own METRICS_PORT), `up == 1` for every replica through the
 * HTTP API, and every query of the provisioned Grafana dashboard runs against that Prometheus without error
 * and names only metrics it has. Grafana itself is not run here (not in Debian, no registry).
 */

const ROOT = new URL("../", import.meta.url).pathname;
const DASHBOARD = join(ROOT, "deploy/grafana/dashboards/realtime.json");
const DATASOURCE = join(ROOT, "deploy/grafana/provisioning/datasources/prometheus.yml");

function binary(name: string): string {
  for (const path of [`/usr/bin/${name}`, `/usr/local/bin/${name}`]) if (existsSync(path)) return path;
  const which = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error(`${name} not found: install Debian's prometheus package (apt-get install -y prometheus)`);
}

function promtoolCheck(file: string): void {
  const run = spawnSync(binary("promtool"), ["check", "config", file], { encoding: "utf8" });
  expect(run.status, `promtool check config ${file}\n${run.stdout}${run.stderr}`).toBe(0);
}

interface Target {
  refId: string;
  expr: string;
  datasource?: { uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; query: { query: string } | string }> };
}

/** Grafana's variables, as Grafana would expand them for a query. */
const expand = (expr: string) =>
  expr
    .replace(/\$__rate_interval/g, "30s")
    .replace(/\$__interval/g, "5s")
    .replace(/\$job/g, ".*");

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "inf", "nan"]);

/** The metric names a PromQL expression selects (identifiers that are neither functions, labels nor keywords). */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const match of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = match;
    if (call || KEYWORDS.has((name as string).toLowerCase())) continue;
    // A number's exponent (1e9) is not a name.
    const before = stripped[(match.index ?? 0) - 1];
    if (before && /[0-9.]/.test(before)) continue;
    names.add(name as string);
  }
  return [...names];
}

describe("metricNames", () => {
  it("finds the selected metrics, not the functions, labels or keywords", () => {
    expect(
      metricNames(
        'sum by (replica) (rate(a_total{job=~".*", code="x y"}[1m]) * on (instance) group_left (replica) b_info) / 1e9',
      ),
    ).toEqual(["a_total", "b_info"]);
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(h_bucket{le!="+Inf"}[5m])))')).toEqual(["h_bucket"]);
  });
});

describe("Prometheus and Grafana configuration", () => {
  it("the compose (Docker DNS), local and Kubernetes scrape configs are valid for promtool", () => {
    promtoolCheck(join(ROOT, "deploy/prometheus/prometheus.yml"));
    promtoolCheck(join(ROOT, "deploy/prometheus/prometheus-local.yml"));
    // Debian builds Prometheus without Kubernetes discovery: check the rest of that file (relabelling included)
    // with the discovery block swapped for a static target.
    const k8s = readFileSync(join(ROOT, "deploy/prometheus/prometheus-k8s.yml"), "utf8");
    expect(k8s).toMatch(/kubernetes_sd_configs:\n\s+- role: pod\n/);
    expect(k8s).toMatch(/__meta_kubernetes_pod_annotation_prometheus_io_scrape/);
    const swapped = k8s.replace(
      /kubernetes_sd_configs:\n(?:\s+(?:-|#).*\n)+(?=\s+relabel_configs:)/,
      'static_configs:\n      - targets: ["127.0.0.1:9464"]\n',
    );
    expect(swapped).not.toMatch(/kubernetes_sd_configs/);
    const dir = mkdtempSync(join(tmpdir(), "rt-promtool-"));
    try {
      writeFileSync(join(dir, "k8s.yml"), swapped);
      promtoolCheck(join(dir, "k8s.yml"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the dashboard JSON is well formed and every panel queries the provisioned datasource", () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
    const uid = /uid: (\S+)/.exec(readFileSync(DATASOURCE, "utf8"))?.[1];
    expect(uid).toBe("prometheus");
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.datasource?.uid, panel.title).toBe(uid);
      expect(panel.gridPos.w, panel.title).toBeGreaterThan(0);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      const targets = panel.targets ?? [];
      expect(targets.length, panel.title).toBeGreaterThan(0);
      expect(new Set(targets.map((t) => t.refId)).size, panel.title).toBe(targets.length);
      for (const target of targets) expect(metricNames(target.expr).length, target.expr).toBeGreaterThan(0);
    }
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join("\n");
    for (const subject of [
      "connections per replica",
      "events /s",
      "rejections",
      "delivery latency",
      "redis",
      "event-loop lag",
    ]) {
      expect(titles).toContain(subject);
    }
  });
});

describe("Prometheus scrapes every replica of a process cluster", () => {
  let cluster: ProcessCluster | undefined;
  let prometheus: ChildProcess | undefined;
  let api = "";
  let dir = "";
  const clients: ClientSocket[] = [];

  const query = async (expr: string) => {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    };
    return { httpStatus: res.status, ...body };
  };
  const names = async () => {
    const body = (await (await fetch(`${api}/api/v1/label/__name__/values`)).json()) as { data: string[] };
    return new Set(body.data);
  };
  const until = async (check: () => Promise<boolean>, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(250);
    }
  };

  beforeAll(async () => {
    const bin = binary("prometheus");
    cluster = await startProcessClusterOnFreePorts({ replicas: 3, logLevel: "warn" });
    dir = mkdtempSync(join(tmpdir(), "rt-prometheus-"));
    const targets = cluster.metricsUrls.map((url) => new URL(url).host);
    writeFileSync(
      join(dir, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "scrape_configs:",
        "  - job_name: realtime",
        "    static_configs:",
        `      - targets: ${JSON.stringify(targets)}`,
        "",
      ].join("\n"),
    );
    const promPort = await freePort();
    api = `http://127.0.0.1:${promPort}`;
    prometheus = spawn(
      bin,
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        "--log.level=warn",
      ],
      { stdio: "ignore" },
    );
    await until(
      async () => (await fetch(`${api}/-/ready`).catch(() => undefined))?.status === 200,
      20_000,
      "prometheus ready",
    );

    // Traffic through nginx: events, a rejection, room messages (every replica with a member observes the
    // sampled deliveries), and a disconnect.
    for (let i = 0; i < 6; i++) clients.push(await connect(cluster.url));
    for (const client of clients) await client.emitWithAck("join-room", "metrics");
    for (let i = 0; i < 24; i++) {
      const client = clients[i % clients.length] as ClientSocket;
      await client.emitWithAck("room-message", { room: "metrics", message: `m${i}` });
      await client.emitWithAck("get-time");
    }
    await clients[0]?.emitWithAck("join-room", "bad room!");
    clients.pop()?.disconnect();
  }, 90_000);

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    if (prometheus) {
      prometheus.kill("SIGTERM");
      await waitForExit(prometheus, 10_000);
    }
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("answers `up` with one series per replica, each 1", { timeout: 60_000 }, async () => {
    const instances = (cluster as ProcessCluster).metricsUrls.map((url) => new URL(url).host).sort();
    let last: Awaited<ReturnType<typeof query>> | undefined;
    await until(
      async () => {
        last = await query("up");
        const result = last.data?.result ?? [];
        return result.length === instances.length && result.every((s) => s.value[1] === "1");
      },
      30_000,
      "up == 1 for every replica",
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`);
    });
    const result = last?.data?.result ?? [];
    expect(result.map((s) => s.metric.instance).sort()).toEqual(instances);
    expect(result.every((s) => s.metric.job === "realtime" && s.value[1] === "1")).toBe(true);
    expect((await query("up == 1")).data?.result.length).toBe(instances.length);
  });

  it("runs every dashboard query without error, naming only metrics Prometheus has", { timeout: 60_000 }, async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    const templateQueries = dashboard.templating.list.map((v) =>
      typeof v.query === "string" ? v.query : v.query.query,
    );
    const wanted = new Set([
      ...exprs.flatMap((e) => metricNames(expand(e.expr))),
      ...templateQueries.map((q) => /label_values\((\w+)/.exec(q)?.[1] as string),
    ]);
    expect(wanted.size).toBeGreaterThan(10);
    // Every name of the dashboard appears once the traffic's series have been scraped.
    let known = new Set<string>();
    await until(
      async () => {
        known = await names();
        return [...wanted].every((n) => known.has(n));
      },
      30_000,
      "every dashboard metric scraped",
    ).catch(() => {
      throw new Error(
        `metrics of the dashboard Prometheus does not have: ${[...wanted].filter((n) => !known.has(n)).join(", ")}`,
      );
    });
    // rate() needs two samples after the traffic.
    await sleep(2500);
    for (const { panel, expr } of exprs) {
      const answer = await query(expand(expr));
      expect(answer.status, `${panel}: ${expr}: ${answer.error}`).toBe("success");
      expect(answer.httpStatus).toBe(200);
    }
    // The joins and histograms carry data, not only valid syntax.
    const perReplica = exprs.find((e) => e.panel === "Connections per replica") as { expr: string };
    const replicas = (await query(expand(perReplica.expr))).data?.result ?? [];
    expect(replicas.map((s) => s.metric.replica).sort()).toEqual([...(cluster as ProcessCluster).replicaIds].sort());
    expect(replicas.reduce((sum, s) => sum + Number(s.value[1]), 0)).toBe(5);
    const deliveries = await query("sum(realtime_room_delivery_seconds_count)");
    expect(Number(deliveries.data?.result[0]?.value[1])).toBeGreaterThanOrEqual(1);
    const rejected = await query('sum(realtime_events_rejected_total{code="INVALID_PAYLOAD"})');
    expect(Number(rejected.data?.result[0]?.value[1])).toBe(1);
    const handled = await query('sum(realtime_event_handling_seconds_count{event="room-message"})');
    expect(Number(handled.data?.result[0]?.value[1])).toBeGreaterThanOrEqual(1);
  });
});

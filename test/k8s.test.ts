// deploy/k8s, checked offline: rendered with the real `kubectl kustomize` (kustomize v5 is built into kubectl),
// every object validated against the Kubernetes OpenAPI schemas (kubernetes-models), then the facts the cluster
// depends on: probes, drain, stickiness through the headless Service, nginx's own configuration, metrics, security.
// No cluster is needed; what only a cluster can show (scheduling, DNS, the load balancer) is in deploy/k8s/README.md.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import { Namespace } from "kubernetes-models/v1/Namespace";
import type { IPodTemplateSpec } from "kubernetes-models/v1/PodTemplateSpec";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../src/config.js";

const BASE = "deploy/k8s";
const REDIS_EXAMPLE = "deploy/k8s/examples/redis";
const TLS_COMPONENT = "deploy/k8s/components/tls";
const SECRET_EXAMPLE = "deploy/k8s/redis-secret.example.yaml";
const NAMESPACE = "realtime";

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string };
}

interface ModelClass<T> {
  apiVersion: string;
  kind: string;
  new (data: never): T;
}

/** Every kind the manifests may hold, with its schema. A kind missing here fails the run: add its model. */
const MODELS: ModelClass<{ validate(): void }>[] = [
  Namespace,
  ConfigMap,
  Secret,
  Service,
  Deployment,
  StatefulSet,
  PodDisruptionBudget,
  HorizontalPodAutoscaler,
];

const id = (m: Manifest) => `${m.kind}/${m.metadata?.name}`;

function parseManifests(text: string, source: string): Manifest[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join("; ")}`);
      return doc.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null);
}

function kustomize(dir: string): Manifest[] {
  let out: string;
  try {
    out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT")
      throw new Error("kubectl not found: this test renders deploy/k8s with `kubectl kustomize`");
    throw new Error(`kubectl kustomize ${dir} failed:\n${e.stderr ?? e.message}`);
  }
  return parseManifests(out, `kubectl kustomize ${dir}`);
}

/** Validates against the Kubernetes schema of its kind; throws naming the object and the offending field. */
function validate(m: Manifest): void {
  const Model = MODELS.find((c) => c.apiVersion === m.apiVersion && c.kind === m.kind);
  if (!Model) throw new Error(`${id(m)}: no schema for ${m.apiVersion} ${m.kind} in test/k8s.test.ts MODELS`);
  try {
    new Model(m as never).validate();
  } catch (err) {
    throw new Error(`${id(m)} does not validate: ${(err as Error).message}`);
  }
}

function all<T>(manifests: Manifest[], Model: ModelClass<T>): T[] {
  return manifests.filter((m) => m.apiVersion === Model.apiVersion && m.kind === Model.kind).map((m) => m as T);
}

function one<T>(manifests: Manifest[], Model: ModelClass<T>, name: string): T {
  const found = manifests.filter(
    (m) => m.apiVersion === Model.apiVersion && m.kind === Model.kind && m.metadata?.name === name,
  );
  if (found.length !== 1) throw new Error(`expected one ${Model.kind}/${name}, found ${found.length}`);
  return found[0] as T;
}

/** Renders an overlay of the base written to a temporary directory (kustomize wants relative paths). */
function kustomizeOverlay(body: (base: string) => string): Manifest[] {
  const dir = mkdtempSync(join(tmpdir(), "k8s-overlay-"));
  try {
    writeFileSync(join(dir, "kustomization.yaml"), body(relative(dir, resolve(BASE))));
    return kustomize(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

function containerPort(container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === "number") return container.ports?.some((p) => p.containerPort === port) ? port : undefined;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** The env a container gets: literal values, and secretKeyRef values looked up in the given Secrets. */
function containerEnv(container: IContainer, secrets: Secret[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      const secret = secrets.find((s) => s.metadata?.name === ref.name);
      const value = secret?.stringData?.[ref.key];
      if (value === undefined) throw new Error(`${e.name}: no key ${ref.key} in an example Secret ${ref.name}`);
      env[e.name] = value;
    } else {
      if (e.valueFrom) throw new Error(`${e.name}: only literal values and secretKeyRef are resolved here`);
      env[e.name] = e.value ?? "";
    }
  }
  return env;
}

/** CPU in cores or memory in bytes, from a Kubernetes quantity ("250m", "1", "512Mi"). */
function quantity(q: string | number | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|k|M|G)?$/.exec(String(q));
  if (!m) throw new Error(`unreadable quantity ${q}`);
  const factor = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ""] ?? 1;
  return Number(m[1]) * factor;
}

function podTemplates(manifests: Manifest[]): [string, IPodTemplateSpec][] {
  const workloads = [...all(manifests, Deployment), ...all(manifests, StatefulSet)];
  return workloads.map((w) => [id(w), w.spec!.template]);
}

const onlyContainer = (template: IPodTemplateSpec): IContainer => {
  const containers = template.spec?.containers ?? [];
  if (containers.length !== 1) throw new Error(`expected one container, found ${containers.length}`);
  return containers[0] as IContainer;
};

let base: Manifest[];
let redisExample: Manifest[];
let exampleSecrets: Secret[];

beforeAll(() => {
  base = kustomize(BASE);
  redisExample = kustomize(REDIS_EXAMPLE);
  exampleSecrets = all(parseManifests(readFileSync(SECRET_EXAMPLE, "utf8"), SECRET_EXAMPLE), Secret);
});

const app = () => one(base, Deployment, "realtime-server");
const appContainer = () => onlyContainer(app().spec!.template);
const appConfig = () => parseConfig(containerEnv(appContainer(), exampleSecrets));
const nginx = () => one(base, Deployment, "realtime-nginx");
const nginxConfigMap = () => {
  const volume = nginx().spec!.template.spec!.volumes?.find((v) => v.name === "config");
  return one(base, ConfigMap, volume?.configMap?.name ?? "(no config volume)");
};

describe("deploy/k8s: the Kubernetes base, rendered offline", () => {
  it("renders with kubectl kustomize and every object validates against the Kubernetes schemas", () => {
    for (const m of [...base, ...redisExample, ...exampleSecrets]) validate(m);
    expect(base.map(id).sort()).toEqual(
      [
        "ConfigMap/" + nginxConfigMap().metadata?.name,
        "Deployment/realtime-nginx",
        "Deployment/realtime-server",
        "HorizontalPodAutoscaler/realtime-server",
        "Namespace/realtime",
        "PodDisruptionBudget/realtime-nginx",
        "PodDisruptionBudget/realtime-server",
        "Service/realtime-nginx",
        "Service/realtime-server",
      ].sort(),
    );
    for (const m of [...base, ...redisExample].filter((m) => m.kind !== "Namespace")) {
      expect(m.metadata?.namespace, id(m)).toBe(NAMESPACE);
    }
    // A schema violation is caught, so the loop above is not vacuous.
    const broken = structuredClone(app()) as unknown as Manifest & { spec: { template: { spec: object } } };
    broken.spec.template.spec = { containers: [{ name: "server", ports: [{ containerPort: "5000" }] }] };
    expect(() => validate(broken)).toThrow(/containerPort must be integer/);
  });

  it("keeps secrets out of the base: REDIS_URL comes from a Secret the base does not create", () => {
    expect(all(base, Secret)).toEqual([]);
    const ref = appContainer().env?.find((e) => e.name === "REDIS_URL")?.valueFrom?.secretKeyRef;
    expect(ref).toMatchObject({ name: "realtime-redis", key: "url" });
    // The example names the Secret and keys the manifests use, with values that are visibly placeholders.
    const [example] = exampleSecrets;
    expect(exampleSecrets).toHaveLength(1);
    expect(example?.metadata?.name).toBe(ref?.name);
    for (const value of Object.values(example?.stringData ?? {})) expect(value).toContain("REPLACE-ME");
    expect(example?.data).toBeUndefined();
  });

  it("configures the app with env the app itself accepts", () => {
    const config = appConfig();
    expect(config.redisUrl).toMatch(/^redis:\/\//);
    expect(config.port).toBe(containerPort(appContainer(), "http"));
  });

  it("probes /readyz for readiness and /healthz for liveness on the app's port", () => {
    const c = appContainer();
    const port = appConfig().port;
    expect(c.readinessProbe?.httpGet?.path).toBe("/readyz");
    expect(containerPort(c, c.readinessProbe?.httpGet?.port)).toBe(port);
    expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(containerPort(c, c.livenessProbe?.httpGet?.port)).toBe(port);
  });

  it("gives the SIGTERM drain its whole shutdown bound before the kill", () => {
    const { drainDelayMs, drainCloseMs, shutdownTimeoutMs } = appConfig().ops;
    const grace = app().spec!.template.spec!.terminationGracePeriodSeconds ?? 30;
    // A preStop hook runs inside the grace period, before SIGTERM: whatever it takes is lost to the drain.
    const preStop = appContainer().lifecycle?.preStop;
    const preStopS = preStop
      ? (preStop.sleep?.seconds ?? Number(/^sleep (\d+)$/.exec(preStop.exec?.command?.join(" ") ?? "")?.[1]))
      : 0;
    expect(preStopS, "a preStop hook other than a plain sleep: account for its time here").not.toBeNaN();
    expect(grace).toBeGreaterThanOrEqual(25);
    expect(grace * 1000 - preStopS * 1000).toBeGreaterThan(shutdownTimeoutMs);
    expect(shutdownTimeoutMs).toBeGreaterThan(drainDelayMs + drainCloseMs);
  });

  it("exposes METRICS_PORT as a named port announced to Prometheus and never through a Service", () => {
    const { metricsPort } = appConfig().ops;
    expect(metricsPort).toBeGreaterThan(0);
    expect(containerPort(appContainer(), "metrics")).toBe(metricsPort);
    expect(app().spec!.template.metadata?.annotations).toMatchObject({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": String(metricsPort),
      "prometheus.io/path": "/metrics",
    });
    for (const svc of all(base, Service)) {
      for (const p of svc.spec?.ports ?? []) {
        expect([p.port, p.targetPort], id(svc)).not.toContain(metricsPort);
        expect(p.targetPort, id(svc)).not.toBe("metrics");
      }
    }
  });

  it("lets a headless Service list every app pod for nginx, ready or not", () => {
    const svc = one(base, Service, "realtime-server");
    expect(svc.spec?.clusterIP).toBe("None");
    expect(svc.spec?.publishNotReadyAddresses).toBe(true);
    expect(matches(svc.spec?.selector, app().spec!.template.metadata?.labels), "selects the app's pods").toBe(true);
    expect(matches(svc.spec?.selector, nginx().spec!.template.metadata?.labels), "selects nginx's pods").toBe(false);
    const [port] = svc.spec?.ports ?? [];
    expect(containerPort(appContainer(), port?.targetPort)).toBe(appConfig().port);
  });

  it("routes nginx to that Service's DNS name, re-resolved through kube-dns", () => {
    const upstream = nginxConfigMap().data?.["upstream.conf"] ?? "";
    const directives = upstream.replace(/#.*$/gm, "");
    const svc = one(base, Service, "realtime-server");
    const fqdn = `${svc.metadata?.name}.${svc.metadata?.namespace}.svc.cluster.local`;
    // One server line, by the full name (nginx's resolver ignores resolv.conf's search list), on the pods' port.
    expect(directives.match(/^\s*server\s.*$/gm)).toEqual([
      `server ${fqdn}:${svc.spec?.ports?.[0]?.port} resolve max_fails=0;`,
    ]);
    expect(directives).toMatch(/^\s*zone app \d+k;$/m);
    expect(directives).toMatch(/^\s*resolver kube-dns\.kube-system\.svc\.cluster\.local valid=\d+s ipv6=off;$/m);
  });

  it("serves nginx the project's own nginx.conf and limits.conf, byte for byte", () => {
    const data = nginxConfigMap().data ?? {};
    const refresh = "deploy/k8s/nginx/ is a copy: cp nginx/nginx.conf nginx/limits.conf deploy/k8s/nginx/";
    expect(data["nginx.conf"] === readFileSync("nginx/nginx.conf", "utf8"), refresh).toBe(true);
    expect(data["limits.conf"] === readFileSync("nginx/limits.conf", "utf8"), refresh).toBe(true);
  });

  it("mounts every file nginx.conf includes beside it in /etc/nginx", () => {
    const data = nginxConfigMap().data ?? {};
    const c = onlyContainer(nginx().spec!.template);
    const includes = [...(data["nginx.conf"] ?? "").matchAll(/^\s*include\s+([^;*]+);/gm)].map((m) => m[1]);
    expect(includes.sort()).toEqual(["limits.conf", "upstream.conf"]);
    for (const file of [...includes, "nginx.conf"]) {
      const mount = c.volumeMounts?.find((m) => m.mountPath === `/etc/nginx/${file}`);
      expect(mount, file).toMatchObject({ name: "config", subPath: file });
      expect(data[file as string], file).toBeDefined();
    }
    expect(c.command).toEqual(["nginx", "-g", "daemon off;"]);
  });

  it("runs two nginx replicas behind a LoadBalancer Service on their port", () => {
    expect(nginx().spec?.replicas).toBe(2);
    const svc = one(base, Service, "realtime-nginx");
    expect(["LoadBalancer", "NodePort"]).toContain(svc.spec?.type);
    expect(matches(svc.spec?.selector, nginx().spec!.template.metadata?.labels), "selects nginx's pods").toBe(true);
    const listen = Number(/^\s*listen (\d+);/m.exec(nginxConfigMap().data?.["nginx.conf"] ?? "")?.[1]);
    expect(containerPort(onlyContainer(nginx().spec!.template), svc.spec?.ports?.[0]?.targetPort)).toBe(listen);
  });

  it("guards the app with a PodDisruptionBudget and a CPU HorizontalPodAutoscaler aimed at its Deployment", () => {
    const pdb = one(base, PodDisruptionBudget, "realtime-server");
    const selector = pdb.spec?.selector?.matchLabels;
    expect(matches(selector, app().spec!.template.metadata?.labels), "PDB selects the app's pods").toBe(true);
    expect(matches(selector, nginx().spec!.template.metadata?.labels), "PDB selects nginx's pods").toBe(false);
    expect(pdb.spec?.maxUnavailable).toBe(1);

    const hpa = one(base, HorizontalPodAutoscaler, "realtime-server");
    expect(hpa.spec?.scaleTargetRef).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: app().metadata?.name,
    });
    expect(hpa.spec?.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec?.metrics).toContainEqual(
      expect.objectContaining({ type: "Resource", resource: expect.objectContaining({ name: "cpu" }) }),
    );
    // CPU utilization is relative to the request; and a replica count in the Deployment would fight the HPA.
    expect(appContainer().resources?.requests?.cpu).toBeDefined();
    expect(app().spec?.replicas).toBeUndefined();
  });

  it("matches every selector to the pods of exactly one workload and every targetPort to a container port", () => {
    for (const manifests of [base, redisExample]) {
      const workloads = [...all(manifests, Deployment), ...all(manifests, StatefulSet)];
      for (const w of workloads) {
        expect(matches(w.spec?.selector.matchLabels, w.spec?.template.metadata?.labels), id(w)).toBe(true);
      }
      const selectors: [string, Record<string, string> | undefined][] = [
        ...all(manifests, Service).map((s) => [id(s), s.spec?.selector] as const),
        ...all(manifests, PodDisruptionBudget).map((p) => [id(p), p.spec?.selector?.matchLabels] as const),
      ].map(([name, selector]) => [name, selector]);
      for (const [name, selector] of selectors) {
        const targets = workloads.filter((w) => matches(selector, w.spec?.template.metadata?.labels));
        expect(
          targets.map((w) => id(w)),
          name,
        ).toHaveLength(1);
      }
      for (const svc of all(manifests, Service)) {
        const [target] = workloads.filter((w) => matches(svc.spec?.selector, w.spec?.template.metadata?.labels));
        for (const p of svc.spec?.ports ?? []) {
          const ok = target?.spec?.template.spec?.containers.some((c) => containerPort(c, p.targetPort ?? p.port));
          expect(ok, `${id(svc)} port ${p.name}`).toBe(true);
        }
      }
    }
  });

  it("sets CPU and memory requests no higher than their limits on every container", () => {
    for (const [name, template] of podTemplates([...base, ...redisExample])) {
      for (const c of template.spec?.containers ?? []) {
        const { requests, limits } = c.resources ?? {};
        for (const r of ["cpu", "memory"] as const) {
          expect(requests?.[r], `${name} ${r} request`).toBeDefined();
          expect(limits?.[r], `${name} ${r} limit`).toBeDefined();
          expect(quantity(requests?.[r]), `${name} ${r}`).toBeLessThanOrEqual(quantity(limits?.[r]));
        }
      }
    }
  });

  it("runs every container as non-root on a read-only root filesystem with no capabilities", () => {
    const ns = one(base, Namespace, NAMESPACE);
    expect(ns.metadata?.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    for (const [name, template] of podTemplates([...base, ...redisExample])) {
      const pod = template.spec?.securityContext;
      expect(pod?.seccompProfile?.type, name).toBe("RuntimeDefault");
      for (const c of template.spec?.containers ?? []) {
        const sc = c.securityContext;
        expect(sc?.runAsNonRoot ?? pod?.runAsNonRoot, name).toBe(true);
        // The kubelet can only enforce runAsNonRoot on a numeric uid (the app image's USER is a name).
        expect(sc?.runAsUser ?? pod?.runAsUser, name).toBeGreaterThan(0);
        expect(sc?.readOnlyRootFilesystem, name).toBe(true);
        expect(sc?.allowPrivilegeEscalation, name).toBe(false);
        expect(sc?.capabilities?.drop, name).toEqual(["ALL"]);
      }
    }
  });

  it("lets kustomize images override the app image", () => {
    expect(appContainer().image).toBe("realtime-server:latest");
    const overlay = kustomizeOverlay(
      (b) =>
        `resources:\n  - ${b}\nimages:\n  - name: realtime-server\n    newName: registry.example.com/realtime-server\n    newTag: "1.2.3"\n`,
    );
    const d = one(overlay, Deployment, "realtime-server");
    expect(onlyContainer(d.spec!.template).image).toBe("registry.example.com/realtime-server:1.2.3");
  });

  it("adds TLS from components/tls with the project's tls.conf and a certificate Secret where it reads them", () => {
    const overlay = kustomizeOverlay((b) => `resources:\n  - ${b}\ncomponents:\n  - ${b}/components/tls\n`);
    for (const m of overlay) validate(m);
    const d = one(overlay, Deployment, "realtime-nginx");
    const pod = d.spec!.template.spec!;
    const c = onlyContainer(d.spec!.template);
    const confVolume = pod.volumes?.find((v) => v.name === "tls-conf");
    const tls = one(overlay, ConfigMap, confVolume?.configMap?.name ?? "(none)");
    const tlsConf = readFileSync("nginx/tls.conf", "utf8");
    expect(tls.data?.["tls.conf"] === tlsConf, `${TLS_COMPONENT}/tls.conf is a copy of nginx/tls.conf`).toBe(true);
    expect(c.volumeMounts).toContainEqual(expect.objectContaining({ name: "tls-conf", mountPath: "/etc/nginx/tls.d" }));
    // tls.conf reads certs/tls.crt and certs/tls.key, relative to /etc/nginx: the keys of a kubernetes.io/tls Secret.
    expect(tlsConf).toMatch(/^ssl_certificate certs\/tls\.crt;$/m);
    expect(tlsConf).toMatch(/^ssl_certificate_key certs\/tls\.key;$/m);
    expect(c.volumeMounts).toContainEqual(expect.objectContaining({ name: "tls-cert", mountPath: "/etc/nginx/certs" }));
    expect(pod.volumes?.find((v) => v.name === "tls-cert")?.secret?.secretName).toBe("realtime-nginx-tls");
    const listen = Number(/^listen (\d+) ssl;$/m.exec(tlsConf)?.[1]);
    const svc = one(overlay, Service, "realtime-nginx");
    const https = svc.spec?.ports?.find((p) => p.name === "https");
    expect(containerPort(c, https?.targetPort)).toBe(listen);
  });
});

describe("deploy/k8s/examples/redis: a single Redis to try the base with", () => {
  it("runs Redis like docker-compose.yml: append-only, noeviction, the password from the app's Secret", () => {
    const sts = one(redisExample, StatefulSet, "redis");
    const c = onlyContainer(sts.spec!.template);
    const args = (c.args ?? []).join(" ");
    expect(args).toMatch(/--appendonly yes/);
    expect(args).toMatch(/--maxmemory-policy noeviction/);
    expect(args).toMatch(/--requirepass \$\(REDIS_PASSWORD\)/);
    const env = containerEnv(c, exampleSecrets);
    expect(env.REDIS_PASSWORD).toBeDefined();
    // The data directory is the persistent volume.
    const dir = /--dir (\S+)/.exec(args)?.[1];
    const mount = c.volumeMounts?.find((m) => m.mountPath === dir);
    expect(sts.spec?.volumeClaimTemplates?.map((v) => v.metadata?.name)).toContain(mount?.name);
  });

  it("answers at the host and port of the example REDIS_URL, and stays out of the base", () => {
    const url = new URL(appConfig().redisUrl ?? "");
    const svc = one(redisExample, Service, url.hostname);
    expect(svc.spec?.ports?.map((p) => p.port)).toContain(Number(url.port));
    expect(url.password).toBe(exampleSecrets[0]?.stringData?.password);
    expect(base.filter((m) => m.metadata?.name === "redis")).toEqual([]);
  });
});

import { GenericContainer, Network, Wait, type StartedTestContainer } from "testcontainers";
import { readFileSync } from "node:fs";
import { nginxLimitsConf, renderNginxConf } from "../../scripts/cluster/nginx.js";
import type { ClusterDriver } from "./driver.js";
import { ADMIN_UI_ENV } from "./fixtures/admin-ui.js";

const ROOT_URL = new URL("../../", import.meta.url);
const ROOT = ROOT_URL.pathname;
const UPSTREAM = process.env.NGINX_UPSTREAM ?? "upstream.static.conf";

// Standard public images by default; CI points these at images it built locally.
const REDIS_IMAGE = process.env.REDIS_IMAGE ?? "redis:7-bookworm";
const NGINX_IMAGE = process.env.NGINX_IMAGE ?? "nginx:1.27";

async function appImage(): Promise<string> {
  if (process.env.APP_IMAGE) return process.env.APP_IMAGE;
  const image = "realtime-server:test";
  await GenericContainer.fromDockerfile(ROOT).withBuildkit().build(image, { deleteOnExit: false });
  return image;
}

export const containersDriver: ClusterDriver = {
  name: "containers",
  async start(replicas) {
    const started: StartedTestContainer[] = [];
    const network = await new Network().start();
    const stop = async () => {
      await Promise.allSettled([...started].reverse().map((c) => c.stop({ timeout: 10_000 })));
      await network.stop().catch(() => undefined);
    };
    try {
      const image = await appImage();
      const redis = await new GenericContainer(REDIS_IMAGE)
        .withNetwork(network)
        .withNetworkAliases("redis")
        .withCommand([
          "redis-server",
          "--bind",
          "0.0.0.0",
          "--protected-mode",
          "no",
          "--save",
          "",
          "--appendonly",
          "no",
        ])
        .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
        .start();
      started.push(redis);

      const aliases = Array.from({ length: replicas }, (_, i) => `app-${i + 1}`);
      const apps = await Promise.all(
        aliases.map((alias, i) =>
          new GenericContainer(image)
            .withNetwork(network)
            // Like compose: every replica answers to `app` in Docker's DNS, and nginx expands it.
            .withNetworkAliases("app", alias)
            // No drain: stopReplica gives a container 10 s, like the processes driver's SIGTERM.
            .withEnvironment({
              REDIS_URL: "redis://redis:6379",
              REPLICA_ID: `replica-${i + 1}`,
              LOG_LEVEL: "warn",
              DRAIN_DELAY_S: "0",
              DRAIN_CLOSE_S: "0",
              ...ADMIN_UI_ENV,
            })
            .withExposedPorts(5000, 9464)
            .withWaitStrategy(Wait.forHttp("/readyz", 5000).forStatusCode(200))
            .start(),
        ),
      );
      started.push(...apps);

      // The compose topology: one DNS name for all replicas. upstream.static.conf works on every nginx;
      // NGINX_UPSTREAM=upstream.docker.conf (re-resolving, nginx >= 1.27.3) may be chosen instead.
      const nginx = await new GenericContainer(NGINX_IMAGE)
        .withNetwork(network)
        .withCopyContentToContainer([
          { content: renderNginxConf(), target: "/etc/nginx/nginx.conf" },
          { content: readFileSync(new URL(`nginx/${UPSTREAM}`, ROOT_URL), "utf8"), target: "/etc/nginx/upstream.conf" },
          { content: nginxLimitsConf(), target: "/etc/nginx/limits.conf" },
        ])
        .withCommand(["nginx", "-g", "daemon off;"])
        .withExposedPorts(5000)
        .withWaitStrategy(Wait.forHttp("/healthz", 5000).forStatusCode(200))
        .start();
      started.push(nginx);

      const urlOf = (c: StartedTestContainer) => `http://${c.getHost()}:${c.getMappedPort(5000)}`;
      const running = new Set(started);
      return {
        url: urlOf(nginx),
        replicaUrls: apps.map(urlOf),
        metricsUrls: apps.map((c) => `http://${c.getHost()}:${c.getMappedPort(9464)}`),
        replicaIds: aliases.map((_, i) => `replica-${i + 1}`),
        describe: () => `${running.size} containers (redis, ${replicas} replicas, nginx) from ${image}`,
        async stopReplica(i) {
          const app = apps[i];
          if (!app) throw new Error(`no replica ${i}`);
          await app.stop({ timeout: 10_000 });
          running.delete(app);
        },
        stop,
      };
    } catch (err) {
      await stop();
      throw err;
    }
  },
};

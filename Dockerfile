# Multi-stage build of the real-time server. NODE_IMAGE may point at a local or mirrored Node 24 image.
# A private registry: pass an npmrc as a BuildKit secret, e.g.
#   DOCKER_BUILDKIT=1 docker build --secret id=npmrc,src=$HOME/.npmrc -t realtime-server .
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts are needed (no native modules), and none run with the registry credentials mounted.
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/build-client.ts ./scripts/
# tsc, then the browser bundle of src/client/ (dist/web/reliable-rooms.js) with esbuild, a dev dependency.
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production PORT=5000
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The chat page (/chat/); the admin UI is served from node_modules/@socket.io/admin-ui.
COPY public ./public
USER node
# 9464: metrics (METRICS_PORT), for Prometheus on the internal network only; never publish it.
EXPOSE 5000 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:5000/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The server handles SIGTERM itself (graceful shutdown), also as PID 1.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]

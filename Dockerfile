# The app image: ingress and worker in one process, or split with `node dist/src/main.js
# worker|ingress|codec`, against the Temporal server at TEMPORAL_ADDRESS (the embedded dev server is
# not in the image). Node 24, an LTS line (README, "Node versions").
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Exactly the lockfile's versions; the dev dependencies (TypeScript) are needed to build.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src src
COPY workflows workflows
COPY activities activities
COPY scripts scripts
RUN npm run build

# The runtime's dependencies only: no dev dependency, @temporalio/testing (the embedded dev
# server's, which the image never starts) among them.
FROM node:24-bookworm-slim AS runtime-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=4242
# openssl: compose's one-shot temporal-tls makes the Temporal frontend's certificates with it
# (src/cluster/temporal-tls.ts); the slim image has none.
RUN apt-get update && apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The worker bundles workflows/ at start from the TypeScript sources' compiled output.
COPY --from=runtime-deps /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
USER node
EXPOSE 4242
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The heap limit keeps memory flat however many sessions wait (docs/benchmarks.md), as `npm start` does.
CMD ["node", "--max-old-space-size=512", "dist/src/main.js"]

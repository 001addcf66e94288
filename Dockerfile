# The app image: ingress and worker (one process, or split with `node dist/src/main.js worker|ingress`).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src src
COPY workflows workflows
COPY activities activities
COPY scripts scripts
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=4242
WORKDIR /app
# The worker bundles workflows/ at start from the TypeScript sources' compiled output.
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
USER node
EXPOSE 4242
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The heap limit keeps memory flat however many sessions wait (docs/benchmarks.md), as `npm start` does.
CMD ["node", "--max-old-space-size=512", "dist/src/main.js"]

# The game server in a container: `docker build -t tickserver .`, `docker run -p 8765:8765 tickserver`.
# One server process per container: scale with containers (compose.yaml: two nodes and Redis; DEPLOY.md:
# Kubernetes and a TLS-terminating proxy). Docker is not on the development machines:
# tests/e2e/test_deploy.py runs this file's CMD and HEALTHCHECK command lines there instead.

# The browser client's one npm dependency (@msgpack/msgpack), as `make` installs it.
FROM node:20-slim AS web
WORKDIR /web
COPY client_web/package.json client_web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 tickserver
WORKDIR /app
COPY pyproject.toml ./
COPY game game
COPY server server
COPY tools tools
COPY client_web client_web
COPY --from=web /web/node_modules client_web/node_modules
# The runtime dependencies only (no [dev] extra). Editable, so the server finds client_web/ beside its package.
RUN pip install -e . && mkdir /app/replays && chown tickserver /app/replays
USER tickserver
EXPOSE 8765
# Liveness: /healthz answers 200 while the process serves (readiness, /healthz?ready, is for a load balancer).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz', timeout=2)"]
# SIGTERM: the server stops cleanly (players get close code 1001, replays end with their end record).
STOPSIGNAL SIGTERM
# Replays go to /app/replays: mount a volume there to keep them.
CMD ["python", "-m", "server", "--host", "0.0.0.0", "--port", "8765", "--replay-dir", "/app/replays"]

# sapproxy: the gateway as a container.  Build: docker build -t sapproxy .
# Run with the bundled simulated SAP AI Core (a demo):  docker run -p 3001:3001 sapproxy
# Run with your own config (and keep usage and keys):
#   docker run -p 3001:3001 -v "$PWD/config.json:/etc/sapproxy/config.json:ro" -v sapproxy-data:/var/lib/sapproxy sapproxy

# -- build: the package and its dependencies in a virtual environment -------------------------------------------
FROM python:3.12-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/sapproxy
COPY pyproject.toml README.md ./
COPY sapproxy ./sapproxy
COPY twisted ./twisted
# A local path, not a package name: nothing to pin (its dependencies are pinned by pyproject.toml's ranges).
# hadolint ignore=DL3013
RUN /opt/sapproxy/bin/pip install . \
    && /opt/sapproxy/bin/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"

# -- run: slim Python, the virtual environment, a non-root user -------------------------------------------------
FROM python:3.12-slim
RUN groupadd --system --gid 10001 sapproxy \
    && useradd --system --uid 10001 --gid sapproxy --home-dir /var/lib/sapproxy --no-create-home sapproxy \
    && mkdir -p /etc/sapproxy /var/lib/sapproxy \
    && chown sapproxy:sapproxy /var/lib/sapproxy
COPY --from=build /opt/sapproxy /opt/sapproxy
COPY deploy/container-config.json /etc/sapproxy/config.json
ENV PATH=/opt/sapproxy/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# The config (read-only is fine) and the SQLite usage store and key table (must be writable).
VOLUME ["/etc/sapproxy", "/var/lib/sapproxy"]
USER 10001:10001
WORKDIR /var/lib/sapproxy
EXPOSE 3001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "sapproxy.healthcheck", "--config", "/etc/sapproxy/config.json"]
# Foreground (-n), no pidfile, one JSON log line per event on standard output; SIGTERM drains in-flight requests.
ENTRYPOINT ["twistd", "-n", "--pidfile=", "--logger=sapproxy.logs.json_observer", "sapproxy"]
CMD ["--config", "/etc/sapproxy/config.json", "--host", "0.0.0.0"]

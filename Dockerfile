# docker build -t archiver .
# Dependencies are installed from requirements.lock (pinned, with hashes) into a virtualenv,
# /opt/archiver, that is copied into the final image on its own. To reach a private index or
# mirror, pass any of PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST with --build-arg;
# PIP_CA_CERT takes the PEM text of a certificate authority pip must also trust
# (--build-arg PIP_CA_CERT="$(cat corp-ca.pem)"). These arguments exist in the build stage
# only: the final image holds none of them.
FROM python:3.11-slim AS build
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CA_CERT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# The virtualenv has no pip of its own: the base image's pip installs into it (--python).
RUN python -m venv --without-pip /opt/archiver \
 && if [ -n "$PIP_CA_CERT" ]; then \
      { cat "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"; printf '%s\n' "$PIP_CA_CERT"; } \
        >/tmp/pip-ca.pem; \
    fi
COPY requirements.lock ./
RUN if [ -f /tmp/pip-ca.pem ]; then export PIP_CERT=/tmp/pip-ca.pem; fi \
 && python -m pip --python /opt/archiver/bin/python install \
      --require-hashes --no-deps --requirement requirements.lock
COPY pyproject.toml README.md ./
COPY archiver ./archiver
# pip check: the locked versions satisfy every package's requirements, the project's included.
RUN if [ -f /tmp/pip-ca.pem ]; then export PIP_CERT=/tmp/pip-ca.pem; fi \
 && python -m pip --python /opt/archiver/bin/python install --no-deps . \
 && python -m pip --python /opt/archiver/bin/python check

FROM python:3.11-slim
# Fixed UID/GID 10001: a host folder bind-mounted on /var/lib/archiver must belong to them
# (chown 10001:10001 DIR). --no-log-init: no sparse lastlog/faillog entry for a high UID.
RUN groupadd --gid 10001 archiver \
 && useradd --uid 10001 --gid archiver --no-create-home --no-log-init \
      --home-dir /var/lib/archiver --shell /usr/sbin/nologin archiver \
 && install -d -o archiver -g archiver -m 0700 /var/lib/archiver \
 && install -d -m 0755 /etc/archiver
COPY --from=build /opt/archiver /opt/archiver
COPY config/archiver.example.toml /etc/archiver/archiver.example.toml
# MALLOC_ARENA_MAX: as in systemd/archiver.service, memory stays flat with upload threads.
ENV PATH=/opt/archiver/bin:$PATH \
    ARCHIVER_CONFIG=/etc/archiver/archiver.toml \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2
USER archiver
WORKDIR /var/lib/archiver
# /etc/archiver holds archiver.toml (mount it read-only); /var/lib/archiver holds the
# SQLite state and, with a file:// store, the evidence itself.
VOLUME ["/var/lib/archiver"]
# SIGTERM lets in-flight sessions finish within engine.shutdown_grace_seconds (30 s):
# stop the container with a longer timeout (docker stop -t 45, or docker run --stop-timeout 45).
STOPSIGNAL SIGTERM
# Healthy while the daemon's event loop answers /healthz on the [metrics] listen address
# of the mounted config (listen = "0.0.0.0:9464" in a container): without it the check
# fails, since there is nothing to ask. Orchestrators that probe over HTTP use /healthz
# and /readyz directly.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["archiver", "healthcheck"]
ENTRYPOINT ["archiver"]
CMD ["run"]

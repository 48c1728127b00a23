# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY archiver ./archiver
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN groupadd --system archiver \
 && useradd --system --gid archiver --home-dir /var/lib/archiver --shell /usr/sbin/nologin archiver \
 && install -d -o archiver -g archiver -m 0700 /var/lib/archiver \
 && install -d -m 0755 /etc/archiver
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/archiver.example.toml /etc/archiver/archiver.example.toml
# MALLOC_ARENA_MAX: as in systemd/archiver.service, memory stays flat with upload threads.
ENV ARCHIVER_CONFIG=/etc/archiver/archiver.toml \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2
USER archiver
WORKDIR /var/lib/archiver
# /etc/archiver holds archiver.toml (mount it read-only); /var/lib/archiver holds the
# SQLite state and, with a file:// store, the evidence itself.
VOLUME ["/var/lib/archiver"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["archiver"]
CMD ["run"]

# The machine tests/system/systemd_unit.sh boots: systemd as PID 1, with the archiver
# installed as docs/operations.md says: a virtualenv in /opt/archiver from
# requirements.lock, and a system user whose home is /var/lib/archiver. The vendor
# simulators (simulators/, not part of the archiver) are added to that virtualenv for the
# test's Perfecto simulator (tests/system/perfecto_simulator.py). The unit and the
# configuration are installed by the test, once systemd runs. Build it from the repository:
#   docker build --network host -f tests/system/systemd.Dockerfile .
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd systemd-sysv procps \
 && rm -rf /var/lib/apt/lists/* \
 && systemctl mask systemd-logind.service getty.target console-getty.service \
      systemd-udevd.service
COPY . /src
RUN python3 -m venv /opt/archiver \
 && /opt/archiver/bin/pip install --no-cache-dir --require-hashes -r /src/requirements.lock \
 && /opt/archiver/bin/pip install --no-cache-dir --no-deps /src \
 && /opt/archiver/bin/pip install --no-cache-dir --no-deps /src/simulators \
 && useradd --system --user-group --home-dir /var/lib/archiver --shell /usr/sbin/nologin archiver \
 && install -d -m 0750 -g archiver /etc/archiver
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]

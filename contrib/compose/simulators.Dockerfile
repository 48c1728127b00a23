# The project's vendor simulators (Perfecto and DevRev) as a service of the Compose stack,
# standing in for the vendors' APIs. Built from the repository root (the build context of
# compose.yaml), like the archiver's own image.
FROM python:3.11-slim
COPY simulators /tmp/simulators
RUN python -m pip install --no-cache-dir --disable-pip-version-check /tmp/simulators \
 && rm -rf /tmp/simulators
USER 65534:65534
ENTRYPOINT ["python", "-m", "archiver_sim.service"]

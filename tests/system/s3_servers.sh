#!/usr/bin/env bash
# Starts the real S3 servers the S3 tests also run against, and prints their `export` lines:
# Ceph's RADOS Gateway (http and https) and LocalStack's S3, on loopback, through the
# scripts of the shared tools folder (../shared/tools beside the checkout, or $SHARED_TOOLS).
#
#   eval "$(tests/system/s3_servers.sh start)"   # a few minutes the first time (packages)
#   tests/system/s3_servers.sh stop
#
# Prints nothing and exits 3 when the tools folder is not there (`make test-s3` then says so).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tools=${SHARED_TOOLS:-}
for candidate in "$tools" "$here/../shared/tools" /work/shared/tools; do
  if [ -n "$candidate" ] && [ -x "$candidate/ceph-rgw.sh" ] && [ -x "$candidate/localstack-s3.sh" ]; then
    tools=$candidate
    break
  fi
  tools=
done
if [ -z "$tools" ]; then
  echo "s3_servers: no shared tools folder with ceph-rgw.sh and localstack-s3.sh" >&2
  exit 3
fi

localstack_venv() {
  # LocalStack 4.14 calls pyOpenSSL's X509.add_extensions, which pyOpenSSL 24.3 removed: its
  # venv is made here, with that pin, before the script would make it without.
  local dir=${LOCALSTACK_DIR:-/var/tmp/localstack-s3} python=${LOCALSTACK_PYTHON:-python3.13}
  [ -x "$dir/venv/bin/python" ] && return 0
  if ! "$python" -V >/dev/null 2>&1 && command -v pyenv >/dev/null; then
    PYENV_VERSION=$(pyenv versions --bare | grep -E '^3\.13' | tail -1)
    export PYENV_VERSION
  fi
  mkdir -p "$dir"
  "$python" -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q 'localstack-core[runtime]==4.14.0' 'cbor2<6' 'pyopenssl<24.3' >&2
}

case "${1:-start}" in
  start)
    "$tools/ceph-rgw.sh" start
    localstack_venv
    "$tools/localstack-s3.sh" start
    ;;
  stop)
    "$tools/localstack-s3.sh" stop || true
    "$tools/ceph-rgw.sh" stop || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

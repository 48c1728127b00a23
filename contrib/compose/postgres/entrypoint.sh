#!/bin/sh
# First start: create the cluster, a password-protected superuser POSTGRES_USER and the
# database POSTGRES_DB (default: the user's name), as the official image does. Then run
# the server on every interface, password (SCRAM) authentication for TCP clients.
set -eu
: "${PGDATA:?}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set on the first start}"
  database=${POSTGRES_DB:-$POSTGRES_USER}
  password_file=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
  initdb --pgdata "$PGDATA" --username "$POSTGRES_USER" --pwfile "$password_file" \
    --auth-local trust --auth-host scram-sha-256 --encoding UTF8 --locale C.UTF-8 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    echo "CREATE DATABASE \"$database\" OWNER \"$POSTGRES_USER\"" |
      postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres-entrypoint: created the cluster, user $POSTGRES_USER, database $database"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"

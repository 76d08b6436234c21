#!/usr/bin/env bash
# Stand-in for the postgres image's docker-entrypoint.sh (see postgres.Dockerfile).
set -euo pipefail
if [[ ${1:-} != postgres ]]; then
  exec "$@"
fi
if [[ $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 0700 "$PGDATA"
  exec runuser -u postgres -- "$0" "$@"
fi
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
if [[ -s $PGDATA/PG_VERSION ]]; then
  echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
else
  if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
    echo "Error: Database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD)" >&2
    exit 1
  fi
  password_file=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
  initdb --username="$user" --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA"
  rm -f "$password_file"
  printf '\nlisten_addresses = '"'"'*'"'"'\n' >>"$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  # the init scripts run against a server on the socket only: a TCP healthcheck fails until they are done
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  if [[ $database != postgres ]]; then
    psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres -c "CREATE DATABASE \"$database\""
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case $script in
      *.sql) echo "running $script"; psql -v ON_ERROR_STOP=1 --username "$user" --dbname "$database" -f "$script" ;;
      *.sh) echo "running $script"; . "$script" ;;
      *) [[ -e $script ]] && echo "ignoring $script" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"

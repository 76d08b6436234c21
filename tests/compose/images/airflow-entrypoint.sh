#!/usr/bin/env bash
# Stand-in for the official image's /entrypoint (its part the compose file relies on):
# `bash ...` and `python ...` run as given, a leading `airflow` is dropped, anything else is an
# Airflow command (`airflow <args>`). Before an Airflow command it waits for the metadata database
# as the official one does (`airflow db check`, CONNECTION_CHECK_MAX_COUNT tries, default 20, every
# CONNECTION_CHECK_SLEEP_TIME seconds, default 3). Not done here: the official one's _AIRFLOW_DB_MIGRATE,
# _AIRFLOW_WWW_USER_CREATE, _PIP_ADDITIONAL_REQUIREMENTS and arbitrary-uid handling, which the compose
# file does not use.
set -euo pipefail
case "${1:-}" in
  bash) shift; exec /bin/bash "$@" ;;
  python) shift; exec python "$@" ;;
  airflow) shift ;;
esac
tries=${CONNECTION_CHECK_MAX_COUNT:-20}
if (( tries > 0 )); then
  for ((try = 1; ; try++)); do
    if airflow db check >/dev/null 2>&1; then
      break
    fi
    if (( try >= tries )); then
      echo "entrypoint: the metadata database did not answer after $tries tries" >&2
      exit 1
    fi
    sleep "${CONNECTION_CHECK_SLEEP_TIME:-3}"
  done
fi
exec airflow "$@"

#!/usr/bin/env bash
# Write the compose stack's shared secrets into one folder (the airflow-secrets volume), for airflow-init.
#
# Each secret is taken from the environment (docker compose passes the values of .env), or, when the
# variable is empty, generated the first time and kept: every component and every restart then reads
# the same value (Airflow through AIRFLOW__..._CMD settings that cat these files).
#
#   file                    variable (.env)             what
#   jwt_secret              AIRFLOW_JWT_SECRET          [api_auth] jwt_secret: signs every token of the api-server
#   secret_key              AIRFLOW_SECRET_KEY          [api] secret_key: signs requests for workers' task logs
#   fernet_key              AIRFLOW_FERNET_KEY          [core] fernet_key: encrypts connections and Variables
#   passwords.json          AIRFLOW_ADMIN_PASSWORD      the login "admin" (simple auth manager's passwords file)
#   emulator_admin_token    UCI_EMULATOR_ADMIN_TOKEN    the emulator's admin routes (/admin/...)
#
# A value still starting with "change-me" (the placeholders of .env.example) is refused.
# UCI_SECRETS_DIR is the folder (default /opt/airflow/secrets); UCI_SECRETS_OWNER (user:group) is
# given the files when run as root.
set -euo pipefail

dir=${UCI_SECRETS_DIR:-/opt/airflow/secrets}
owner=${UCI_SECRETS_OWNER:-}
umask 077
mkdir -p "$dir"

token() { python3 -c 'import secrets; print(secrets.token_urlsafe(64), end="")'; }
password() { python3 -c 'import secrets; print(secrets.token_urlsafe(18), end="")'; }
fernet() { python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode(), end="")'; }
passwords_json() { python3 -c 'import json, sys; print(json.dumps({"admin": sys.argv[1]}))' "$1"; }

# put FILE VARIABLE GENERATOR [FORMAT]: the variable's value if set, else keep the file, else generate
put() {
  local file=$1 variable=$2 generate=$3 format=${4:-} value=${!2:-}
  if [[ $value == change-me* ]]; then
    echo "write-secrets: $variable in .env is still the placeholder from .env.example;" \
         "replace it (.env.example says how to generate one) or leave it empty to have one generated" >&2
    exit 1
  fi
  if [[ -z $value ]]; then
    if [[ -s $dir/$file ]]; then
      echo "write-secrets: $file kept"
      return
    fi
    value=$("$generate")
    echo "write-secrets: $file generated"
  else
    echo "write-secrets: $file from $variable"
  fi
  if [[ -n $format ]]; then
    "$format" "$value" >"$dir/$file.new"
  else
    printf %s "$value" >"$dir/$file.new"
  fi
  mv -f "$dir/$file.new" "$dir/$file"
}

put jwt_secret AIRFLOW_JWT_SECRET token
put secret_key AIRFLOW_SECRET_KEY token
put fernet_key AIRFLOW_FERNET_KEY fernet
put passwords.json AIRFLOW_ADMIN_PASSWORD password passwords_json
put emulator_admin_token UCI_EMULATOR_ADMIN_TOKEN token

if [[ -n $owner ]]; then
  chown -R "$owner" "$dir"
fi

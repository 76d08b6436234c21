#!/usr/bin/env bash
# Write the compose stack's secrets and connections (docker/write_secrets.py says which, and the rules).
# airflow-init runs this first; every value comes from the environment, none from the command line.
set -euo pipefail
exec python3 "$(dirname "$0")/write_secrets.py"

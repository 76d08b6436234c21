# Stand-in for apache/airflow:3.3.2-python3.11, built only by tests/compose (no image registry is
# reachable where the compose test runs). docker/Dockerfile builds on it through its BASE_IMAGE argument.
# What it shares with the official image: Debian bookworm, Python 3.11, the user airflow (uid 50000,
# group 0) and AIRFLOW_HOME=/opt/airflow, Airflow in a virtual environment at /home/airflow/.local
# whose bin folder is first on PATH (so `python3` and `airflow` are the same for root and airflow),
# dumb-init as PID 1 and an /entrypoint that runs `airflow <command>`, curl for healthchecks.
# What differs: the Python packages are exactly uv.lock's (the project's dependencies and extras, the Celery
# and OpenLineage providers and asyncpg of its dev group), not Airflow's constraints and its ~80 providers; the
# host's CA bundle is trusted (SSL_CERT_FILE, PIP_CERT) so that builds can reach PyPI; /entrypoint
# is a short script (tests/compose/images/airflow-entrypoint.sh), see its header.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates curl dumb-init tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY build-ca.crt /etc/ssl/certs/uci-build-ca.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/uci-build-ca.crt PIP_CERT=/etc/ssl/certs/uci-build-ca.crt \
    AIRFLOW_HOME=/opt/airflow VIRTUAL_ENV=/home/airflow/.local PATH=/home/airflow/.local/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ARG UV_VERSION
RUN useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow \
 && mkdir -p /opt/airflow && chown airflow:0 /opt/airflow
COPY airflow-entrypoint.sh /entrypoint
# installed as airflow, as in the official image (a chown of the tree afterwards would copy every file)
USER 50000
RUN python3 -m venv /home/airflow/.local \
 && pip install --no-cache-dir "uv==${UV_VERSION}"
COPY requirements.txt /tmp/requirements.txt
RUN uv pip install --no-cache --require-hashes --no-deps -r /tmp/requirements.txt
WORKDIR /opt/airflow
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"]
CMD []

# Stand-in for postgres:16, built only by tests/compose: Debian bookworm's PostgreSQL 15 with an
# entrypoint that does what the compose file relies on (postgres-entrypoint.sh: POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, /docker-entrypoint-initdb.d/*.sql and *.sh run once on an empty
# PGDATA while no TCP port is open, then the server on every address with password auth).
# What differs: PostgreSQL 15, not 16 (the compose file uses nothing 16 adds); no POSTGRES_INITDB_ARGS,
# POSTGRES_HOST_AUTH_METHOD, *_FILE secrets or *.sql.gz scripts; runuser instead of gosu.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql && chmod 2777 /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]

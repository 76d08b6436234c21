# Stand-in for redis:7.2-bookworm, built only by tests/compose: Debian bookworm's redis-server 7.0,
# run as the official image runs it: in the foreground, on every address, protected mode off (the
# official image patches it off: inside a container network it only refuses the other containers),
# data in /data, as the user redis.
# What differs: Redis 7.0, not 7.2; no entrypoint that drops privileges or takes a config file as
# its first argument (the compose file passes neither).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "-::*", "--protected-mode", "no", "--dir", "/data"]

# Stand-in for mcr.microsoft.com/azure-storage/azurite:3.37.0, built only by tests/compose: the same
# Azurite release from npm, on Debian bookworm's Node.js, with `azurite-blob` (and `node`, which the
# compose healthcheck runs) on PATH, and /data as the working folder.
# What differs: Node.js 18 (Debian's) where Azurite 3.37 asks for 22 and the official image has it
# (npm only warns; the blob service the compose file runs works on 18 in this test); Debian, not Alpine;
# only the blob service is used, as in the compose file.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY build-ca.crt /etc/ssl/certs/uci-build-ca.crt
ARG AZURITE_VERSION
RUN NODE_EXTRA_CA_CERTS=/etc/ssl/certs/uci-build-ca.crt npm install --global --no-audit --no-fund \
      "azurite@${AZURITE_VERSION}" \
 && npm cache clean --force
WORKDIR /data
EXPOSE 10000
CMD ["azurite-blob", "--blobHost", "0.0.0.0", "--location", "/data"]

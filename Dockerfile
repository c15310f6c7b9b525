# redis-cache-proxy container images, in four stages:
#   redis    redis-server for the compose stack (no registry needed)
#   e2e      python3 + pytest + the e2e/ tree; runs e2e/compose/test_stack.py
#   build    compiles, runs `make check`, installs into /out
#   runtime  the daemon alone, as a non-root user (the default target)
#
# Only debian:bookworm-slim is used as a base and nothing needs BuildKit, so
# the classic builder works and the base can be imported from a Debian
# mirror where no registry is reachable (see scripts/ci-docker).  The
# classic builder builds every stage before the target, so the cheap stages
# come first: `--target redis` or `--target e2e` never compiles the daemon.
#
#   docker build --shm-size=256m -t redis-cache-proxy .
#     (the build stage's `make check` maps cache segments in /dev/shm,
#     which is 64m by default in a build container)
#   docker run --shm-size=256m -e RCP_REDIS=host:6379 -p 8080:8080 redis-cache-proxy

FROM debian:bookworm-slim AS redis
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=2s --retries=30 \
    CMD ["redis-cli", "ping"]
# No persistence: the cache's backing store in tests is throwaway.
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", \
     "--save", "", "--appendonly", "no"]


FROM debian:bookworm-slim AS e2e
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends \
       python3 python3-pytest python3-requests python3-redis \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin rcp-e2e
COPY e2e/ /e2e/
WORKDIR /e2e
USER rcp-e2e
ENV PYTHONDONTWRITEBYTECODE=1
CMD ["python3", "-m", "pytest", "-p", "no:cacheprovider", "-v", \
     "compose/test_stack.py"]


FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
# The dependency list lives in scripts/install-deps; copying just that
# file first keeps this layer cached across source edits.  install-deps
# uses --no-install-recommends, and libc6-dev is only a Recommends of gcc,
# so it is added here (a full Debian install has it already).
COPY scripts/install-deps /tmp/install-deps
RUN sh /tmp/install-deps \
    && apt-get install -y -qq --no-install-recommends libc6-dev \
    && rm -rf /var/lib/apt/lists/* /tmp/install-deps
WORKDIR /src
COPY . .
# make check runs the unit and end-to-end suites (it starts its own
# redis-server), so a broken daemon never becomes an image.  VERBOSE=1:
# a failing suite's log goes to the build output, which is all a CI run
# keeps of the build container.
RUN autoreconf -fi \
    && ./configure --prefix=/usr --sysconfdir=/etc \
    && make -j2 \
    && make check VERBOSE=1 \
    && make install DESTDIR=/out


FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libhiredis0.14 libuv1 \
        libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 rcp \
    && useradd --system --uid 10001 --gid rcp --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin rcp
COPY --from=build /out/usr/sbin/redis-cache-proxy /usr/sbin/redis-cache-proxy
COPY --from=build /out/etc/redis-cache-proxy.conf /etc/redis-cache-proxy.conf
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# Every option can be set as RCP_<OPTION>; flags after the image name
# override these.  The data and admin ports listen on every address of the
# container (the admin port is not published by docker-compose.yml).  The
# RESP port (6380) is off unless RCP_RESP_LISTEN is set.
# The cache lives in /dev/shm: Docker's default --shm-size is 64m, so run
# with a larger one (docker-compose.yml uses 256m) or a smaller
# RCP_MAX_MEMORY.
ENV RCP_LISTEN=0.0.0.0:8080 \
    RCP_ADMIN_LISTEN=0.0.0.0:9121 \
    RCP_REDIS=redis:6379 \
    RCP_LOG_LEVEL=info
EXPOSE 8080 6380 9121
# bash is in every Debian image and its /dev/tcp speaks enough HTTP for a
# probe, so the runtime image needs no curl (and libcurl's dozen libraries).
# /health is 200 only while Redis answers PING.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${RCP_ADMIN_LISTEN##*:} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
# SIGTERM: stop accepting, drain in-flight requests (shutdown-timeout,
# 10s), exit 0.  Give `docker stop` a longer -t than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/sbin/redis-cache-proxy"]
CMD ["--config", "/etc/redis-cache-proxy.conf"]

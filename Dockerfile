# The reconciler itself as an image: `reconciler run`, its settings in a config file.
#
#   pip wheel --no-deps -w dist .            # the wheel, with the Service forwarder compiled in
#   docker build -t reconciler:local .
#   docker run -d --name reconciler --restart on-failure \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /etc/reconciler:/etc/reconciler:ro -v reconciler-state:/var/lib/reconciler \
#     -p 127.0.0.1:9477:9477 reconciler:local
#
# The base is the ordinary public Python image; `--build-arg BASE=...` names another (any
# Debian-like image with python3 and its venv module: one made without a registry, say).
# Build arguments:
#   BASE                 the base image (default python:3.11-slim)
#   PIP_INSTALL_OPTIONS  extra pip options, e.g. "--no-index" when dist/ holds every
#                        dependency's wheel too (`pip download -d dist dist/reconciler-*.whl`)
# See docs/operations.md ("Running the reconciler itself in a container").
ARG BASE=python:3.11-slim
FROM ${BASE}

# git for git sources, the static busybox for the pods' pause image, ssh for ssh:// hosts;
# installed only when the base lacks them. No compiler: the wheel ships the forwarder.
RUN set -eu; need=""; \
    command -v git >/dev/null 2>&1 || need="$need git"; \
    [ -x /bin/busybox ] || need="$need busybox-static"; \
    command -v ssh >/dev/null 2>&1 || need="$need openssh-client"; \
    if [ -n "$need" ]; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates $need; \
      rm -rf /var/lib/apt/lists/*; \
    fi

ARG PIP_INSTALL_OPTIONS=""
COPY dist/ /tmp/dist/
RUN python3 -m venv /opt/reconciler \
    && /opt/reconciler/bin/pip install --no-cache-dir --disable-pip-version-check \
       $PIP_INSTALL_OPTIONS --find-links /tmp/dist reconciler \
    && rm -rf /tmp/dist \
    && /opt/reconciler/bin/reconciler --version

# Not root: a user of its own. It reaches dockerd through the socket's group, given at run
# time (`--group-add`), or through DOCKER_HOST / a hosts file (tcp with TLS, ssh).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/reconciler \
      --shell /usr/sbin/nologin reconciler \
    && install -d -o reconciler -g reconciler -m 0700 /var/lib/reconciler /var/cache/reconciler

ENV PATH=/opt/reconciler/bin:$PATH \
    RECONCILER_STATE_DIR=/var/lib/reconciler \
    XDG_CACHE_HOME=/var/cache \
    RECONCILER_LISTEN=0.0.0.0:9477
# host memory (the grace period of lost hosts) and git clones survive a new container
VOLUME ["/var/lib/reconciler", "/var/cache/reconciler"]
USER reconciler
WORKDIR /var/lib/reconciler
EXPOSE 9477
STOPSIGNAL SIGTERM
ENTRYPOINT ["reconciler"]
CMD ["run", "--config", "/etc/reconciler/config.yaml"]

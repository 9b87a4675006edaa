# imapd in a container: twistd -n imapd, logging to stdout.  It starts as
# root (binds 143 and 993 on any engine, reads root's 0600 keys and
# passwd-files) and gives that up in its children: login processes run as
# nobody, the mail workers as imapd (uid 1000, [service] mail_user).
#
#   docker build -t imapd .
#   docker run -p 143:143 -p 993:993 imapd
#
# A bind mount on /etc/imapd replaces the shipped imapd.toml: copy it out
# first (docker run --rm imapd cat /etc/imapd/imapd.toml), see README.md.
#
# Volumes: /etc/imapd (imapd.toml, passwd-file, certificate), /srv/mail (the
# mail), /var/lib/imapd (index cache; generated certificate and demo user
# while none are configured).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /usr/src/imapd
COPY . .
# After the install, write Twisted's plugin cache: site-packages is read-only
# for the imapd user, who would otherwise get a warning at every start.
RUN pip install . \
    && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
    && useradd --system --uid 1000 --user-group --home-dir /var/lib/imapd --no-create-home imapd \
    && install -d -o imapd -g imapd -m 0755 /etc/imapd /srv/mail \
    && install -d -o imapd -g imapd -m 0700 /var/lib/imapd /var/lib/imapd/index \
    && install -o imapd -g imapd -m 0644 conf/docker.toml /etc/imapd/imapd.toml \
    && cd / && rm -rf /usr/src/imapd

VOLUME ["/etc/imapd", "/srv/mail", "/var/lib/imapd"]
EXPOSE 143 993

# No USER: the master needs root to bind 143 without
# net.ipv4.ip_unprivileged_port_start (older engines, --network host,
# Kubernetes) and to read 0600 files; its children drop it.
WORKDIR /var/lib/imapd

# Healthy when every listener of the configuration in use answers with an
# IMAP greeting (imapd.healthcheck: TCP, TLS and UNIX listeners, wherever
# imapd.toml puts them).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-m", "imapd.healthcheck", "--config", "/etc/imapd/imapd.toml"]

# -n: foreground, logs to stdout.  --pidfile=: no pid file (one process per
# container, and the working directory may be a read-only volume).
CMD ["twistd", "-n", "--pidfile=", "imapd", "--config", "/etc/imapd/imapd.toml"]

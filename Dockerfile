# The gateway in a container: `docker build -t aicore-gateway .` (README, "Docker").
#
# The same server as the Procfile: gunicorn with gevent workers and gunicorn.conf.py.
# In a container it must listen on all interfaces (loopback inside a container is not
# reachable through a published port): GATEWAY_BIND=0.0.0.0:3001 below, or PORT, which
# platforms that inject it set (gunicorn.conf.py then binds 0.0.0.0:$PORT).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/gateway

# Dependencies first, so code changes do not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY gunicorn.conf.py wsgi.py ./
COPY app/ ./app/

# An unprivileged user with a home (the SAP SDK file ~/.aicore/config.json may be
# mounted there). Numeric, so "runAsNonRoot" checks can verify it.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/gateway gateway
USER 10001:10001

# Usage records go to stdout with the logs (the code directory is not writable);
# configure with environment variables (README, "Configuration") or mount a config
# file and set CONFIG_PATH.
ENV GATEWAY_BIND=0.0.0.0:3001 \
    TOKEN_USAGE_LOG=-
EXPOSE 3001

# /health answers without auth or upstream calls. The slim image has no curl, so ask
# with Python's http.client (which, unlike urllib, ignores HTTP(S)_PROXY variables).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import http.client, os, sys; port = os.environ.get('PORT') or os.environ.get('GATEWAY_BIND', '0.0.0.0:3001').rpartition(':')[2]; conn = http.client.HTTPConnection('127.0.0.1', int(port), timeout=4); conn.request('GET', '/health'); sys.exit(0 if conn.getresponse().status == 200 else 1)"]

# SIGTERM (docker stop) lets running streams finish for up to GRACEFUL_TIMEOUT (630 s):
# run with `docker stop --time 640` (or stop_grace_period) to give them that time.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]

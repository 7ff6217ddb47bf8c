"""gunicorn's settings for the tool, read automatically when gunicorn starts in this directory
(`gunicorn wsgi:app`), or with `gunicorn -c /path/to/gunicorn.conf.py wsgi:app`.
docs/deployment.md explains each choice; every value can be changed from the environment
(or the project's `.env`, read here first) without editing this file.

The access log never writes the query values of the tool's own routes (room page tickets,
webhook checksums, registration tokens): see lti_tool/access_log.py.
"""
import os
import pathlib

try:
    from dotenv import load_dotenv

    load_dotenv(pathlib.Path(__file__).resolve().parent / ".env", override=False)
except ImportError:  # pragma: no cover - python-dotenv is a runtime requirement
    pass

HERE = pathlib.Path(__file__).resolve().parent

# Behind nginx on the same machine: loopback only. Another machine's proxy: GUNICORN_BIND=0.0.0.0:8000.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split()

# Sync workers, one process each. The tool is CPU-bound (signatures, templates, SQL): measured,
# threads and gevent gave 0.95–1.02x the throughput of the same number of processes, so
# processes it is. Twice the cores: a sync worker waiting on a video server or a platform
# (seconds, at worst) leaves its core to another.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
worker_class = "sync"
threads = 1

# The longest a request may take: a provider call (PROVIDER_TIMEOUT_SECONDS, 10) after a
# platform's keys (JWKS_FETCH_SECONDS, 5), with room to spare. A worker silent longer is killed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On HUP or TERM a worker finishes the request it serves for up to this long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5  # nginx's keepalive connections to the upstream (docs/deployment.md)
# Each worker is replaced after about this many requests (jitter: not all at once), so a slow
# leak in any library never grows without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "2000"))
# No preload: each worker imports the application itself, so `kill -HUP <master>` after an
# upgrade loads the new code (with preload, only a full restart would), and no database
# connection or key is ever shared across a fork. It costs memory per worker (docs/deployment.md).
preload_app = False
# The heartbeat file on a memory file system: a busy disk never makes workers look dead.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn believes X-Forwarded-Proto (wsgi.url_scheme) from these addresses only; the tool
# itself trusts TRUSTED_PROXIES hops of X-Forwarded-* (werkzeug ProxyFix, docs/deployment.md).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

logger_class = "lti_tool.access_log.GunicornLogger"
# "-" is stderr (journald under systemd); GUNICORN_ACCESS_LOG=off leaves the access log to the
# tool's own request lines (LOG_FORMAT=json) and to nginx.
accesslog = None if os.environ.get("GUNICORN_ACCESS_LOG") == "off" else os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
# Like gunicorn's default format; the request line and Referer come redacted from the logger.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'

# Prometheus metrics from every worker (lti_tool/metrics.py): each process writes its values
# under this directory, and a scrape of any worker adds them up. It must be set before the
# application is imported, hence here; the `worker` process adds its own with the same setting.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(HERE / "instance" / "metrics"))


def on_starting(server):
    """A fresh start: the files of processes that are gone are forgotten (those of a running
    `worker` process, sharing the directory, are kept)."""
    directory = pathlib.Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if not (pid.isdigit() and _alive(int(pid))):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_exit(server, worker):
    """A worker is gone (recycled, killed, crashed): its live gauges go with it."""
    from lti_tool.metrics import forget_dead_process

    forget_dead_process(worker.pid)

"""gunicorn's settings for the tool, read automatically when gunicorn starts in this directory
(`gunicorn wsgi:app`), or with `gunicorn -c /path/to/gunicorn.conf.py wsgi:app`.

The access log never writes the query values of the tool's own routes (room page tickets,
webhook checksums, registration tokens): see lti_tool/access_log.py.
"""
logger_class = "lti_tool.access_log.GunicornLogger"
accesslog = "-"
# Like gunicorn's default format; the request line and Referer come redacted from the logger.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'

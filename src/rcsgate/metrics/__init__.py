"""Prometheus metrics (docs/deploy.md, "Metrics").

``instruments`` holds the metrics a process records and the helpers its code calls; ``exposition``
renders ``GET /metrics`` (with the gauges read from the database at scrape time, ``db_gauges``);
``multiprocess`` keeps the directory `rcsgate api --workers N` shares between its processes.

Nothing here takes an account, campaign, phone number or message id as a label: label values come
from short fixed sets (channel, status, outcome) or from the operator's configuration (connector
names).
"""

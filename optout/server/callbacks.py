"""DRP status callbacks: each status change of a request an agent gave a `status_callback`
for is POSTed there as the protocol's Exercise Status object, from a thread of its own (the
intake never waits on an agent), a few tries with backoff, no redirect followed. Only to hosts
the agent's configuration lists (checked when the request arrives); kept in this process's
memory (a restarted server sends no more callbacks for earlier requests: agents poll)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from optout.worker.messages import STATUS

log = logging.getLogger("optout.server")
TRIES = 3


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def allowed(url: str, hosts: list[str]) -> bool:
    """True when `url` is http(s) to one of `hosts` (`host` or `host:port`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return False
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return parts.hostname in hosts or host in hosts


class Callbacks:
    """Request id → its callback URL, and the sender of status changes to it."""

    def __init__(self, status_of: Callable[[str], dict]) -> None:
        self.status_of = status_of
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="optout-callbacks")
        self._opener = urllib.request.build_opener(_NoRedirect)

    def register(self, rid: str, url: str) -> None:
        with self._lock:
            self._urls[rid] = url

    def publish(self, kind: str, body: bytes) -> None:
        """The worker's status events: a callback for each one of a request that has one."""
        if kind != STATUS:
            return
        rid = json.loads(body).get("request_id")
        with self._lock:
            url = self._urls.get(rid)
        if url is not None:
            self._pool.submit(self._send, rid, url)

    def _send(self, rid: str, url: str) -> None:
        data = json.dumps(self.status_of(rid)).encode()
        for attempt in range(TRIES):
            request = urllib.request.Request(url, data=data, method="POST", headers={
                "Content-Type": "application/json"})
            try:
                with self._opener.open(request, timeout=10) as answer:
                    if 200 <= answer.status < 300:
                        return
            except (urllib.error.URLError, OSError) as exc:
                log.warning("status callback of %s: %s", rid, type(exc).__name__)
            time.sleep(0.5 * 2**attempt)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

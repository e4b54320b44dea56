"""Worker throughput: requests per second and submit-to-applied latency, batched vs one at a time.

    python bench/worker_throughput.py [--requests 1000] [--batch 100] [--single 20]

On a copy of the fixture company's files (Parquet, CSV, JSON Lines, logs, DuckDB, SQLite),
scanned into a fresh catalog: `--requests` erasure requests (the company's customers, then
people it does not hold) are submitted to NATS JetStream, and a worker in this process takes
them `--batch` at a time (one plan and one apply per batch: one pass per dataset). Then, on a
fresh copy, `--single` requests go through a worker that takes one at a time. Prints requests
per second, p50/p95 from submit to `applied`, and the ratio of the two rates. Needs NATS with
JetStream on 127.0.0.1:4222 (`bash .ci/services` starts it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optout.scanner.access import Principal  # noqa: E402
from optout.scanner.access.principals import add_principal, init_catalog  # noqa: E402
from optout.scanner.catalog import Catalog  # noqa: E402
from optout.scanner.scan import scan  # noqa: E402
from optout.worker import bus  # noqa: E402
from optout.worker.messages import REQUESTS, STATUS, ErasureRequest, subject  # noqa: E402
from optout.worker.service import Worker, WorkerSettings  # noqa: E402
from optout.worker.signing import signed_headers  # noqa: E402

NATS = "nats://127.0.0.1:4222"
COMPANY = ROOT / "fixtures" / "data" / "company"


def emails(n: int) -> list[str]:
    import pyarrow.parquet as pq

    known = [r["email"] for r in pq.read_table(COMPANY / "crm" / "customers.parquet").to_pylist()]
    return [known[i] if i < len(known) else f"nobody{i}@example.net" for i in range(n)]


async def submit(ns: str, people: list[str], catalog: Catalog) -> dict[str, float]:
    """Publish one request per person, signed by the producer `crm`; their submit times
    (epoch seconds)."""
    nc, js = await bus.connect(NATS, ns)
    sent = {}
    for i, email in enumerate(people):
        rid = f"r{i:05d}"
        body = ErasureRequest(request_id=rid, identifiers={"email": email},
                              policy="auto-erasure").model_dump_json().encode()
        sent[rid] = time.time()
        await js.publish(subject(ns, REQUESTS), body,
                         headers=signed_headers(catalog, "crm", body))
    await nc.close()
    return sent


async def applied(ns: str) -> tuple[dict[str, float], dict[str, str]]:
    """When each request's `applied` event was published (epoch seconds); the reasons of the
    requests that failed or were blocked."""
    nc, js = await bus.connect(NATS, ns)
    sub = await js.pull_subscribe(subject(ns, STATUS), stream=bus.stream_name(ns))
    out, failed = {}, {}
    try:
        while True:
            for m in await sub.fetch(500, timeout=1):
                await m.ack()  # unacknowledged, the server stops at max_ack_pending
                e = json.loads(m.data)
                if e["status"] == "applied":
                    out[e["request_id"]] = dt.datetime.fromisoformat(e["at"]).timestamp()
                elif e["status"] in ("failed", "blocked"):
                    failed[e["request_id"]] = e["detail"]
    except TimeoutError:
        pass
    await nc.close()
    return out, failed


def run(people: list[str], batch: int, work: Path) -> dict:
    data = work / "company"
    shutil.copytree(COMPANY, data, ignore=shutil.ignore_patterns("*.duckdb.wal"))
    policies = work / "policies"
    policies.mkdir()
    (policies / "auto-erasure.yaml").write_text(
        (ROOT / "policies" / "gdpr-erasure.yaml").read_text() + "\napprovals: 0\n")
    catalog = Catalog(str(work / "catalog.duckdb"))
    init_catalog(catalog)  # requests are signed by a producer holding the requester role
    add_principal(catalog, "crm", ["requester"], "admin")
    scan([str(data)], catalog, caller=Principal("bench", frozenset({"admin"})))
    ns = f"bench{uuid.uuid4().hex[:8]}"
    worker = Worker(catalog, Principal("worker", frozenset({"admin"})),
                    WorkerSettings(NATS, ns, [], policies, "auto-erasure", work,
                                   ack_wait=120, batch=batch))
    sent = asyncio.run(submit(ns, people, catalog))
    start = time.time()
    asyncio.run(worker.run(idle_exit=True))
    done, failed = asyncio.run(applied(ns))
    missing = set(sent) - set(done)
    if missing:
        first = sorted(missing)[0]
        raise SystemExit(f"{len(missing)} requests were not applied (e.g. {first}: "
                         f"{failed.get(first, 'no status')})")
    latencies = sorted(done[r] - sent[r] for r in sent)
    span = max(done.values()) - min(sent.values())
    return {"requests": len(sent), "rps": len(sent) / span, "seconds": span,
            "p50": statistics.median(latencies),
            "p95": latencies[int(0.95 * (len(latencies) - 1))], "worker_s": time.time() - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--single", type=int, default=20,
                        help="requests for the one-at-a-time run (each is a full pass)")
    args = parser.parse_args()
    if not COMPANY.exists():
        raise SystemExit("run `make fixtures` first")
    people = emails(args.requests)
    with tempfile.TemporaryDirectory() as tmp:
        batched = run(people, args.batch, Path(tmp) / "batched")
        single = run(people[:args.single], 1, Path(tmp) / "single")
    for name, r in ((f"batched (--batch {args.batch})", batched), ("one at a time", single)):
        print(f"{name:24s} {r['requests']:5d} requests in {r['seconds']:7.1f}s: "
              f"{r['rps']:6.2f} requests/s, submit→applied p50 {r['p50']:6.1f}s "
              f"p95 {r['p95']:6.1f}s")
    print(f"ratio batched / one at a time (requests per second): "
          f"{batched['rps'] / single['rps']:.1f}")


if __name__ == "__main__":
    main()

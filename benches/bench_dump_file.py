"""Peak memory of ``dump`` of one big bytes payload straight to a file.

    python benches/bench_dump_file.py [--size-mb 1024] [--competitors pickle,skypickle] [--json]

Each competitor runs in its own subprocess, so the peak resident set sizes (``ru_maxrss``) are
independent.  The child builds the payload (``size`` bytes, every page touched), notes its RSS,
dumps the payload to a temporary file in /tmp with protocol 5, closes the file and reads its
peak RSS.  A pickler that streams the payload to the file stays near ``RSS before dump``; one
that first builds the whole pickle in memory peaks at about twice the payload ("peak growth"
is how much the peak rose during the dump).  After the
measurement the child checks the file with ``pickle.load``; the file is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss() -> int:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(name: str, size: int, path: str) -> dict:
    import pickle

    if name == "pickle":
        dump, version = pickle.dump, "stdlib"
    elif name == "cloudpickle":
        import cloudpickle

        dump, version = cloudpickle.dump, cloudpickle.__version__
    elif name == "skypickle":
        import skypickle

        dump, version = skypickle.dump, skypickle.__version__
    else:
        raise SystemExit(f"unknown competitor {name!r}")

    payload = b"\xab" * size  # memset: every page is resident before the dump starts
    rss_before = _rss_now()
    maxrss_before = _maxrss()
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        dump(payload, f, protocol=5)
    seconds = time.perf_counter() - t0
    peak = _maxrss()
    file_size = os.path.getsize(path)

    # Check the file (after the peak was read; the payload is dropped first to stay within it).
    del payload
    with open(path, "rb") as f:
        back = pickle.load(f)
    verified = type(back) is bytes and len(back) == size and back.count(b"\xab") == size
    return {
        "competitor": name,
        "version": version,
        "payload_bytes": size,
        "file_bytes": file_size,
        "rss_before_dump": rss_before,
        "maxrss_before_dump": maxrss_before,
        "peak_rss": peak,
        "peak_growth": peak - maxrss_before,
        "dump_seconds": seconds,
        "verified": verified,
    }


def _warm_up_disk(size: int) -> None:
    """Write and delete a file as big as the payload, so the first competitor is not the one
    that pays for the file system's first large write (seen here as 10x slower)."""
    chunk = b"\0" * (16 * MIB)
    with tempfile.NamedTemporaryFile(prefix="skypickle-warmup-", dir="/tmp") as f:
        for _ in range(0, size, len(chunk)):
            f.write(chunk)
        f.flush()


def run(size: int, competitors: list[str], progress: bool = True) -> list[dict]:
    results = []
    _warm_up_disk(size)
    for name in competitors:
        fd, path = tempfile.mkstemp(prefix="skypickle-dump-", suffix=".pkl", dir="/tmp")
        os.close(fd)
        try:
            if progress:
                print(f"{name}: dump of {size / MIB:.0f} MiB to {path} ...", file=sys.stderr)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", name, "--size-bytes", str(size), path],
                capture_output=True,
                text=True,
            )
        finally:
            if os.path.exists(path):
                os.unlink(path)
        if proc.returncode != 0:
            results.append(
                {
                    "competitor": name,
                    "error": (proc.stderr.strip().splitlines() or ["?"])[-1],
                    "verified": False,
                }
            )
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def format_results(results: list[dict]) -> str:
    header = ["competitor", "file", "RSS before", "peak RSS", "peak growth", "dump", "verified"]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["competitor"], "-", "-", "-", "-", "-", f"FAILED: {r['error']}"])
            continue
        rows.append(
            [
                f"{r['competitor']} {r['version']}",
                f"{r['file_bytes'] / MIB:,.1f} MiB",
                f"{r['rss_before_dump'] / MIB:,.0f} MiB",
                f"{r['peak_rss'] / MIB:,.0f} MiB",
                f"{r['peak_growth'] / MIB:,.1f} MiB",
                f"{r['dump_seconds']:.2f} s",
                "yes" if r["verified"] else "NO",
            ]
        )
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    lines = [
        "  ".join(
            c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
        )
        for r in [header, ["-" * w for w in widths], *rows]
    ]
    by_name = {r["competitor"]: r for r in results if "error" not in r}
    sky, ref = by_name.get("skypickle"), by_name.get("pickle")
    if sky and ref:
        lines.append("")
        lines.append(
            f"peak RSS skypickle / pickle: {sky['peak_rss'] / ref['peak_rss']:.3f}x "
            f"({sky['peak_rss'] / MIB:,.0f} vs {ref['peak_rss'] / MIB:,.0f} MiB); peak growth "
            f"during the dump: {sky['peak_growth'] / MIB:,.1f} vs "
            f"{ref['peak_growth'] / MIB:,.1f} MiB"
        )
    lines.append(
        "dump = wall time of the dump to a real file (disk-bound and noisy: not a speed contest)"
    )
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="payload size in MiB (1024)")
    parser.add_argument("--competitors", default="pickle,skypickle", help="comma-separated names")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size-bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.size_bytes, args.path)))
        return 0

    size = args.size_mb * MIB
    names = [n.strip() for n in args.competitors.split(",") if n.strip()]
    results = run(size, names)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"dump of a {args.size_mb:,} MiB bytes payload to a file in /tmp, protocol 5,")
        print("one subprocess per competitor (peak RSS = ru_maxrss of that process)")
        print()
        print(format_results(results))
    return 0 if all(r.get("verified") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

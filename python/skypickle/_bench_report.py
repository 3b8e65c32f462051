"""The benchmark's report: the plain-text tables of ``python -m skypickle bench`` (dumps, and
hashing code for the fingerprint cases; ``--json`` prints the results themselves), and the overall
correctness verdict."""

from __future__ import annotations


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100_000:
        return f"{v / 1e3:,.0f}ms"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f}M"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f}K"
    return f"{n}B"


def _fmt_sizes(comps: dict[str, dict]) -> str:
    sizes = [c.get("size") for c in comps.values()]
    oob = [c.get("oob_bytes") for c in comps.values()]
    text = _fmt_size(sizes[0]) if len(set(sizes)) == 1 else "/".join(_fmt_size(s) for s in sizes)
    if any(oob):
        text += " +" + (
            _fmt_size(oob[0]) if len(set(oob)) == 1 else "/".join(_fmt_size(s) for s in oob)
        )
        text += " oob"
    return text


def _fmt_correct(comps: dict[str, dict]) -> str:
    wrong = [n for n, c in comps.items() if not c.get("correct") and "raised" not in c["error"]]
    failed = [n for n, c in comps.items() if not c.get("correct") and "raised" in c["error"]]
    parts = (["WRONG: " + ",".join(wrong)] if wrong else []) + (
        ["FAILED: " + ",".join(failed)] if failed else []
    )
    return "; ".join(parts) or "ok"


def _align(header: list[str], rows: list[list[str]], left: set[int]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i in left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths])] + [line(row) for row in rows]


def format_table(results: list[dict]) -> str:
    """The dumps table (then the fingerprint table, when those cases ran)."""
    dumps = [r for r in results if r.get("kind") != "fingerprint"]
    hashes = [r for r in results if r.get("kind") == "fingerprint"]
    parts = [format_dumps_table(dumps)] if dumps else []
    if hashes:
        parts.append(format_fingerprint_table(hashes))
    return "\n\n".join(parts)


def format_dumps_table(results: list[dict]) -> str:
    """A plain-text table: per-call dumps time (min / median, µs), ratios, sizes, correctness."""
    names: list[str] = []
    for r in results:
        for n in r["competitors"]:
            if n not in names:
                names.append(n)
    short = {"pickle": "pickle", "cloudpickle": "cloudpickle", "skypickle": "skypickle"}
    header = ["case"] + [f"{short.get(n, n)} µs" for n in names]
    header += ["sky/pickle", "sky/cloud", "compat/cloud", "det/sky", "loads s/p", "loads s/c"]
    header += ["size"]
    header += ["correct"]
    rows = []
    for r in results:
        if r["skipped"]:
            rows.append([r["case"]] + ["-"] * (len(header) - 2) + [f"skipped: {r['skipped']}"])
            continue
        comps = r["competitors"]
        row = [r["case"]] + _time_cells(comps, names, "dumps_min_us", "dumps_median_us")
        ratios = r["ratios"]
        row += [
            _fmt_ratio(ratios.get("dumps_min_sky_vs_pickle")),
            _fmt_ratio(ratios.get("dumps_min_sky_vs_cloudpickle")),
            _fmt_ratio(ratios.get("dumps_min_compat_vs_cloudpickle")),
            _fmt_ratio(ratios.get("dumps_min_det_vs_sky")),
            _fmt_ratio(ratios.get("loads_min_sky_vs_pickle")),
            _fmt_ratio(ratios.get("loads_min_sky_vs_cloudpickle")),
            _fmt_sizes(comps),
            _fmt_correct(comps),
        ]
        rows.append(row)
    # Left-align the text columns (case, size, correct); right-align the numbers.
    out = _align(header, rows, {0, len(header) - 2, len(header) - 1})
    notes = [
        "",
        "dumps per call, protocol 5: min / median in µs (lower is better); "
        "ratios are of the minima (< 1.00x: skypickle is faster).",
        'compat/cloud: skypickle with compat="cloudpickle" (payloads cloudpickle loads, '
        "no skypickle needed on the loading side) vs cloudpickle, code cases.",
        "det/sky: skypickle with deterministic=True (sky-det) vs its normal mode, dumps.",
        "loads s/p, s/c: pickle.loads of skypickle's output vs of pickle's (cloudpickle's) "
        "output.  Code cases (by value) have no stdlib pickle column.  "
        "size: pickle payload (pickle/cloudpickle/skypickle if they differ).",
    ]
    for r in results:
        for name, c in r["competitors"].items():
            if c.get("error"):
                notes.append(f"{r['case']}: {name}: {c['error']}")
    return "\n".join(out + notes)


def format_fingerprint_table(results: list[dict]) -> str:
    """Hashing code: skypickle.fingerprint against dask's tokenize (alone and with skypickle's
    registration) and a hash of cloudpickle's output, per call (min / median, µs)."""
    names: list[str] = []
    for r in results:
        for n in r["competitors"]:
            if n not in names:
                names.append(n)
    header = ["case"] + [f"{n} µs" for n in names]
    header += ["fp/tokenize", "tok+sky/tokenize", "fp/sha-cloud", "correct"]
    rows = []
    for r in results:
        comps = r["competitors"]
        row = [r["case"]] + _time_cells(comps, names, "min_us", "median_us")
        ratios = r["ratios"]
        wrong = [n for n, c in comps.items() if not c.get("correct")]
        row += [
            _fmt_ratio(ratios.get("fingerprint_vs_tokenize")),
            _fmt_ratio(ratios.get("tokenize_sky_vs_tokenize")),
            _fmt_ratio(ratios.get("fingerprint_vs_sha_cloudpickle")),
            "WRONG: " + ",".join(wrong) if wrong else "ok",
        ]
        rows.append(row)
    out = _align(header, rows, {0, len(header) - 1})
    notes = [
        "",
        "hashing code, per call: min / median in µs; ratios are of the minima (< 1.00x: the "
        "first is faster).",
        "fingerprint: skypickle.fingerprint(obj).  tokenize: dask.base.tokenize(obj), dask "
        "alone.  tokenize+sky: the same after skypickle.integrations.dask.install_tokenize().",
        "sha256(cloudpickle): hashlib.sha256(cloudpickle.dumps(obj)).hexdigest().  correct: "
        "the same value twice in this process.",
    ]
    for r in results:
        for name, c in r["competitors"].items():
            if c.get("error"):
                notes.append(f"{r['case']}: {name}: {c['error']}")
    return "\n".join(out + notes)


def all_correct(results: list[dict]) -> bool:
    return all(c.get("correct") for r in results for c in r["competitors"].values())


def _time_cells(comps: dict, names: list, min_key: str, median_key: str) -> list:
    """``min / median`` per competitor, ``error`` when it failed, ``-`` when it did not run."""
    cells = []
    for n in names:
        c = comps.get(n)
        if c is None or c.get(min_key) is None:
            cells.append("error" if c and c.get("error") else "-")
        else:
            cells.append(f"{_fmt_us(c[min_key])} / {_fmt_us(c[median_key])}")
    return cells

"""The peer benchmark's report: the Markdown table of OUT/results.md from results.json's
numbers (run.py builds them; the tests build their own)."""

from __future__ import annotations

from typing import Any

FEATURES_TEXT = {"inception": "Inception-v3 (pool3, the standard FID features)",
                 "evaluator": "the data set's evaluator classifier"}


def threads_text(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MiB"


def fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def kid_text(ev: dict[str, Any]) -> str:
    """KID x 1000 (+- its std over subsets), or '-'."""
    if ev.get("kid") is None:
        return "-"
    std = f" +- {ev['kid_std'] * 1000:.2f}" if ev.get("kid_std") is not None else ""
    return f"{ev['kid'] * 1000:.2f}{std}"


def table_rows(contenders: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per sample folder: the real pictures, a peer, or an imagegen run with one sampling mode."""
    rows = []
    for name, r in contenders.items():
        if r.get("error") and "steps" not in r and "evaluation" not in r:
            rows.append({"contender": name, "error": r["error"]})
            continue
        if r["kind"] == "real":
            rows.append({"contender": "real vs real", "kind": "real", **(r.get("evaluation") or {})})
            continue
        train = {"kind": r["kind"], "torch": r.get("torch"), "params": r.get("params"), "budget": r.get("budget"), "steps": r.get("steps"),
                 "batch": r.get("batch"), "train_img_per_s": r.get("train_img_per_s"), "rss_train": r.get("peak_rss_kib"),
                 "probe_img_per_s": r.get("probe_img_per_s")}
        if r["kind"] == "peer":
            rows.append({"contender": name, **train, "sampler": r.get("sampler"), "nfe": r.get("nfe"),
                         "sample_img_per_s": r.get("sample_img_per_s"), "rss_generate": None,
                         **(r.get("evaluation") or {})})
            continue
        for mode, g in r.get("generate", {}).items():
            cfg = r["default_cfg"] if g["cfg"] is None else g["cfg"]
            rows.append({"contender": f"{name} {mode} (cfg {cfg:g})", **train, "sampler": r["sampler"],
                         "nfe": g.get("nfe"), "sample_img_per_s": g.get("sample_img_per_s"),
                         "rss_generate": g.get("peak_rss_kib"), "error": g.get("error"),
                         **(g.get("evaluation") or {})})
    return rows


def evaluation_of(contenders: dict[str, Any], name: str, mode: str | None = None) -> dict[str, Any]:
    """The evaluation of a peer's samples, or of one sampling mode of an imagegen run ({} if none)."""
    r = contenders.get(name) or {}
    if mode is not None:
        r = r.get("generate", {}).get(mode) or {}
    return r.get("evaluation") or {}


def sets_text(ev: dict[str, Any]) -> str:
    """'one set of n' or 'mean of k sets of n/k: a, b, c' for an evaluation."""
    fids = ev.get("fid_seeds") or []
    if len(fids) < 2:
        return f"one set of {ev.get('n')}"
    return f"mean of {len(fids)} sets of {ev['n'] // len(fids)}: " + ", ".join(f"{f:.3f}" for f in fids)


def fid_text(row: dict[str, Any]) -> str:
    if row.get("error"):
        return "FAILED"
    return fmt(row.get("fid"), ".2f") + (f" +- {row['fid_std']:.2f}" if row.get("fid_std") is not None else "")


def row_cells(row: dict[str, Any]) -> list[str]:
    score = [fid_text(row), kid_text(row), fmt(row.get("seeds")), fmt(row.get("confident_fraction"), ".3f"),
             fmt(row.get("class_accuracy"), ".3f")]
    if row["kind"] == "real":
        return [row["contender"]] + ["-"] * 8 + score + ["-", "-"]
    return [row["contender"], fmt(row["torch"]), f"{row['params'] / 1e6:.2f} M" if row["params"] else "-",
            fmt(row["budget"], "g"), f"{row['steps']} x {row['batch']}", fmt(row["probe_img_per_s"], ".0f"),
            fmt(row["train_img_per_s"], ".0f"), f"{row['sampler']} ({fmt(row['nfe'])})",
            fmt(row["sample_img_per_s"], ".1f"), *score,
            mib(row["rss_train"]), "(in train)" if row["kind"] == "peer" else mib(row["rss_generate"])]


def dataset_text(d: dict[str, Any] | None) -> str:
    if not d:
        return ""
    classes = f"{d['classes']} classes" if d.get("classes") else "unlabelled"
    return (f", data {d.get('name', d.get('path'))} ({d['count']} images, {d['resolution']} px, "
            f"{d['channels']} channel{'s' if d['channels'] != 1 else ''}, {classes})")


def report(results: dict[str, Any]) -> str:
    features = results.get("features", "evaluator")
    cols = ["contender", "torch", "params", "budget s", "steps x batch", "probe img/s", "train img/s", "sampler (NFE)",
            "sampling img/s", "FID of n (mean +- std over sets)", "KID x 1000", "sets of n", "confident",
            "requested class", "peak RSS train", "peak RSS generate"]
    lines = [f"## Peer comparison, {results['date']}, {results['machine']}, {threads_text(results['threads'])}"
             f"{dataset_text(results.get('dataset'))}, n = {results['n']} samples per set, "
             f"{'Inception' if features == 'inception' else 'evaluator'} features", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table_rows(results["contenders"]):
        if "kind" not in row:
            lines.append(f"| {row['contender']} | FAILED (below) |" + " |" * (len(cols) - 2))
            continue
        lines.append("| " + " | ".join(row_cells(row)) + " |")
    lines.append("")
    if results.get("timing") == "matched":
        lines.append("- timing: matched. Every contender's clean training speed was probed first (probe img/s, the "
                     "fastest of alternating rounds); each then trained for the steps its budget buys at that speed. "
                     "train img/s is the speed it actually got.")
    else:
        lines.append("- timing: wall clock. Each contender trained for its budget in seconds.")
    mm = results.get("matmul", {})
    ceil = [f"{name} env (torch {m['torch']}) {m['gflops']:.1f} GFLOP/s" for name, m in mm.items() if "gflops" in m]
    if ceil:
        lines.append(f"- fp32 matmul 2048^2 ceiling, {threads_text(results['threads'])}: " + "; ".join(ceil))
    c = results["contenders"]
    if (real := evaluation_of(c, "real")).get("fid") is not None:
        lines.append(f"- real vs real: {real['n']} pictures drawn at random from the data set, scored like the "
                     f"samples against the whole set: FID {real['fid']:.2f}, KID x 1000 {kid_text(real)}; the floor "
                     "of FID at this n")
    peers = [f for f in (evaluation_of(c, "diffusers").get("fid"), evaluation_of(c, "lucidrains").get("fid")) if f is not None]
    if peers:
        best = min(peers)
        for name in ("imagegen", "imagegen-short"):
            modes = (c.get(name) or {}).get("generate", {})
            for mode in sorted(modes, key=lambda m: m != "unguided"):  # unguided, the headline, first
                ev = evaluation_of(c, name, mode)
                if f := ev.get("fid"):
                    fids = ev.get("fid_seeds") or []
                    first = f"; the first set alone: {best / fids[0]:.1f}x" if len(fids) > 1 else ""
                    lines.append(f"- best peer FID / {name} {mode} FID: {best:.2f} / {f:.2f} = {best / f:.1f}x "
                                 f"({sets_text(ev)}{first})")
    if g := results.get("gen_rss"):
        lines.append(f"- generation memory: {g['n']} images (default guidance) peak RSS {mib(g.get('peak_rss_kib'))}"
                     + (f" ({g['sample_img_per_s']} img/s)" if "sample_img_per_s" in g else "")
                     + (f"; FAILED: {g['error']}" if g.get("error") else ""))
    errors = [f"{n}: {r['error']}" for n, r in c.items() if r.get("error")]
    errors += [f"{n} {mode}: {g['error']}" for n, r in c.items() for mode, g in r.get("generate", {}).items()
               if g.get("error")]
    lines += [f"- FAILED {e}" for e in errors]
    lines.append(f"- scores by `imagegen evaluate --features {features}` with {FEATURES_TEXT[features]}: FID and KID "
                 "(x 1000) against the whole data set" + (", confident (>0.9) and requested class (class accuracy) by "
                                                          "the data set's evaluator" if features == "evaluator" else "")
                 + ". Every FID is of sets of n samples (FID is biased upwards at small n, so only sets of one size "
                 "are compared): a peer samples one set; imagegen samples --draws sets per mode (seeds "
                 "k*n .. (k+1)*n - 1) and its FID is their mean +- std. KID is over all of a row's samples.")
    lines.append("- peers train and sample in one process: their peak RSS is under 'train'. "
                 "lucidrains' model is unconditional; diffusers' is class-conditional on a labelled data set.")
    return "\n".join(lines) + "\n"

#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-only
"""Turn bench/run.sh's raw.txt into results.md and PNG plots (gnuplot), stdlib only.

usage: report.py RESULTS_DIR
"""
import os
import shlex
import shutil
import statistics
import subprocess
import sys

SIDES = ["stock", "xcsave", "limit"]


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = {}
            for tok in shlex.split(line):
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    d[k] = v
            rows.append(d)
    return rows


def median_rows(rows):
    """One row per (scenario, side): the median over reps of every numeric figure."""
    groups, order = {}, []
    for r in rows:
        key = (r.get("scenario"), r.get("side"))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    out = []
    for key in order:
        g = groups[key]
        ok = [r for r in g if r.get("ok") == "1"] or g
        m = dict(ok[0])
        m["reps"] = str(len(ok))
        m["ok"] = "1" if all(r.get("ok") == "1" for r in g) else ok[0].get("ok", "0")
        if m["ok"] != "1" and not m.get("error"):
            m["error"] = next((r.get("error", "") for r in g if r.get("error")), "")
        for k in m:
            vals = []
            for r in ok:
                try:
                    vals.append(float(r[k]))
                except (KeyError, ValueError):
                    vals = None
                    break
            if vals and len(vals) > 1 and k not in ("rep", "mem_mib", "cost_page_ns", "dirty",
                                                    "ok", "save_rc", "ckpts", "reps"):
                m[k] = repr(statistics.median(vals))
        out.append(m)
    return out


def num(d, k, default=None):
    try:
        return float(d[k])
    except (KeyError, ValueError):
        return default


def f(v, fmt="{:.0f}"):
    return "–" if v is None else fmt.format(v)


def ratio(a, b, fmt="{:.2f}"):
    if a is None or b is None or b == 0:
        return "–"
    return fmt.format(a / b)


def cost_name(c):
    c = int(c)
    return "0 (bare mmap)" if c == 0 else "%g µs/page" % (c / 1000)


def tput50(d):
    """Throughput of the median checkpoint: bytes per checkpoint / p50 downtime."""
    b, t = num(d, "ckpt_bytes"), num(d, "dt_p50_ms")
    return b / t / 1e3 if b and t else None


def main():
    out = sys.argv[1]
    raw = parse(os.path.join(out, "raw.txt"))
    rows = median_rows(raw)
    machine = open(os.path.join(out, "machine.txt")).read().strip()
    by = {}
    for r in rows:
        by[(r.get("scenario"), r.get("side"))] = r
    scen_order = []
    for r in rows:
        if r.get("scenario") not in scen_order:
            scen_order.append(r.get("scenario"))

    def skey(s):
        d = next((r for r in rows if r.get("scenario") == s and r.get("ok") == "1"), {})
        kinds = ["remus", "colo", "live", "nonlive"]
        m = d.get("mode", "zz")
        return (int(d.get("cost_page_ns", 0)), kinds.index(m) if m in kinds else 9,
                int(d.get("mem_mib", 0)), int(d.get("dirty", 0)), s or "")
    scen_order = [s for s in sorted(scen_order, key=skey)
                  if any(r.get("scenario") == s and r.get("ok") == "1" for r in rows)] + \
        [s for s in scen_order
         if not any(r.get("scenario") == s and r.get("ok") == "1" for r in rows)]

    md = []
    md.append("# xcsave benchmark (xensim)\n")
    md.append("```\n" + machine + "\n```\n")
    md.append(
        "Sides: **stock** = Debian libxenguest 4.17 `xc_domain_save`; **xcsave** = this "
        "library (default cache: Remus/COLO on a PV dom0 or a PVH dom0 with unpopulated frames "
        "map the whole guest, within a 64 GiB process-wide cap; otherwise a budget of 1/8 of "
        "the guest within 256 MiB-1 GiB; 1 MiB buckets); **limit** = the same record "
        "framing and bytes as xcsave's stream, written with `writev` from ordinary memory. "
        "All three write into a pipe (64 KiB, the Linux default) drained by a separate process "
        "that only parses the record framing. MB = 10^6 bytes. Cost = xensim's modelled "
        "hypervisor cost per mapped page (the limit maps nothing, so its cost column only says "
        "which run it belongs to).\n")
    md.append(
        "One Remus/COLO save per scenario serves the three dirty-set sizes in turn; for each, "
        "1 cold checkpoint (its first; reported apart as *cold*) then N measured ones. "
        "Checkpoint 1 ends the initial live migration and is not counted. With several reps "
        "every figure is the median over the reps. Downtime = suspend callback's return -> postcopy callback. "
        "**tput** = sum of checkpoint bytes / sum of downtimes; **tput@p50** = mean checkpoint "
        "bytes / p50 downtime (robust to other load on the machine). p99 of 20 samples is the "
        "maximum. maps/ckpt = xensim MMAPBATCH calls inside the downtime (warm: checkpoints 3..); "
        "pages mapped likewise. CPU = user+sys of the saving process inside the downtimes per GiB "
        "of checkpoint data (xensim's emulation and busy-wait cost model run in that process).\n")

    # ---- correctness sample ----
    ver = [r for r in rows if r.get("side") == "verify"]
    if ver:
        md.append("## Correctness sample\n")
        md.append("xcsave with this workload into the **stock** `xc_domain_restore` (harness): the "
                  "secondary compared with the primary's state at suspend at every checkpoint, "
                  "and `verify-stream-v2` over the stream.\n")
        md.append("| stream | guest | dirty pages | cost | checkpoints | states equal | "
                  "verify-stream-v2 | result |")
        md.append("|---|---|---:|---|---:|---:|---|---|")
        for r in ver:
            md.append("| %s | %s MiB | %s | %s | %s | %s | %s | %s |" % (
                r.get("mode", "?"), r.get("mem_mib", "?"), r.get("dirty", "?"),
                cost_name(r.get("cost_page_ns", 0)), r.get("ckpts", "?"),
                r.get("compared", "?"),
                "accepts" if r.get("verify_rc") == "0" else "exit " + r.get("verify_rc", "?"),
                "OK" if r.get("ok") == "1" else "**FAILED** " + r.get("error", "")))
        md.append("")

    # ---- checkpoint headline ----
    ck = [s for s in scen_order if s and (s.startswith("remus") or s.startswith("colo"))]
    if ck:
        md.append("## Checkpoint streams (Remus, COLO): headline\n")
        md.append("Throughput here is **tput@p50** (mean checkpoint bytes / p50 downtime); the "
                  "all-checkpoint figure (sum of bytes / sum of downtimes) is in the next table.\n")
        md.append("| stream | guest | dirty pages | cost | stock MB/s | xcsave MB/s | limit MB/s "
                  "| xcsave/limit | xcsave/stock | stock p50 ms | xcsave p50 ms | limit p50 ms "
                  "| xcsave/limit p50 | xcsave warm maps/ckpt | cold ckpt ms stock / xcsave / limit |")
        md.append("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in ck:
            st, xc, li = (by.get((s, x), {}) for x in SIDES)
            ref = xc or st
            md.append("| %s | %s MiB | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                ref.get("mode", "?"), ref.get("mem_mib", "?"), ref.get("dirty", "?"),
                cost_name(ref.get("cost_page_ns", 0)),
                f(tput50(st)), f(tput50(xc)), f(tput50(li)),
                ratio(tput50(xc), tput50(li)), ratio(tput50(xc), tput50(st)),
                f(num(st, "dt_p50_ms"), "{:.2f}"), f(num(xc, "dt_p50_ms"), "{:.2f}"),
                f(num(li, "dt_p50_ms"), "{:.2f}"),
                ratio(num(xc, "dt_p50_ms"), num(li, "dt_p50_ms")),
                f(num(xc, "warm_maps_per_ckpt"), "{:.2f}"),
                " / ".join(f(num(x, "dt_cold_ms"), "{:.2f}") for x in (st, xc, li))))
        md.append("")

        md.append("## Checkpoint streams: every figure\n")
        md.append("| scenario | side | ok | tput MB/s | Gb/s | tput@p50 MB/s | dt p50 ms | dt p99 ms "
                  "| ckpt MiB | maps/ckpt (warm) | pages mapped/ckpt | cache hits/ckpt "
                  "| cache maps/ckpt | cold ckpt: ms, maps | CPU s/GiB | peak RSS MiB | peak anon MiB "
                  "| peak mapped MiB | peak privcmd VMAs | peak process VMAs |")
        md.append("|---|---|---|" + "---:|" * 17)
        for s in ck:
            for side in SIDES:
                d = by.get((s, side))
                if not d:
                    continue
                mapped = num(d, "cache_peak_mib")
                if mapped is None:
                    mapped = (num(d, "peak_map_pages", 0) or 0) * 4096 / 1048576
                vmas = d.get("cache_peak_vmas", d.get("peak_map_vmas", "–"))
                md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s "
                          "| %s | %s | %s | %s | %s | %s | %s |" % (
                              s, side, "yes" if d.get("ok") == "1" else "**no** " + d.get("error", ""),
                              f(num(d, "tput_mbps")), f(num(d, "tput_gbps"), "{:.2f}"),
                              f(tput50(d)),
                              f(num(d, "dt_p50_ms"), "{:.2f}"), f(num(d, "dt_p99_ms"), "{:.2f}"),
                              f((num(d, "ckpt_bytes") or 0) / 1048576, "{:.1f}"),
                              f(num(d, "maps_per_ckpt"), "{:.2f}"),
                              f(num(d, "warm_maps_per_ckpt"), "{:.2f}"),
                              f(num(d, "pages_mapped_per_ckpt"), "{:.0f}"),
                              f(num(d, "cache_hits_per_ckpt"), "{:.0f}"),
                              f(num(d, "cache_maps_per_ckpt"), "{:.2f}"),
                              "%s, %s" % (f(num(d, "dt_cold_ms"), "{:.2f}"),
                                          f(num(d, "cold_maps"), "{:.0f}")),
                              f(num(d, "cpu_s_per_gib"), "{:.3f}"),
                              f(num(d, "maxrss_mib")), f(num(d, "peak_anon_mib"), "{:.1f}"),
                              "–" if side == "limit" else f(mapped),
                              "–" if side == "limit" else vmas,
                              d.get("peak_proc_vmas", "–")))
        md.append("")

    # ---- live / non-live ----
    lv = [s for s in scen_order if s and (s.startswith("live") or s.startswith("nonlive"))]
    if lv:
        md.append("## Live migration (background dirtier on) and non-live save\n")
        md.append("Live: stock's precopy policy (stop below 50 dirty pages or after 5 "
                  "iterations); the dirtier writes 10,000 pages/s over the first 256 MiB. "
                  "first pass = iteration 1 (every page); later = iterations 2.. . "
                  "Downtime = suspend callback's return -> save returns (non-live: the whole "
                  "save). Total MB/s = stream bytes / save time.\n")
        md.append("| scenario | side | ok | total MB/s | Gb/s | first pass MB/s | later MB/s "
                  "| iterations | downtime ms | save s | stream MiB | map calls | CPU s/GiB "
                  "| peak RSS MiB | peak mapped MiB | peak privcmd VMAs |")
        md.append("|---|---|---|" + "---:|" * 13)
        for s in lv:
            for side in SIDES:
                d = by.get((s, side))
                if not d:
                    continue
                mapped = num(d, "cache_peak_mib")
                if mapped is None:
                    mapped = (num(d, "peak_map_pages", 0) or 0) * 4096 / 1048576
                md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    s, side, "yes" if d.get("ok") == "1" else "**no** " + d.get("error", ""),
                    f(num(d, "tput_mbps")), f(num(d, "tput_gbps"), "{:.2f}"),
                    f(num(d, "first_pass_mbps")), f(num(d, "later_mbps")),
                    d.get("iterations", "–"),
                    "–" if side == "limit" else f(num(d, "downtime_ms"), "{:.1f}"),
                    f(num(d, "wall_s"), "{:.2f}"),
                    f((num(d, "stream_bytes") or 0) / 1048576),
                    d.get("total_map_calls", "–"), f(num(d, "cpu_s_per_gib"), "{:.3f}"),
                    f(num(d, "maxrss_mib")),
                    "–" if side == "limit" else f(mapped),
                    "–" if side == "limit" else d.get("cache_peak_vmas", d.get("peak_map_vmas", "–"))))
        md.append("")

    patterns(md, rows, by, paired_ratios(raw))
    receiving(md, rows, by)

    plots = plot(out, rows) + plot_patterns(out, rows) + plot_receiving(out, rows)
    if plots:
        md.append("## Plots\n")
        for p in plots:
            md.append("![%s](%s)\n" % (p, p))
    with open(os.path.join(out, "results.md"), "w") as fo:
        fo.write("\n".join(md) + "\n")


def plot(out, rows):
    """One PNG per checkpoint guest size: throughput and p50 downtime vs dirty pages."""
    gp = shutil.which("gnuplot")
    if not gp:
        print("report: gnuplot not found (apt-get install gnuplot-nox): no plot", file=sys.stderr)
        return []
    ck = [r for r in rows if r.get("mode") in ("remus", "colo") and r.get("ok") == "1"
          and not r.get("scenario", "").startswith(("pat-", "restore-"))]
    mems = sorted({int(r["mem_mib"]) for r in ck})
    costs = sorted({int(r["cost_page_ns"]) for r in ck})
    made = []
    colors = {"stock": "#d62728", "xcsave": "#1f77b4", "limit": "#2ca02c"}
    for mem in mems:
        data = os.path.join(out, ".plot-%d.dat" % mem)
        series = []
        with open(data, "w") as fo:
            for cost in costs:
                for mode in ("remus", "colo"):
                    for side in SIDES:
                        pts = sorted((int(r["dirty"]), tput50(r) or 0, num(r, "dt_p50_ms"))
                                     for r in ck if int(r["mem_mib"]) == mem and
                                     int(r["cost_page_ns"]) == cost and r["mode"] == mode and
                                     r["side"] == side)
                        if not pts:
                            continue
                        fo.write("# %d %s %s\n" % (cost, mode, side))
                        for p in pts:
                            fo.write("%d %f %f\n" % p)
                        fo.write("\n\n")
                        series.append((cost, mode, side))
        png = "checkpoints-%dM.png" % mem
        g = ['set terminal pngcairo size 1400,900 font "sans,10"',
             'set output "%s"' % os.path.join(out, png),
             'set multiplot layout 2,%d title "%d MiB guest: Remus (solid) and COLO (dashed), '
             '20+ checkpoints each; xensim, pipe + drain"' % (len(costs), mem),
             'set logscale x 2', 'set xtics (512, 2048, 16384)', 'set xrange [400:21000]',
             'set grid',
             'set key top left', 'set xlabel "dirty pages per checkpoint"']
        for what, col, ylab in (("throughput", 2, "MB/s at p50 (checkpoint bytes / p50 downtime)"),
                                ("downtime", 3, "downtime p50, ms")):
            for cost in costs:
                g.append('set title "%s, cost model %s"' % (what, cost_name(cost)))
                g.append('set ylabel "%s"' % ylab)
                if what == "downtime":
                    g.append("set logscale y")
                else:
                    g.append("unset logscale y")
                parts = []
                for i, (c, mode, side) in enumerate(series):
                    if c != cost:
                        continue
                    parts.append("'%s' index %d using 1:%d with linespoints lw 2 pt 7 "
                                 "dt %d lc rgb '%s' title '%s %s'" % (
                                     data, i, col, 1 if mode == "remus" else 2, colors[side],
                                     side, mode))
                g.append("plot " + ", \\\n     ".join(parts))
        g.append("unset multiplot")
        r = subprocess.run([gp], input="\n".join(g) + "\n", text=True, capture_output=True)
        if r.returncode:
            print("report: gnuplot failed: " + r.stderr, file=sys.stderr)
            continue
        os.unlink(data)
        made.append(png)
    return made


def receiving(md, rows, by):
    """The receiving side: stock's and xcsave's xc_domain_restore on the same checkpoints."""
    rs = [r for r in rows if r.get("scenario", "").startswith("restore-")]
    if not rs:
        return
    scen = []
    for r in sorted(rs, key=lambda r: (int(r.get("cost_page_ns", 0)),
                                       ["remus", "colo"].index(r["mode"])
                                       if r.get("mode") in ("remus", "colo") else 9,
                                       int(r.get("mem_mib", 0)), int(r.get("dirty", 0)))):
        if r["scenario"] not in scen:
            scen.append(r["scenario"])
    md.append("## Receiving side: `xc_domain_restore` applying checkpoints\n")
    md.append(
        "One Remus stream per guest size, recorded with xcsave's saver (the initial migration, "
        "then one checkpoint of each dirty-set size: the hot pattern), is applied by the "
        "**stock** restore (Debian's libxenguest, `dlvsym`) and by **xcsave**'s "
        "(`xcsave_domain_restore`), each in its own process, as a Remus and as a COLO secondary "
        "(the same bytes): the initial migration once, then each size's checkpoint 1 cold + N "
        "times. **apply** = the restore's checkpoint callback returns (the checkpoint is "
        "received and held) -> COLO: its postcopy callback (what the primary waits for before "
        "its own postcopy); Remus: its first read of the next checkpoint. p90 of N samples by "
        "nearest rank. **maps** = xensim MMAPBATCH calls of the secondary in that window, per "
        "warm checkpoint (the cold one apart). COLO's secondary runs between checkpoints "
        "(resumed, 16 pages written, suspended), as libxl runs it.\n")
    md.append("| stream | guest | dirty | cost | stock apply p50 / p90 ms | xcsave apply p50 / p90 "
              "ms | stock/xcsave p50 | maps/warm ckpt stock / xcsave | pages mapped/ckpt stock / "
              "xcsave | xcsave cache hits/ckpt | cold apply ms stock / xcsave "
              "| first pass s stock / xcsave | result |")
    md.append("|---|---:|---:|---|---|---|---:|---|---|---:|---|---|---|")
    for s in scen:
        st, xc = by.get((s, "stock"), {}), by.get((s, "xcsave"), {})
        ref = xc or st
        bad = [x for x in (st, xc) if x and x.get("ok") != "1"]
        md.append("| %s | %s MiB | %s | %s | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s | "
                  "%s / %s | %s / %s | %s |" % (
                      ref.get("mode", "?"), ref.get("mem_mib", "?"), ref.get("dirty", "?"),
                      cost_name(ref.get("cost_page_ns", 0)),
                      f(num(st, "apply_p50_ms"), "{:.2f}"), f(num(st, "apply_p90_ms"), "{:.2f}"),
                      f(num(xc, "apply_p50_ms"), "{:.2f}"), f(num(xc, "apply_p90_ms"), "{:.2f}"),
                      ratio(num(st, "apply_p50_ms"), num(xc, "apply_p50_ms")),
                      f(num(st, "warm_maps_per_ckpt"), "{:.2f}"),
                      f(num(xc, "warm_maps_per_ckpt"), "{:.2f}"),
                      f(num(st, "warm_pages_mapped_per_ckpt"), "{:.0f}"),
                      f(num(xc, "warm_pages_mapped_per_ckpt"), "{:.0f}"),
                      f(num(xc, "cache_hits_per_ckpt"), "{:.0f}"),
                      f(num(st, "apply_cold_ms"), "{:.2f}"), f(num(xc, "apply_cold_ms"), "{:.2f}"),
                      f(num(st, "first_pass_s"), "{:.2f}"), f(num(xc, "first_pass_s"), "{:.2f}"),
                      "OK" if not bad and st and xc else
                      "**FAILED** " + "; ".join(x.get("side", "?") + ": " + x.get("error", "")
                                                for x in bad)))
    gen = [r for r in rows if r.get("side") == "gen"]
    for r in gen:
        md.append("\n**The receiving side's stream could not be recorded**: %s" % r.get("error"))
    md.append("")


def plot_receiving(out, rows):
    """Apply p50 against dirty pages, stock and xcsave, Remus and COLO, one panel per cost."""
    gp = shutil.which("gnuplot")
    rs = [r for r in rows if r.get("scenario", "").startswith("restore-") and r.get("ok") == "1"]
    if not gp or not rs:
        return []
    data = os.path.join(out, ".plot-restore.dat")
    costs = sorted({int(r["cost_page_ns"]) for r in rs})
    colors = {"stock": "#d62728", "xcsave": "#1f77b4"}
    series = []
    with open(data, "w") as fo:
        for cost in costs:
            for mode in ("remus", "colo"):
                for side in ("stock", "xcsave"):
                    pts = sorted((int(r["dirty"]), num(r, "apply_p50_ms")) for r in rs
                                 if int(r["cost_page_ns"]) == cost and r["mode"] == mode and
                                 r["side"] == side)
                    if not pts:
                        continue
                    fo.write("# %d %s %s\n" % (cost, mode, side))
                    for p in pts:
                        fo.write("%d %f\n" % p)
                    fo.write("\n\n")
                    series.append((cost, mode, side))
    png = "restore.png"
    g = ['set terminal pngcairo size 1200,500 font "sans,10" noenhanced',
         'set output "%s"' % os.path.join(out, png),
         'set multiplot layout 1,%d title "xc_domain_restore: apply time per checkpoint, p50; '
         'Remus (solid) and COLO (dashed); xensim"' % len(costs),
         'set logscale xy', 'set xtics (2048, 16384)', 'set xrange [1500:22000]', 'set grid',
         'set key top left', 'set xlabel "dirty pages per checkpoint"',
         'set ylabel "apply p50, ms"']
    for cost in costs:
        parts = ["'%s' index %d using 1:2 with linespoints lw 2 pt 7 dt %d lc rgb '%s' "
                 "title '%s %s'" % (data, i, 1 if mode == "remus" else 2, colors[side], side,
                                    mode)
                 for i, (c, mode, side) in enumerate(series) if c == cost]
        g.append('set title "cost model %s"' % cost_name(cost))
        g.append("plot " + ", \\\n     ".join(parts))
    g.append("unset multiplot")
    r = subprocess.run([gp], input="\n".join(g) + "\n", text=True, capture_output=True)
    if r.returncode:
        print("report: gnuplot failed: " + r.stderr, file=sys.stderr)
        return []
    os.unlink(data)
    return [png]


PATTERNS = ["hot", "drift", "random", "sweep"]


def pat_key(r):
    dom0 = r.get("dom0") or r.get("scenario", "pat-?-?-").split("-")[2]
    return (r.get("pattern", ""), dom0, int(r.get("mem_mib", 0)), int(r.get("dirty", 0)),
            int(r.get("cost_page_ns", 0)))


def paired_ratios(raw):
    """Per scenario, the median over reps of each rep's own xcsave/limit MB/s and xcsave/stock
    first pass: the sides of one rep run back to back, so their ratio leaves out the host's
    drift between reps, which the ratio of the per-side medians keeps."""
    reps = {}
    for r in raw:
        if r.get("ok") == "1":
            reps.setdefault((r.get("scenario"), r.get("rep")), {})[r.get("side")] = r
    vals = {}
    for (s, _), d in reps.items():
        st, xc, li = (d.get(x, {}) for x in SIDES)
        v = vals.setdefault(s, ([], []))
        for i, x in enumerate((ratio_v(tput50(xc), tput50(li)),
                               ratio_v(num(xc, "first_pass_s"), num(st, "first_pass_s")))):
            if x is not None:
                v[i].append(x)
    return {s: tuple(statistics.median(x) if x else None for x in v) for s, v in vals.items()}


def patterns(md, rows, by, paired):
    """The dirty-pattern axis: stock, xcsave and the limit side by side, plus dom0's cost."""
    pr = [r for r in rows if r.get("scenario", "").startswith("pat-")]
    if not pr:
        return
    scen = []
    for r in sorted(pr, key=lambda r: (PATTERNS.index(r.get("pattern", "hot"))
                                       if r.get("pattern") in PATTERNS else 9,) + pat_key(r)[1:]):
        if r["scenario"] not in scen:
            scen.append(r["scenario"])
    md.append("## Dirty patterns (Remus)\n")
    md.append(
        "One save per guest size, cost and dom0 model serves every pattern at 2,048 and 16,384 "
        "pages per checkpoint, in the order hot, drift, random, sweep (1 cold + N measured "
        "checkpoints each). **hot**: the same 64-page-clustered set every checkpoint (the "
        "headline's workload); **drift**: that set with 25 % of its 64-page runs moved to fresh "
        "places every checkpoint; **random**: uniformly random pages of all RAM, drawn afresh "
        "every checkpoint; **sweep**: the next consecutive pages every checkpoint. MB/s at p50 as "
        "in the headline; maps = MMAPBATCH calls per warm checkpoint. dom0 cost of the saving "
        "process at its peak: mapped MiB and privcmd VMAs (xcsave: its cache's peak; stock: "
        "sampled at the checkpoint callbacks, where its per-batch mappings of at most 1,024 "
        "pages are already gone, hence 0), page tables "
        "(VmPTE of the saver, KiB), dom0 frames taken (xensim's PVH models only; ballooned RAM "
        "in pvh-balloon). First pass = iteration 1 of the initial live migration, s (ratio to "
        "stock's). Guests above 4 GiB are sparse (unfilled RAM).\n")
    md.append("| pattern | dom0 | guest | dirty | cost | stock MB/s | xcsave MB/s | limit MB/s "
              "| xcsave/limit | p50 ms stock / xcsave / limit | maps/ckpt stock / xcsave "
              "| first pass s stock / xcsave (ratio) | peak mapped MiB stock / xcsave "
              "| privcmd VMAs stock / xcsave | VmPTE KiB stock / xcsave | dom0 frames xcsave |")
    md.append("|---|---|---:|---:|---|" + "---:|" * 11)
    for s in scen:
        st, xc, li = (by.get((s, x), {}) for x in SIDES)
        ref = xc or st
        def mib(d):
            if not d:
                return "–"
            m = num(d, "cache_peak_mib")
            return f(m if m is not None else (num(d, "peak_map_pages", 0) or 0) * 4096 / 1048576)
        md.append("| %s | %s | %s MiB | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            ref.get("pattern", "?"), ref.get("dom0", "?"), ref.get("mem_mib", "?"),
            ref.get("dirty", "?"), cost_name(ref.get("cost_page_ns", 0)),
            f(tput50(st)), f(tput50(xc)), f(tput50(li)), ratio(tput50(xc), tput50(li)),
            " / ".join(f(num(x, "dt_p50_ms"), "{:.1f}") for x in (st, xc, li)),
            " / ".join(f(num(x, "warm_maps_per_ckpt"), "{:.1f}") for x in (st, xc)),
            "%s / %s (%s)" % (f(num(st, "first_pass_s"), "{:.2f}"),
                              f(num(xc, "first_pass_s"), "{:.2f}"),
                              ratio(num(xc, "first_pass_s"), num(st, "first_pass_s"))),
            "%s / %s" % (mib(st), mib(xc)),
            "%s / %s" % (st.get("peak_map_vmas", "–"),
                         xc.get("cache_peak_vmas", xc.get("peak_map_vmas", "–"))),
            "%s / %s" % (f(num(st, "peak_vmpte_kib")), f(num(xc, "peak_vmpte_kib"))),
            f(num(xc, "dom0_frames_peak"))))
    md.append("")
    targets(md, scen, by, paired)


def targets(md, scen, by, paired):
    """Issue 13's targets on the PV-dom0 rows: which hold, row by row, and how many."""
    names = ["0 maps/warm ckpt", "xcsave >= 0.85 x limit MB/s", "p50 <= 1.3 x limit's",
             "first pass <= 1.1 x stock's", "VmPTE <= 0.3 % of guest RAM"]
    met = [0] * len(names)
    met_p = [0, 0]
    lines = []
    n = 0
    for s in scen:
        st, xc, li = (by.get((s, x), {}) for x in SIDES)
        if xc.get("dom0") != "pv" or xc.get("ok") != "1":
            continue
        n += 1
        mem = num(xc, "mem_mib", 0) * 1024
        vals = [num(xc, "warm_maps_per_ckpt"),
                ratio_v(tput50(xc), tput50(li)),
                ratio_v(num(xc, "dt_p50_ms"), num(li, "dt_p50_ms")),
                ratio_v(num(xc, "first_pass_s"), num(st, "first_pass_s")),
                100 * num(xc, "peak_vmpte_kib", 0) / mem if mem else None]
        ok = [vals[0] is not None and vals[0] == 0,
              vals[1] is not None and vals[1] >= 0.85,
              vals[2] is not None and vals[2] <= 1.3,
              vals[3] is not None and vals[3] <= 1.1,
              vals[4] is not None and vals[4] <= 0.3]
        for i, o in enumerate(ok):
            met[i] += o
        pv = paired.get(s, (None, None))
        pok = [pv[0] is not None and pv[0] >= 0.85, pv[1] is not None and pv[1] <= 1.1]
        for i, o in enumerate(pok):
            met_p[i] += o
        fmts = ["{:.1f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.3f} %"]
        cells = [("" if o else "**") + f(v, fm) + ("" if o else "**")
                 for v, fm, o in zip(vals, fmts, ok)]
        for i, col in ((0, 1), (1, 3)):
            cells[col] += " (%s%s%s)" % ("" if pok[i] else "**", f(pv[i], "{:.2f}"),
                                         "" if pok[i] else "**")
        lines.append("| %s | %s MiB | %s | %s | %s |" % (
            xc.get("pattern", "?"), xc.get("mem_mib", "?"), xc.get("dirty", "?"),
            cost_name(xc.get("cost_page_ns", 0)), " | ".join(cells)))
    if not n:
        return
    md.append("### Issue 13's targets, PV dom0, default settings\n")
    md.append("Met in: " + "; ".join("%s %d/%d" % (nm, m, n) for nm, m in zip(names, met)) +
              ". Misses in bold (first pass: the first pass of stock and xcsave in the same "
              "scenario; VmPTE: the saver's peak page tables against guest RAM). In brackets, "
              "and counted apart: the median of each rep's own ratio (the sides of a rep run "
              "back to back, so the host's drift between reps drops out): MB/s %d/%d, first "
              "pass %d/%d.\n" % (met_p[0], n, met_p[1], n))
    md.append("| pattern | guest | dirty | cost | maps/warm ckpt | xcsave/limit MB/s "
              "| p50 xcsave/limit | first pass xcsave/stock | VmPTE % of guest |")
    md.append("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    md.extend(lines)
    md.append("")


def ratio_v(a, b):
    return None if a is None or b is None or b == 0 else a / b


def plot_patterns(out, rows):
    """One panel per pattern: MB/s at p50 of every side against the guest size."""
    gp = shutil.which("gnuplot")
    pr = [r for r in rows if r.get("scenario", "").startswith("pat-") and r.get("ok") == "1"]
    if not gp or not pr:
        return []
    data = os.path.join(out, ".plot-patterns.dat")
    colors = {"stock": "#d62728", "xcsave": "#1f77b4", "limit": "#2ca02c"}
    series = []
    with open(data, "w") as fo:
        for pat in PATTERNS:
            for r0 in sorted({pat_key(r)[1:2] + pat_key(r)[3:] for r in pr
                              if r.get("pattern") == pat}):
                for side in SIDES:
                    pts = sorted((int(r["mem_mib"]) / 1024, tput50(r) or 0) for r in pr
                                 if r.get("pattern") == pat and r["side"] == side and
                                 pat_key(r)[1:2] + pat_key(r)[3:] == r0)
                    if not pts:
                        continue
                    fo.write("# %s %s %s\n" % (pat, r0, side))
                    for p in pts:
                        fo.write("%g %f\n" % p)
                    fo.write("\n\n")
                    series.append((pat, r0, side))
    png = "patterns.png"
    g = ['set terminal pngcairo size 1600,1000 font "sans,9"',
         'set output "%s"' % os.path.join(out, png),
         'set multiplot layout 2,2 title "Remus, dirty patterns: MB/s at p50 against guest size; '
         'solid 16,384 / dashed 2,048 pages per checkpoint; thick = cost 2 us/page; '
         'circles PV dom0, triangles ballooned PVH"',
         'set logscale x 2', 'set logscale y', 'set grid', 'set key top left font ",7"',
         'set xlabel "guest GiB"', 'set ylabel "MB/s at p50"']
    for pat in PATTERNS:
        parts = []
        for i, (p, (dom0, dirty, cost), side) in enumerate(series):
            if p != pat:
                continue
            parts.append("'%s' index %d using 1:2 with linespoints lw %d pt %d dt %d lc rgb '%s' "
                         "title '%s %s %d c%g'" % (
                             data, i, 3 if cost else 1, 7 if dom0 == "pv" else 9,
                             1 if dirty > 2048 else 2, colors[side], side, dom0, dirty,
                             cost / 1000))
        if not parts:
            continue
        g.append('set title "%s"' % pat)
        g.append("plot " + ", \\\n     ".join(parts))
    g.append("unset multiplot")
    r = subprocess.run([gp], input="\n".join(g) + "\n", text=True, capture_output=True)
    if r.returncode:
        print("report: gnuplot failed: " + r.stderr, file=sys.stderr)
        return []
    os.unlink(data)
    return [png]


if __name__ == "__main__":
    main()

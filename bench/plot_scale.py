#!/usr/bin/env python3
"""Draws the growth curves of issue 20 from the raw figures of the scale phases.

    bench/plot_scale.py [RESULTS_DIR] [OUT_DIR]

Reads RESULTS_DIR/scale.csv (written by `statusd-bench --only scale`; default
bench/results) and, if present, RESULTS_DIR/scale-global.csv, and writes
OUT_DIR/scale-growth.png (default docs/), and scale-global.png from the second: lost %, delivery p99, RSS per idle
connection and server CPU per delivered frame and per change, each against the number
of connections, with the issue's targets drawn as dashed lines. Only matplotlib is
needed (bench/run.sh installs it into a virtualenv under target/ when it is missing).
"""

import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        out = []
        for r in csv.DictReader(f):
            for k, v in r.items():
                try:
                    r[k] = float(v)
                except (TypeError, ValueError):
                    pass
            out.append(r)
    return out


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    out_dir = sys.argv[2] if len(sys.argv) > 2 else "docs"
    scale = sorted(rows(os.path.join(results, "scale.csv")), key=lambda r: r["connections"])
    glob = rows(os.path.join(results, "scale-global.csv"))
    if not scale:
        sys.exit(f"no scale.csv in {results}")

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    fig.suptitle("statusd scale (issue 20): cluster on one 2-core machine, 50 watched users per connection")
    x = [r["connections"] / 1000 for r in scale]

    def panel(ax, key, label, target=None, fmt="o-", series=None):
        series = series or [(key, label)]
        for k, lab in series:
            ax.plot(x, [r[k] for r in scale], fmt, label=lab)
            for xi, r in zip(x, scale):
                ax.annotate(f"{r[k]:.3g}", (xi, r[k]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if target is not None:
            ax.axhline(target, linestyle="--", color="grey", label=f"target {target:g}")
        ax.set_xlabel("connections (thousands)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)

    panel(axes[0][0], "lost_pct", "changes lost to watchers (%)", target=0)
    panel(axes[0][1], "p99_ms", "delivery latency (ms)", target=1000,
          series=[("p99_ms", "p99"), ("p50_ms", "p50")])
    axes[0][1].set_yscale("log")
    panel(axes[0][2], "rss_kib_per_idle_conn", "server RSS per idle connection (KiB)", target=16)
    panel(axes[1][0], "cpu_us_per_frame", "server CPU per delivered frame (µs)")
    panel(axes[1][1], "cpu_us_per_change", "server CPU per change (µs, all instances)")
    panel(axes[1][2], "server_cores", "cores used (during the changes)",
          series=[("server_cores", "statusd instances")])

    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "scale-growth.png")
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")

    if glob:
        fig, ax = plt.subplots(figsize=(8, 5))
        ax.set_title("global user-status fan-out, one instance: p99 per (connections, changes/s)")
        for r in glob:
            ok = str(r.get("ok", "")).lower() == "true"
            ax.scatter(r["connections"] / 1000, r["rate"], s=80, marker="o" if ok else "x",
                       color="tab:green" if ok else "tab:red")
            ax.annotate(f"p99 {r['p99_ms']:.0f} ms, lost {r['lost']:.0f}",
                        (r["connections"] / 1000, r["rate"]), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        ax.set_xlabel("connections (thousands)")
        ax.set_ylabel("changes/s (green: p99 <= 250 ms and 0 lost)")
        ax.set_yscale("log", base=2)
        rates = sorted({r["rate"] for r in glob})
        ax.set_yticks(rates)
        ax.set_yticklabels([f"{x:g}" for x in rates])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out = os.path.join(out_dir, "scale-global.png")
        fig.savefig(out, dpi=90)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()

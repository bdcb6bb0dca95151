"""Tables, targets and the ratio plot of benchmarks/run.py."""

from __future__ import annotations

from typing import Any

GITPERSIST = ("file", "file-nofsync", "git", "git-async")
ORDER = ["setup", "create", "snapshot create", "connection create",
         "get by id, first read after save", "get by id", "get by name", "get by backend", "list all", "snapshots by volume",
         "connections by volume", "update", "delete", "flush",
         "cold open: open to answer, by id", "cold open: open to answer, by name",
         "cold open: open to answer, by all",
         "cold open: process to answer, by id", "cold open: process to answer, by name",
         "cold open: process to answer, by all"]
PLOTTED = [op for op in ORDER if op not in ("setup", "flush") and "process" not in op]


def ops_of(results: dict[str, Any]) -> list[str]:
    seen = {op for result in results.values() for op in result["ops"]}
    return [op for op in ORDER if op in seen] + sorted(seen - set(ORDER))


def median(results: dict[str, Any], plugin: str, op: str) -> float | None:
    return results.get(plugin, {}).get("ops", {}).get(op, {}).get("median")


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    value = seconds * 1e3
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}x" if value < 10 else f"{value:.0f}x"


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(results: dict[str, Any]) -> str:
    """Median (p90) in milliseconds, one column per plugin."""
    plugins = list(results)
    rows = []
    for op in ops_of(results):
        row = [op]
        for plugin in plugins:
            found = results[plugin]["ops"].get(op)
            row.append("-" if found is None else
                       f"{ms(found['median'])} ({ms(found['p90'])})")
        rows.append(row)
    return ("milliseconds per operation: median (p90)\n"
            + _grid(["operation", *plugins], rows))


def ratio_table(results: dict[str, Any]) -> str:
    """gitpersist's median time divided by memory's, db's and the floor's."""
    plugins = [p for p in GITPERSIST if p in results]
    header = ["operation"]
    for plugin in plugins:
        header += [f"{plugin}/memory", f"{plugin}/db"]
    header.append("file/floor")
    rows = []
    for op in ops_of(results):
        if op == "flush":
            continue
        row = [op]
        for plugin in plugins:
            mine = median(results, plugin, op)
            for other in ("memory", "db"):
                theirs = median(results, other, op)
                row.append(ratio(mine / theirs) if mine and theirs else "-")
        mine, floor = median(results, "file", op), median(results, "floor", op)
        row.append(ratio(mine / floor) if mine and floor else "-")
        rows.append(row)
    return ("time ratios of medians (below 1x: gitpersist is faster)\n"
            + _grid(header, rows))


def _vs_db(speedup: float | None) -> str:
    if speedup is None:
        return "-"
    return (f"{ratio(speedup)} faster than db" if speedup >= 1
            else f"{ratio(1 / speedup)} slower than db")


def _target(measure: str, target: str, value: float | None, met: bool | None,
            shown: str, note: str = "") -> dict[str, Any]:
    return {"measure": measure, "target": target, "value": value,
            "shown": shown, "met": met, "note": note}


def _at_most(measure: str, target: str, value: float | None, bound: float, shown: str,
             applies: bool = True) -> dict[str, Any]:
    met = None if value is None or not applies else value <= bound
    return _target(measure, target, value, met, shown)


def targets(results: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The targets (issue 17's, then the earlier ones still published),
    from this run's medians: each with its value, shown, and met (None:
    not measured by this run, or not at this N)."""
    def m(plugin: str, op: str) -> float | None:
        return median(results, plugin, op)

    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    def extra(plugin: str, key: str) -> Any:
        return results.get(plugin, {}).get("extra", {}).get(key)

    found = []
    listed = m("file", "list all")
    found.append(_at_most(f"list all of {n} volumes (get_volumes())", "<= 50 ms at 2,000",
                          listed, 0.050, f"{ms(listed)} ms", n == 2000))
    for op, label in (("get by id", "warm get by id"),
                      ("get by id, first read after save", "first get by id after the save")):
        slower = div(m("file", op), m("memory", op))
        found.append(_at_most(label, "<= 10x memory", slower, 10,
                              f"{ratio(slower)} memory's time"))
    for op in ("get by name", "get by backend", "snapshots by volume", "connections by volume"):
        rel = div(m("file", op), m("memory", op))
        found.append(_target(op, "faster than memory", rel, None if rel is None else rel < 1,
                             f"{ratio(rel)} memory's time"))
    floor = m("floor", "create")
    over = div(m("file", "create"), floor)
    found.append(_at_most("durable set (create, plain+fsync)",
                          "<= 1.3x the floor (measured interleaved)", over, 1.3,
                          f"{ratio(over)} the floor ({ms(floor)} ms)"))
    over = div(m("git", "create"), m("file", "create"))
    found.append(_at_most("versioned set (git, sync mode: a commit per write)",
                          "<= 2x the durable plain set", over, 2,
                          f"{ratio(over)} the plain set"))
    group = extra("git", "group commit") or {}
    gain = div(group.get("4 writers/s"), group.get("1 writers/s"))
    found.append(_target("group commit (git, sync mode)", "4 writer threads >= 2x one's commits/s",
                         gain, None if gain is None else gain >= 2,
                         "-" if gain is None else f"{ratio(gain)} one writer's rate"))
    plain = extra("file", "batched writes/s")
    for plugin in ("git", "git-async"):
        rate = extra(plugin, "versioned writes/s")
        how = extra(plugin, "versioned writes/s how") or ""
        over = div(plain, rate)       # time per write, git over plain
        found.append(_at_most(f"batched writes ({plugin}: {how})",
                              "git adds <= 15% over the same batch without git", over, 1.15,
                              "-" if over is None else
                              f"{ratio(over)} the plain batch's time ({rate:,.0f} vs "
                              f"{plain:,.0f} per second)"))
    for query, bound, label in (("id", 2, "first answer by id"),
                                ("name", 2, "first answer by name"),
                                ("all", 5, "full listing of all volumes")):
        cold = m("file", f"cold open: open to answer, by {query}")
        found.append(_at_most(f"cold open of {n} volumes through the plugin, {label} "
                              "(setup included, imports excluded)",
                              f"<= {bound} s at 100,000", cold, bound, f"{ms(cold)} ms",
                              n >= 100_000))
    # earlier targets (issue 7), still in the published table
    speedup = div(m("db", "create"), m("file", "create"))
    found.append(_target("earlier: durable set (create, plain+fsync)", ">= 6x faster than db",
                         speedup, None if speedup is None else speedup >= 6, _vs_db(speedup)))
    speedup = div(m("db", "create"), m("git", "create"))
    found.append(_target("earlier: versioned set (git, commit per write)",
                         "faster than db's unversioned set", speedup,
                         None if speedup is None else speedup > 1, _vs_db(speedup)))
    return found


def targets_text(found: list[dict[str, Any]], results: dict[str, Any] | None = None,
                 meta: dict[str, Any] | None = None) -> str:
    lines = ["targets"]
    for t in found:
        state = {True: "MET    ", False: "NOT MET", None: "n/a    "}[t["met"]]
        lines.append(f"  {state} {t['measure']}: {t['target']}: {t['shown']}")
    if results is not None:
        floor = results.get("floor", {}).get("ops", {})
        lines.append("  the floor in this run (serialise + atomic write + fsync, interleaved "
                     "with the file plugin's writes): " + ", ".join(
                         f"{op} {ms(found_op['median'])} ms" for op, found_op in floor.items())
                     if floor else "  the floor: not measured in this run (no file plugin)")
    if meta is not None:
        lines.append(f"  load average (1, 5, 15 min): at start {meta.get('load at start')}, "
                     f"at end {meta.get('load at end', '?')}")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: str, title: str) -> None:
    """Two panels of horizontal bars: each plugin's median time over db's,
    and over memory's, per operation, on a log scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plugins = [p for p in ("floor", *GITPERSIST) if p in results]
    ops = [op for op in PLOTTED if any(op in results[p]["ops"] for p in plugins)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.42 * len(ops) * len(plugins) / 3 + 2.5),
                             sharey=True)
    height = 0.8 / max(1, len(plugins))
    for ax, base in zip(axes, ("db", "memory")):
        for k, plugin in enumerate(plugins):
            ys, xs = [], []
            for i, op in enumerate(ops):
                mine, theirs = median(results, plugin, op), median(results, base, op)
                if mine and theirs:
                    ys.append(i + (k - (len(plugins) - 1) / 2) * height)
                    xs.append(mine / theirs)
            ax.barh(ys, xs, height=height, label=plugin, left=0)
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(f"time / {base}'s time (left of 1: faster than {base})")
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.set_yticks(range(len(ops)))
        ax.set_yticklabels(ops)
        ax.invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(plugins), fontsize="small")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict[str, Any], found: list[dict[str, Any]], meta: dict[str, Any],
             png: str) -> str:
    """The run as a markdown page: command, machine, tables, targets."""
    def md(text: str) -> str:
        lines = text.split("\n")
        title, header, rows = lines[0], lines[1], lines[3:]
        cells = [header.split("  ")] + [row.split("  ") for row in rows]
        out = [f"{title}:", ""]
        for k, row in enumerate(cells):
            row = [cell.strip() for cell in row if cell.strip()]
            out.append("| " + " | ".join(row) + " |")
            if k == 0:
                out.append("|" + "---|" * len(row))
        return "\n".join(out)

    targets_rows = ["| measure | target | this run | met |", "|---|---|---|---|"]
    for t in found:
        state = {True: "met", False: "**not met**", None: "n/a at this N"}[t["met"]]
        targets_rows.append(f"| {t['measure']} | {t['target']} | {t['shown']} | {state} |")
    return "\n".join([
        f"# Benchmark run: {meta['n']} volumes", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}; Python {meta['python']} on {meta['machine']}, "
        f"{meta['cpus']} CPUs; load average at start {meta['load at start']}, "
        f"at end {meta.get('load at end', '?')}.  ",
        f"Volumes spread over {meta['backends']} backends; up to {meta['sample']} "
        f"timed calls per read/update/delete measure ({meta['budget']} s budget), "
        f"{meta['cold repeats']} new processes per cold open.", "",
        f"![ratios]({png})", "",
        md(table(results)), "", md(ratio_table(results)), "",
        "Targets:", "", *targets_rows, ""])

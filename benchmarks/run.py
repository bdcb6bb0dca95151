"""gitpersist against cinderlib's own persistence plugins, in one run.

    .venv/bin/python benchmarks/run.py [--n 2000|10000|100000] [--quick]
    .venv/bin/python benchmarks/run.py --scaling [--sizes 1000,10000,100000]

Drives the same workload through cinderlib's persistence API for cinderlib
``memory``, cinderlib ``db`` (a SQLite file), and gitpersist's ``storage="file"``
plugin plain with fsync, plain without fsync, git with a commit per write
and git batched (``commit_mode="async"``), plus the floor: serialising the
same bytes, then an atomic write with fsync in plain Python (measured in the
``file`` plugin's process, interleaved with its writes).  Each plugin
runs in its own process (``cinderlib.setup()`` is global), and the cold
open is timed in new processes.  Prints a table of medians, p90s and ratios
and the issue's targets; writes ``results/bench-<N>.json`` and
``results/ratios-<N>.png`` under `--out` (default benchmarks/results).

``--scaling`` measures gitpersist's set, get and commit cost, and the cold
open, against the number of stored records (see benchmarks/_scaling.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

STARTED = time.perf_counter()       # the cold-open child's process start
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _report  # noqa: E402
import _workload  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="volumes (default 2000)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200 volumes, few samples, one cold open")
    parser.add_argument("--plugins", default=",".join(_workload.PLUGINS),
                        help="comma-separated subset of: " + ", ".join(_workload.PLUGINS))
    parser.add_argument("--backends", type=int, default=None,
                        help="backends the volumes are spread over (default N/100)")
    parser.add_argument("--sample", type=int, default=None,
                        help="operations timed per read/update/delete measure (default 500)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds at most spent per read measure (default 5)")
    parser.add_argument("--cold-repeats", type=int, default=None,
                        help="new processes per cold-open measure (default 3)")
    parser.add_argument("--scaling", action="store_true",
                        help="the scaling curve instead (see benchmarks/_scaling.py)")
    parser.add_argument("--sizes", default="1000,3000,10000,30000,100000",
                        help="store sizes of --scaling")
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="folder for the JSON and PNG files")
    parser.add_argument("--tmp", default=None, help="folder for the stores (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--report", metavar="JSON",
                        help="print and re-render (markdown, PNG) a saved run's JSON")
    # internal: the child processes
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cold", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--query", help=argparse.SUPPRESS)
    parser.add_argument("--value", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.quick:
        args.n = 200 if args.n == 2000 else args.n
    args.sample = args.sample or (100 if args.quick else 500)
    args.budget = args.budget or (1.0 if args.quick else 5.0)
    args.cold_repeats = args.cold_repeats or (1 if args.quick else 3)
    args.backends = args.backends or max(1, args.n // 100)

    if args.cold:
        return cold_child(args)
    if args.child:
        return child(args)
    if args.report:
        with open(args.report) as file:
            saved = json.load(file)
        os.makedirs(args.out, exist_ok=True)
        return report(saved["plugins"], saved["meta"], args.out)
    if args.tmp:
        os.makedirs(args.tmp, exist_ok=True)
    if args.scaling:
        import _scaling
        return _scaling.main(args)
    return parent(args)


# -- children ------------------------------------------------------------------

def child(args: argparse.Namespace) -> int:
    result = _workload.run_plugin(args.child, args.workdir, args.n, args.backends,
                                  args.sample, args.budget)
    with open(args.result, "w") as file:
        json.dump(result, file)
    return 0


def cold_child(args: argparse.Namespace) -> int:
    result = _workload.cold_open(args.cold, args.workdir, args.query, args.value, STARTED)
    persistence = result.pop("persistence")
    print(json.dumps(result), flush=True)     # the parent's clock stops here
    if hasattr(persistence, "close"):
        persistence.close()
    return 0


def spawn(*args: str) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), *args]


def run_child(plugin: str, workdir: str, args: argparse.Namespace) -> dict:
    result_path = os.path.join(workdir, "result.json")
    subprocess.run(spawn("--child", plugin, "--workdir", workdir, "--n", str(args.n),
                         "--backends", str(args.backends), "--sample", str(args.sample),
                         "--budget", str(args.budget), "--result", result_path),
                   check=True)
    with open(result_path) as file:
        return json.load(file)


def run_cold(plugin: str, workdir: str, query: str, value: str) -> dict:
    """One new process timed from its start to its first answer."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(spawn("--cold", plugin, "--workdir", workdir, "--query", query,
                                  "--value", value), stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    wall = time.perf_counter() - t0
    proc.stdout.read()
    if proc.wait() != 0 or not line:
        raise RuntimeError(f"cold open of {plugin} failed")
    return {**json.loads(line), "wall": wall}


# -- the parent ------------------------------------------------------------------

def parent(args: argparse.Namespace) -> int:
    plugins = [p.strip() for p in args.plugins.split(",") if p.strip()]
    unknown = sorted(set(plugins) - set(_workload.PLUGINS))
    if unknown:
        raise SystemExit(f"--plugins: unknown {', '.join(unknown)}")
    os.makedirs(args.out, exist_ok=True)
    check_outside_git(args.tmp or tempfile.gettempdir())
    meta = machine(args)
    print(f"N={args.n} volumes over {args.backends} backends; load average at start "
          f"{meta['load at start']}", flush=True)
    results: dict[str, dict] = {}
    for plugin in plugins:
        workdir = tempfile.mkdtemp(prefix=f"gitpersist-bench-{plugin}-", dir=args.tmp)
        try:
            print(f"- {plugin}: {_workload.PLUGINS[plugin][0]} ...", flush=True)
            t0 = time.perf_counter()
            raw = run_child(plugin, workdir, args)
            if raw.get("floor"):
                results["floor"] = {"label": _workload.FLOOR_LABEL, "extra": {},
                                    "ops": {op: summary(samples)
                                            for op, samples in raw["floor"].items()}}
            result = {"label": _workload.PLUGINS[plugin][0],
                      "ops": {op: summary(samples) for op, samples in raw["samples"].items()},
                      "extra": raw["extra"]}
            if plugin in _workload.COLD_PLUGINS:
                for query in ("id", "name", "all"):
                    runs = [run_cold(plugin, workdir, query, raw["probe"][query])
                            for _ in range(args.cold_repeats)]
                    for key in ("open to answer", "process to answer"):
                        result["ops"][f"cold open: {key}, by {query}"] = summary(
                            [r[key if key != "process to answer" else "wall"] for r in runs])
                    result["extra"][f"cold open by {query}"] = runs
            results[plugin] = result
            print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
        finally:
            if args.keep:
                print(f"  kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    meta["load at end"] = load()
    return report(results, meta, args.out)


def report(results: dict, meta: dict, out: str) -> int:
    """Print the tables and targets; write the JSON, markdown and PNG."""
    n = meta["n"]
    targets = _report.targets(results, n)
    print()
    print(_report.table(results))
    print()
    print(_report.ratio_table(results))
    print()
    print(_report.targets_text(targets, results, meta))
    stem = os.path.join(out, f"bench-{n}")
    with open(stem + ".json", "w") as file:
        json.dump({"meta": meta, "plugins": results, "targets": targets}, file, indent=1)
    png = os.path.join(out, f"ratios-{n}.png")
    _report.plot(results, png, f"N={n} volumes; ratio of medians (log scale)")
    with open(stem + ".md", "w") as file:
        file.write(_report.markdown(results, targets, meta, os.path.basename(png)))
    print(f"\nwrote {stem}.json, {stem}.md and {png}")
    return 0


def check_outside_git(folder: str) -> None:
    """Refuse to put the stores inside a git work tree: a git-mode store
    there would commit its records into that repository."""
    inside = subprocess.run(["git", "-C", folder, "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True)
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        raise SystemExit(f"--tmp {folder} is inside a git work tree: the git-mode stores "
                         "would commit into that repository; choose another folder")


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median": statistics.median(ordered),
            "p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
            "count": len(ordered), "total": sum(ordered)}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine(args: argparse.Namespace) -> dict:
    # Versions from the package metadata: importing cinderlib here would
    # break matplotlib's import in this process (pyparsing's __version__).
    from importlib import metadata
    return {"command": " ".join([os.path.relpath(sys.executable), "benchmarks/run.py",
                                 *sys.argv[1:]]),
            "n": args.n, "backends": args.backends, "sample": args.sample,
            "budget": args.budget, "cold repeats": args.cold_repeats,
            "python": platform.python_version(), "machine": platform.platform(),
            "cpus": os.cpu_count(), "load at start": load(),
            "versions": {name: metadata.version(name) for name in (
                "cinderlib", "cinder", "SQLAlchemy", "gitpersist", "GitPython",
                "filelock", "orjson", "watchdog")},
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


if __name__ == "__main__":
    sys.exit(main())

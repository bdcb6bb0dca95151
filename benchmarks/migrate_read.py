"""How long `gitpersist migrate --from-db` reads a db-plugin database,
against reading it with cinderlib's own API (what ``cinderlib.dump``
goes through: the plugin's ``get_volumes``, ``get_snapshots``,
``get_connections``), in the same run.

    .venv/bin/python benchmarks/migrate_read.py [N]      (default 2000 volumes)

Prints both times and their ratio (the issue's target: within 2x).  Each
reading runs in a fresh process (cinderlib's setup is global).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

POPULATE = """
import sys, cinderlib
sys.path[:0] = {paths!r}
import _workload
from cinderlib.tests.unit import utils as cl_utils
persistence = _workload.setup("db", {workdir!r})
cl_utils.FakeBackend(volume_backend_name="backend-000")
backend = cinderlib.Backend.backends["backend-000"]
for i in range({n}):
    volume = cinderlib.Volume(backend, name=f"vol-{{i:06d}}", size=1)
    persistence.set_volume(volume)
    if i % 10 == 0:
        persistence.set_snapshot(cinderlib.Snapshot(volume, name=f"snap-{{i}}"))
"""

READ = """
import json, sys, time
sys.path[:0] = {paths!r}
import _workload
from gitpersist.cinder import migrate
url = f"sqlite:///{workdir}/cinderlib.sqlite"
if {ours!r}:
    start = time.perf_counter()
    found = migrate.from_database(url)
else:
    persistence = _workload.setup("db", {workdir!r})
    start = time.perf_counter()
    found = [*persistence.get_volumes(), *persistence.get_snapshots(),
             *persistence.get_connections(), *persistence.get_key_values()]
print(json.dumps([time.perf_counter() - start, len(found)]))
"""


def child(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    paths = [HERE, os.path.dirname(HERE)]
    with tempfile.TemporaryDirectory(prefix="gitpersist-migrate-bench-") as workdir:
        start = time.perf_counter()
        child(POPULATE.format(paths=paths, workdir=workdir, n=n) + "\nprint('done')")
        print(f"populated {n} volumes (+{n // 10} snapshots) in "
              f"{time.perf_counter() - start:.1f} s")
        theirs, count = json.loads(child(READ.format(paths=paths, workdir=workdir, ours=False)))
        ours, ours_count = json.loads(child(READ.format(paths=paths, workdir=workdir, ours=True)))
    print(f"cinderlib's own reads (get_volumes ...): {theirs:.2f} s for {count} objects")
    print(f"migrate's read (from_database):          {ours:.2f} s for {ours_count} objects")
    print(f"ratio: {ours / theirs:.2f}x   (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

"""The README demo: real cinderlib with cinder's fake driver, into a
git-backed gitpersist store; then the files and their history.

    python3 examples/demo.py [STORE_FOLDER]      (default: ./demo-store)

Run it again and it starts over: the folder is wiped first (only if it is
empty or a previous demo store)."""

import sys, pathlib
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import devenv  # noqa: E402
devenv.enter()   # creates .venv with the pinned cinderlib stack and re-runs this script in it

import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import cinderlib  # noqa: E402
import git  # noqa: E402

from fake_backend import fake_backend  # noqa: E402  (examples/fake_backend.py)

CONNECTOR = {"host": "demo-host", "initiator": "iqn.2024-01.org.example:demo",
             "ip": "192.0.2.1", "multipath": False, "platform": "x86_64", "os_type": "linux"}


def fresh_folder(folder: pathlib.Path) -> None:
    """Empty `folder` as its own git repository.  (Inside this checkout the
    store would otherwise commit into the enclosing repository.)"""
    if folder.exists():
        if any(folder.iterdir()) and not (folder / ".gitpersist").is_dir():
            sys.exit(f"demo: {folder} is not empty and not a previous demo store; "
                     "give another folder")
        shutil.rmtree(folder)
    git.Repo.init(folder).close()


def step(text: str, result: str) -> None:
    print(f"  {text:<48} -> {result}")


def main() -> None:
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "demo-store").resolve()
    fresh_folder(folder)
    locks = tempfile.mkdtemp(prefix="gitpersist-demo-locks-")
    print(f"cinderlib {cinderlib.__version__}, storage='file', git=True, store {folder}\n")

    cinderlib.setup(file_locks_path=locks, persistence_config={
        "storage": "file", "path": str(folder), "git": True})
    lvm = fake_backend("lvm")
    vol = lvm.create_volume(size=1, name="data", extra_specs={"tier": "gold"})
    step("create volume 'data' (1 GB, tier=gold)", vol.status)
    snap = vol.create_snapshot(name="nightly")
    step("snapshot it as 'nightly'", snap.status)
    clone = snap.create_volume(name="clone")
    step("clone 'nightly' into volume 'clone'", clone.status)
    conn = vol.connect(CONNECTOR)
    step(f"connect 'data' to {CONNECTOR['host']}", f"{conn.protocol}, volume {vol.status}")
    conn.disconnect()
    step("disconnect it", f"volume {vol.status}")
    clone.delete()
    step("delete 'clone'", "deleted")
    cinderlib.Backend.persistence.close()
    shutil.rmtree(locks, ignore_errors=True)

    print(f"\nFiles ({folder.name}/, one JSON file per record):")
    names = {vol.id: "volume 'data'", snap.id: "snapshot 'nightly'"}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and relative.parts[0] != ".git":
            print(f"  {relative}  {names.get(path.stem, '')}".rstrip())

    [vol_file] = folder.glob(f"volumes/*/{vol.id}.json")
    print(f"\n{vol_file.relative_to(folder)} (volume 'data'):")
    print("  " + vol_file.read_text().rstrip().replace("\n", "\n  "))

    print("\nHistory (git log --stat), one commit per change:")
    log = subprocess.run(["git", "-C", str(folder), "log", "--format=%h %s", "--stat=100"],
                         capture_output=True, text=True, check=True).stdout
    for line in log.splitlines():
        if line.strip() and "changed," not in line:
            print("  " + line)

    print(f"\nTry: git -C {folder} log -p -- {vol_file.relative_to(folder)}")


if __name__ == "__main__":
    main()

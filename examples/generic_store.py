"""gitpersist without cinderlib: a store of your own records.

    python examples/generic_store.py      (with gitpersist installed: pip install gitpersist)

Puts, reads and finds records (with declared indexes), writes safely with
``expect=``, groups writes in a batch, and walks the git history of a
record: versions, an old version, a diff, a restore.  Everything happens in
a temporary folder that is removed at the end."""

import pathlib
import tempfile

import git

from gitpersist import ABSENT, ConflictError, Store, cli


def show(title: str, value: object) -> None:
    print(f"  {title:<44} {value}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gitpersist-example-") as tmp:
        root = pathlib.Path(tmp, "inventory")
        # The store's own repository: with git=True a store commits into the
        # repository around its folder (if the temp folder were inside one,
        # into that), else makes one.  Every write is a commit.
        git.Repo.init(root).close()
        # Indexes answer find() without reading every record.
        with Store(root, git=True, watch="off", author="Inventory <inventory@example.com>",
                   indexes={"hosts": {"rack": None,
                                      "family": lambda doc: doc["os"].split("-")[0]}}) as store:
            print(f"store {root}\n\nrecords")
            store.put("hosts", "web-1", {"rack": "r1", "os": "debian-12", "cores": 8})
            store.put("hosts", "web-2", {"rack": "r1", "os": "ubuntu-24.04", "cores": 8})
            store.put("hosts", "db-1", {"rack": "r2", "os": "debian-12", "cores": 32})
            show("get('hosts', 'db-1')", store.get("hosts", "db-1"))
            show("get('hosts', 'nope')", store.get("hosts", "nope"))
            show("find('hosts', rack='r1')  (index)",
                 [doc["id"] for doc in store.find("hosts", rack="r1")])
            show("find('hosts', family='debian')  (index)",
                 [doc["id"] for doc in store.find("hosts", family="debian")])
            show("find('hosts', cores=8)  (scan)",
                 [doc["id"] for doc in store.find("hosts", cores=8)])
            show("types()", store.types())

            print("\nsafe updates")
            revision = store.revision("hosts", "db-1")
            store.put("hosts", "db-1", {**store.get("hosts", "db-1"), "cores": 64},
                      expect=revision)
            show("put(..., expect=<revision read>)", "written")
            try:
                store.put("hosts", "db-1", {"rack": "r9", "os": "debian-12"}, expect=revision)
            except ConflictError as exc:
                show("put(..., expect=<stale revision>)", f"ConflictError: {exc}")
            try:
                store.put("hosts", "web-1", {"rack": "r3", "os": "debian-12"}, expect=ABSENT)
            except ConflictError:
                show("put(..., expect=ABSENT) on an existing id", "ConflictError")

            print("\na batch is one commit")
            with store.batch("Move rack r1 to r3"):
                for doc in store.find("hosts", rack="r1"):
                    store.put("hosts", doc["id"], {**doc, "rack": "r3"})
            show("find('hosts', rack='r3')", [doc["id"] for doc in store.find("hosts", rack="r3")])

            print("\nhistory of hosts/web-1")
            versions = store.versions("hosts", "web-1")
            for version in versions:
                show(f"{version.commit[:10]} {version.time:%H:%M:%S}", version.message)
            oldest = versions[-1].commit
            show(f"get_at('hosts', 'web-1', {oldest[:10]})",
                 store.get_at("hosts", "web-1", oldest))
            print(f"  diff('hosts', 'web-1', {oldest[:10]}):")
            for line in store.diff("hosts", "web-1", oldest).splitlines():
                print(f"      {line}")
            store.delete("hosts", "web-1")
            show("delete('hosts', 'web-1'), then restore", store.get("hosts", "web-1"))
            store.restore("hosts", "web-1", oldest)
            show("get('hosts', 'web-1') after restore", store.get("hosts", "web-1"))

        print("\nthe same store from the command line: gitpersist --path ... ls hosts\n")
        cli.main(["--path", str(root), "ls", "hosts"])
        print("\ngitpersist --path ... log -n 3\n")
        cli.main(["--path", str(root), "log", "-n", "3"])


if __name__ == "__main__":
    main()

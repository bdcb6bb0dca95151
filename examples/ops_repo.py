"""A store inside an ops repository that holds other things too.

    python examples/ops_repo.py      (with gitpersist installed: pip install gitpersist)

The repository has the team's playbooks, with work in progress (a staged
change, an unstaged change, an untracked file).  A store in its
``metadata/`` folder commits every write, and its commits hold the store's
paths only: the team's files, staged or not, are never committed or
touched.  ``git log --stat`` shows it.  Runs in a temporary folder that is
removed at the end."""

import pathlib
import subprocess
import tempfile

from gitpersist import Store, cli


# The team's commits name their author explicitly: no global git identity
# is needed to run this example.
TEAM = ["-c", "user.name=Ops Team", "-c", "user.email=ops@example.com"]


def git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


def heading(text: str) -> None:
    print(f"\n== {text}\n")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="gitpersist-ops-") as tmp:
        repo = pathlib.Path(tmp, "ops")
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "site.yml").write_text("- hosts: storage\n  roles: [cinder]\n")
        (repo / "inventory.ini").write_text("[storage]\nnode1\n")
        git(repo, "add", ".")
        git(repo, *TEAM, "commit", "-q", "-m", "Playbooks")
        # work in progress the store must leave alone
        (repo / "inventory.ini").write_text("[storage]\nnode1\nnode2\n")
        git(repo, "add", "inventory.ini")                                   # staged
        (repo / "site.yml").write_text("- hosts: storage\n  roles: [cinder, lvm]\n")  # unstaged
        (repo / "NOTES.md").write_text("try node3 next week\n")             # untracked
        before = git(repo, "status", "--short")
        heading(f"the ops repository {repo}, before: git status --short")
        print(before, end="")

        with Store(repo / "metadata", git=True, watch="off",
                   author="cinder-bot <cinder-bot@example.com>") as store:
            store.put("volumes", "vol-1", {"display_name": "db", "size": 10,
                                           "status": "creating"})
            store.put("volumes", "vol-1", {"display_name": "db", "size": 10,
                                           "status": "available"})
            with store.batch("Snapshot and export vol-1"):
                store.put("snapshots", "snap-1", {"volume_id": "vol-1",
                                                  "display_name": "nightly"})
                store.put("connections", "conn-1", {"volume_id": "vol-1",
                                                    "attached_host": "node1"})
            store.flush()

        heading("git log --stat --format='%h %an: %s'")
        print(git(repo, "log", "--stat", "--format=%h %an: %s"), end="")

        after = git(repo, "status", "--short")
        heading("git status --short, after")
        print(after, end="")
        committed = set(git(repo, "log", "--name-only", "--format=",
                            "--author=cinder-bot").split())
        print(f"\nthe user's work is as it was:          {after == before}")
        print("the store's commits touch only metadata/: "
              f"{all(path.startswith('metadata/') for path in committed)}")
        print(f"the staged change is still staged:      "
              f"{git(repo, 'diff', '--cached', '--name-only').split() == ['inventory.ini']}")

        heading("gitpersist --path ops/metadata log")
        cli.main(["--path", str(repo / "metadata"), "log"])
        heading("gitpersist --path ops/metadata fsck")
        cli.main(["--path", str(repo / "metadata"), "fsck"])


if __name__ == "__main__":
    main()

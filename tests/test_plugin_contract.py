"""cinderlib 5.2.0's own persistence contract, run against storage="file",
in plain and in git mode.

Every test of `BasePersistenceTest` is inherited; the plugin-specific ones
check the JSON files on disk and what a fresh plugin instance (a new store
on the same folder, as in a new process) reads back."""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile

import pytest

from helpers import CINDERLIB_MISSING  # noqa: E402

pytestmark = pytest.mark.cinderlib
pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)

import cinderlib  # noqa: E402
from cinderlib.persistence import base as persistence_base  # noqa: E402
from cinderlib.tests.unit.persistence import base  # noqa: E402

from gitpersist import Store, paths  # noqa: E402
from gitpersist.plugin import FilePersistence, TYPES  # noqa: E402


class _FileContract(base.BasePersistenceTest):
    __test__ = False     # pytest collects unittest classes whatever their name
    GIT = False

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="gitpersist-contract-")
        cls.PERSISTENCE_CFG = {"storage": "file", "path": cls.folder,
                               "git": cls.GIT, "fsync": False}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        cinderlib.Backend.persistence.close()
        super().tearDownClass()
        shutil.rmtree(cls.folder, ignore_errors=True)

    def tearDown(self):
        store = self.persistence.store
        with store.batch("test cleanup"):
            for type in TYPES:
                for doc in store.all(type):
                    store.delete(type, doc["id"])
        super().tearDown()

    # -- helpers -------------------------------------------------------------

    def record_file(self, type, id):
        return pathlib.Path(self.folder, *paths.record_path(type, id).split("/"))

    def on_disk(self, type, id):
        return json.loads(self.record_file(type, id).read_bytes())

    def fresh(self):
        """A second plugin instance on the same folder: what a new process
        reads.  (Its fake DB re-points cinder's OVO hooks; restored after.)"""
        plugin = FilePersistence(path=self.folder, git=self.GIT, watch="off")
        self.addCleanup(persistence_base.DB, self.persistence)
        self.addCleanup(plugin.close)
        return plugin

    # -- the plugin-specific tests of the contract -----------------------------

    def test_db(self):
        self.assertIsInstance(self.persistence.db, persistence_base.DB)
        self.assertIs(self.persistence, self.persistence.db.persistence)
        # cinder's OVO hooks point at this plugin's fake DB
        self.assertEqual(self.persistence.db._DB__connections_get,
                         cinderlib.objects.cinder_objs.VolumeAttachmentList
                         .get_all_by_volume_id)
        vol = cinderlib.Volume(self.backend, size=1, name="disk",
                               extra_specs={"k": "v"}, qos_specs={"q": "r"})
        self.persistence.set_volume(vol)
        db = self.fresh().db
        self.assertEqual({"k": "v"}, db.volume_type_get(self.context, vol.id)["extra_specs"])
        self.assertEqual({"q": "r"}, db.qos_specs_get(self.context, vol.id)["specs"])
        self.assertEqual([vol.id], [v.id for v in db.volume_get_all_by_host(
            self.context, vol.host)])

    def test_set_volume(self):
        self.assertEqual([], self.persistence.store.all("volumes"))
        vol = cinderlib.Volume(self.backend, size=1, name="disk",
                               extra_specs={"k": "v"}, qos_specs={"q": "r"},
                               admin_metadata={"a": "b"})
        self.persistence.set_volume(vol)

        doc = self.on_disk("volumes", vol.id)
        self.assertEqual(vol.id, doc["id"])
        self.assertEqual("disk", doc["display_name"])
        self.assertEqual(1, doc["size"])
        self.assertEqual(vol.host, doc["host"])
        self.assertEqual({"a": "b"}, doc["admin_metadata"])
        self.assertEqual({"extra_specs": {"k": "v"}, "qos_specs": {"q": "r"}},
                         doc["volume_type"])
        self.assertIsInstance(doc["created_at"], str)
        for related in ("snapshots", "volume_attachment", "backend"):
            self.assertNotIn(related, doc)

        got = self.fresh().get_volumes(volume_id=vol.id)
        self.assertListEqualObj([vol], got)
        self.assertEqual({"k": "v"}, got[0].volume_type.extra_specs)
        self.assertEqual({"q": "r"}, got[0].volume_type.qos_specs.specs)
        self.assertEqual(self.backend.id, got[0].backend.id)

    def test_set_snapshot(self):
        vol = cinderlib.Volume(self.backend, size=1, name="disk")
        self.persistence.set_volume(vol)
        snap = cinderlib.Snapshot(vol, name="disk")
        self.assertEqual([], self.persistence.store.all("snapshots"))
        self.persistence.set_snapshot(snap)

        doc = self.on_disk("snapshots", snap.id)
        self.assertEqual(vol.id, doc["volume_id"])
        self.assertEqual("disk", doc["display_name"])
        self.assertEqual(self.backend.id, doc["progress"])
        self.assertNotIn("volume", doc)

        got = self.fresh().get_snapshots(snapshot_id=snap.id)
        self.assertListEqualObj([snap], got)
        self.assertEqual(vol.id, got[0].volume.id)

    def test_set_connection(self):
        vol = cinderlib.Volume(self.backend, size=1, name="disk")
        self.persistence.set_volume(vol)
        conn = cinderlib.Connection(self.backend, volume=vol, connector={},
                                    connection_info={"conn": {"data": {}}})
        self.assertEqual([], self.persistence.store.all("connections"))
        self.persistence.set_connection(conn)

        doc = self.on_disk("connections", conn.id)
        self.assertEqual(vol.id, doc["volume_id"])
        self.assertNotIn("connection_info", doc)    # local_secrets: in the side file
        self.assertEqual({"conn": {"data": {}}}, self.persistence.store.get(
            "connections", conn.id)["connection_info"])
        self.assertNotIn("volume", doc)

        got = self.fresh().get_connections(connection_id=conn.id)
        self.assertListEqualObj([conn], got)
        self.assertEqual(vol.id, got[0].volume.id)

    def test_set_key_values(self):
        self.assertEqual([], self.persistence.store.all("key_values"))
        expected = [cinderlib.KeyValue("key", "value")]
        self.persistence.set_key_value(expected[0])
        self.assertEqual({"id": "key", "value": "value"}, self.on_disk("key_values", "key"))
        self.assertEqual(expected, self.fresh().get_key_values())


class TestFilePersistencePlain(_FileContract):
    __test__ = True
    GIT = False


class TestFilePersistenceGit(_FileContract):
    __test__ = True
    GIT = True

    def test_set_volume(self):
        super().test_set_volume()
        with Store(self.folder, git=True, watch="off") as store:
            [vol] = store.all("volumes")
            versions = store.versions("volumes", vol["id"])
        self.assertIn(f"volume {vol['id']} (disk): created", versions[0].message)

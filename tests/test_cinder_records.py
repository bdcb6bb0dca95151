"""gitpersist.cinder.records: cinderlib's OVOs to and from records."""

from __future__ import annotations

import datetime
import types

import pytest

from helpers import CINDERLIB_MISSING

pytestmark = pytest.mark.cinderlib
pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)

from cinder import objects as cinder_objs  # noqa: E402
from cinderlib import objects as cl_objects  # noqa: E402

from gitpersist import CorruptRecord  # noqa: E402
from gitpersist.cinder import records  # noqa: E402

VID = "3f2a9c1e-0000-4000-8000-000000000001"
WHEN = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)


def volume(**fields):
    ovo = cinder_objs.Volume(context=cl_objects.CONTEXT, id=VID, size=1,
                             display_name="data", status="creating", created_at=WHEN,
                             metadata={"a": "1"}, **fields)
    ovo.obj_reset_changes()
    return ovo


def as_resource(ovo):
    """What the plugin passes: a cinderlib object, holding its OVO."""
    return types.SimpleNamespace(_ovo=ovo)


@pytest.mark.parametrize("value, text", [
    (WHEN, "2024-05-06T07:08:09.123456Z"),
    (datetime.datetime(2024, 5, 6, 9, 8, 9, 5, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2))), "2024-05-06T07:08:09.000005Z"),
    (datetime.datetime(2024, 5, 6, 7, 8, 9), "2024-05-06T07:08:09.000000Z"),  # naive: UTC
])
def test_datetimes_are_utc_with_microseconds(value, text):
    assert records.datetime_text(value) == text


def test_a_record_holds_set_plain_fields_only():
    doc = records.ovo_record(volume(display_description=None))
    assert doc == {"id": VID, "size": 1, "display_name": "data", "status": "creating",
                   "created_at": "2024-05-06T07:08:09.123456Z", "metadata": {"a": "1"}}


def test_a_record_reads_back_field_by_field_with_no_changes_tracked():
    ovo = volume(provider_location="pool/v", admin_metadata={"k": "v"})
    again = records.ovo_from_record(cinder_objs.Volume, records.ovo_record(ovo), "f.json")
    assert again.obj_what_changed() == set()
    for name in ("id", "size", "display_name", "status", "created_at", "metadata",
                 "admin_metadata", "provider_location"):
        assert getattr(again, name) == getattr(ovo, name), name
    assert again.display_description is None         # left out: null


def test_a_hand_written_record_may_leave_out_metadata_and_hold_other_keys():
    again = records.ovo_from_record(cinder_objs.Volume, {"id": VID, "size": 2, "note": "x"},
                                    "f.json")
    assert (again.size, again.metadata, again.admin_metadata) == (2, {}, {})
    assert not hasattr(again, "note")


def test_a_field_of_the_wrong_type_names_the_file_and_field():
    with pytest.raises(CorruptRecord, match="'size'") as info:
        records.ovo_from_record(cinder_objs.Volume, {"id": VID, "size": "one"}, "v1.json")
    assert "v1.json" in str(info.value)


def test_a_volume_keeps_its_own_volume_type():
    ovo = volume(volume_type_id=VID)
    ovo.volume_type = cinder_objs.VolumeType(
        context=cl_objects.CONTEXT, id=VID, name=VID, extra_specs={"k": "v"},
        qos_specs_id=VID, qos_specs=cinder_objs.QualityOfServiceSpecs(
            context=cl_objects.CONTEXT, id=VID, name=VID, specs={"iops": "100"}))
    doc = records.volume_record(ovo)
    assert doc["volume_type"] == {"extra_specs": {"k": "v"}, "qos_specs": {"iops": "100"}}
    again = records.volume_from_record(doc, "f.json")
    assert again.obj_what_changed() == set()
    assert (again.volume_type.id, again.volume_type.name) == (VID, VID)
    assert again.volume_type.extra_specs == {"k": "v"}
    assert again.volume_type.qos_specs.specs == {"iops": "100"}
    assert again.volume_type.qos_specs.consumer == "back-end"


def test_a_volume_without_a_type_and_a_broken_type():
    assert records.volume_from_record({"id": VID, "size": 1}, "f.json").volume_type is None
    assert "volume_type" not in records.volume_record(volume(volume_type_id=None))
    with pytest.raises(CorruptRecord, match="'volume_type' is not an object"):
        records.volume_from_record({"id": VID, "volume_type_id": VID,
                                    "volume_type": ["x"]}, "f.json")


def test_changed_fields_are_the_plain_fields_cinderlib_tracked():
    ovo = volume()
    ovo.status = "available"
    ovo.size = 2
    ovo.snapshots = cinder_objs.SnapshotList(context=cl_objects.CONTEXT, objects=[])
    assert records.changed_fields(as_resource(ovo)) == {"status", "size"}
    ovo = volume()
    ovo.volume_type_id = VID
    assert records.changed_fields(as_resource(ovo)) == {"volume_type_id", "volume_type"}
    assert records.changed_fields(as_resource(volume())) == set()


def test_merge_takes_the_changed_keys_from_the_object():
    current = {"id": "v", "status": "a", "size": 1, "host": "h"}
    doc = {"id": "v", "status": "b", "size": 9}
    assert records.merge(current, doc, {"status"}) == {"status": "b", "size": 1, "host": "h"}
    assert records.merge(current, doc, {"host"}) == {"status": "a", "size": 1}  # unset
    assert records.merge(current, doc, set()) == doc        # nothing tracked: all of it


# -- the fast plan: what oslo's normal path makes, or that path itself -----------

from hypothesis import given, strategies as st  # noqa: E402
from oslo_versionedobjects import fields as ovo_fields  # noqa: E402

_PLAIN_FIELDS = [(cls, name) for cls in (cinder_objs.Volume, cinder_objs.Snapshot,
                                         cinder_objs.VolumeAttachment)
                 for name, field in cls.fields.items()
                 if not isinstance(field, ovo_fields.ObjectField)]
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)
_VALUES = st.one_of(
    _JSON, st.uuids().map(str), st.sampled_from(["available", "creating", "attached",
                                                 "detached", "back-end", "deleted"]),
    st.datetimes(timezones=st.just(datetime.timezone.utc)).map(records.datetime_text),
    st.datetimes().map(lambda d: d.isoformat()),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.none(), max_size=3),
    st.lists(st.text(max_size=3), max_size=3))


def _normal(cls, name, value):
    """oslo's normal path for one field: from_primitive, then coerce."""
    ovo = cls(context=cl_objects.CONTEXT)
    field = cls.fields[name]
    return field.coerce(ovo, name, field.from_primitive(ovo, name, value))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # oslo on a non-UUID in a UUID field
@given(st.sampled_from(_PLAIN_FIELDS), _VALUES)
def test_the_fast_plan_makes_what_the_normal_path_makes(cls_name, value):
    cls, name = cls_name
    if value is None or name in ("metadata", "admin_metadata", "glance_metadata") \
            and not value:
        return      # None and cinderlib's empty defaults: the same code for both
    try:
        expected = _normal(cls, name, value)
    except (ValueError, TypeError, AttributeError):
        with pytest.raises(CorruptRecord, match=f"field '{name}'"):
            records.ovo_from_record(cls, {name: value}, "f.json")
        return
    got = getattr(records.ovo_from_record(cls, {name: value}, "f.json"), name)
    assert got == expected and type(got) is type(expected)
    if isinstance(expected, datetime.datetime):
        assert got.utcoffset() == expected.utcoffset()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_values_not_of_the_plain_form_take_the_normal_path():
    ovo = records.ovo_from_record(cinder_objs.Volume, {
        "size": "3", "display_name": 5, "bootable": 1, "id": "not-a-uuid",
        "created_at": "2024-05-06T09:08:09+02:00", "metadata": {"a": 1}}, "f.json")
    assert (ovo.size, ovo.display_name, ovo.bootable, ovo.id) == (3, "5", True, "not-a-uuid")
    assert ovo.created_at == datetime.datetime(2024, 5, 6, 7, 8, 9,
                                               tzinfo=datetime.timezone.utc)
    assert ovo.metadata == {"a": "1"}


@pytest.mark.parametrize("cls, values", [
    (cinder_objs.Volume, {"id": VID, "size": 1, "display_name": "data", "created_at": WHEN,
                          "metadata": {"a": "1"}, "admin_metadata": {"b": "2"},
                          "glance_metadata": {}}),
    (cinder_objs.Snapshot, {"id": VID, "volume_size": 1, "metadata": {"a": "1"}}),
])
def test_a_read_ovo_is_what_its_own_constructor_and_reset_make(cls, values):
    made = cls(context=cl_objects.CONTEXT, **values)
    made.obj_reset_changes()
    read = records.ovo_from_record(cls, records.ovo_record(made), "f.json")
    # the fields the record leaves out are null (set to None) in the read one
    assert all(vars(read)[key] is None for key in vars(read).keys() - vars(made).keys())
    for key, value in vars(made).items():
        assert vars(read)[key] == value and type(vars(read)[key]) is type(value), key
    assert read.obj_what_changed() == set()

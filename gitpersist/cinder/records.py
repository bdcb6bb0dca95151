"""cinderlib's objects to and from records.

A record holds an OVO's own fields under their OVO names: set, non-null
fields that are not objects, as JSON primitives (datetimes as ISO 8601 UTC
strings with microseconds, cinderlib's format).  A volume's record also
holds its own volume type's specs, ``"volume_type": {"extra_specs": {...},
"qos_specs": {...}}`` (in cinderlib a volume type belongs to one volume:
its id and name are the volume type id).  Reading a record builds the OVO
with no changes tracked; a field of the wrong type raises `CorruptRecord`
naming the file and the field.

`changed_fields` and `merge` are how a stale save applies only what
cinderlib tracked as changed (see `gitpersist.cinder.plugin`).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable
from typing import Any

from . import missing_cinderlib

try:
    import cinderlib  # noqa: F401  (first: it prepares cinder's imports)
    from cinder import objects as cinder_objs
    from cinder.objects import fields as cinder_fields
    from cinderlib import objects as cl_objects
    from oslo_versionedobjects import fields as ovo_fields
    from oslo_versionedobjects.base import _get_attrname
except ImportError as exc:
    raise missing_cinderlib(exc) from exc

from ..errors import CorruptRecord
from ..messages import Document

# Metadata dicts cinderlib creates empty; a record written by hand may leave
# them out.
_EMPTY_BY_DEFAULT = frozenset(("metadata", "admin_metadata", "glance_metadata"))


def _is_object(field: ovo_fields.Field) -> bool:
    return isinstance(field, ovo_fields.ObjectField)


def datetime_text(value: datetime.datetime) -> str:
    """A datetime as a record holds it: ISO 8601 in UTC, with microseconds
    (a naive datetime is taken as UTC, as cinder's are)."""
    # Not DateTimeField.to_primitive: unpatched it drops the microseconds,
    # and cinderlib patches it only once set up.  This is cinderlib's format.
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _primitive(field: ovo_fields.Field, ovo: Any, name: str, value: Any) -> Any:
    if isinstance(field, ovo_fields.DateTimeField):
        return datetime_text(value)
    return field.to_primitive(ovo, name, value)


def ovo_record(ovo: Any) -> Document:
    """The record of an OVO: its set, non-null fields that are not objects,
    as JSON primitives."""
    # A set field's value lives in the attribute _get_attrname(name) names;
    # reading it directly is what obj_attr_is_set and the field's getter do,
    # without rebuilding the field list on every call (3x faster).
    doc = {}
    for name, field in ovo.fields.items():
        if not _is_object(field):
            value = getattr(ovo, _get_attrname(name), None)
            if value is not None:
                doc[name] = _primitive(field, ovo, name, value)
    return doc


def volume_record(ovo: cinder_objs.Volume) -> Document:
    """A volume's record: `ovo_record` plus its own volume type's specs."""
    doc = ovo_record(ovo)
    if ovo.volume_type_id and ovo.obj_attr_is_set("volume_type") and ovo.volume_type:
        vtype = ovo.volume_type
        doc["volume_type"] = {"extra_specs": dict(vtype.extra_specs or {})}
        if vtype.qos_specs_id:
            doc["volume_type"]["qos_specs"] = dict(vtype.qos_specs.specs or {})
    return doc


# A field's fast conversion: the value the normal path (`from_primitive`,
# then `coerce`) makes of a record's value, or `_SLOW` when the value is not
# of the one plain form cinderlib writes (then the normal path decides).
# Going around oslo's coercion (a `warnings` context per UUID, iso8601 per
# date) and cinder's change tracking (`_TRACKED` below): a volume's OVO
# built the normal way took 285-290 us, this way 50-86 us (same process,
# a loaded 2-core machine: the ratio is the figure).
_SLOW = object()
Fast = Callable[[Any], Any]
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def _of_type(kind: type) -> Fast:
    return lambda value: value if type(value) is kind else _SLOW


def _uuid(value: Any) -> Any:
    # not a UUID: the normal path warns about it (oslo's FutureWarning)
    return value if type(value) is str and _UUID.fullmatch(value) else _SLOW


def _datetime(value: Any) -> Any:
    if type(value) is str and _DATETIME.fullmatch(value):
        return datetime.datetime.fromisoformat(value)     # aware, in UTC, as iso8601's
    return _SLOW


def _dict_of(values: Callable[[Any], bool]) -> Fast:
    def convert(value: Any) -> Any:
        if type(value) is dict and all(type(key) is str and values(item)
                                       for key, item in value.items()):
            return value
        return _SLOW
    return convert


def _strings(value: Any) -> Any:
    if type(value) is list and all(type(item) is str for item in value):
        return value
    return _SLOW


def _coerced(field: ovo_fields.Field) -> Callable[[Any, str, Any], Any] | None:
    """For a dict or list field: how the normal path's container is made
    (oslo's CoercedDict or CoercedList, which coerce what is put in them
    later), filled with values already of their type."""
    kind = type(field._type)
    if kind not in (ovo_fields.Dict, ovo_fields.List):
        return None
    element = field._type._element_type
    container = ovo_fields.CoercedDict if kind is ovo_fields.Dict else ovo_fields.CoercedList
    fill = dict.update if kind is ovo_fields.Dict else list.extend

    def wrap(ovo: Any, name: str, value: Any) -> Any:
        made = container()
        made.enable_coercing(element, ovo, name)
        fill(made, value)
        return made
    return wrap


def _choice(valid: Any) -> Fast:
    return lambda value: value if type(value) is str and value in valid else _SLOW


def _fast(field: ovo_fields.Field) -> Fast | None:
    """The fast conversion of `field`, or None: always the normal path."""
    kind = type(field)
    if kind in (ovo_fields.StringField, ovo_fields.BooleanField, ovo_fields.IntegerField):
        return _of_type({ovo_fields.StringField: str, ovo_fields.BooleanField: bool,
                         ovo_fields.IntegerField: int}[kind])
    if kind is ovo_fields.UUIDField:
        return _uuid
    if kind is ovo_fields.DateTimeField and field._type.tzinfo_aware:
        return _datetime
    if kind is ovo_fields.DictOfStringsField:
        return _dict_of(lambda item: type(item) is str)
    if kind is ovo_fields.DictOfNullableStringsField:
        return _dict_of(lambda item: item is None or type(item) is str)
    if kind is cinder_fields.DictOfNullableField:       # values of any type, as they are
        return _dict_of(lambda item: True)
    if kind is ovo_fields.ListOfStringsField:
        return _strings
    valid = getattr(field._type, "_valid_values", None)
    if isinstance(field, ovo_fields.BaseEnumField) and valid:
        return _choice(frozenset(valid))
    return None


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How records become OVOs of one class: (name, attribute, field, fast
    conversion, container) of each field a record holds."""
    id_field: ovo_fields.Field | None
    fields: tuple[tuple[str, str, ovo_fields.Field, Fast | None,
                        Callable[[Any, str, Any], Any] | None], ...]


_PLANS: dict[type, _Plan] = {}


def _plan(cls: type[Any]) -> _Plan:
    """The plan of `cls`, made again if its fields changed (cinderlib's
    ``non_uuid_ids`` makes every ``id`` a StringField at setup)."""
    plan = _PLANS.get(cls)
    if plan is None or plan.id_field is not cls.fields.get("id"):
        plan = _PLANS[cls] = _Plan(cls.fields.get("id"), tuple(
            (name, _get_attrname(name), field, _fast(field), _coerced(field))
            for name, field in cls.fields.items() if not _is_object(field)))
    return plan


# The metadata fields whose copies cinder's Volume and Snapshot keep to tell
# what changed (``_orig_<name>``, made by their __init__ and
# obj_reset_changes).  For these classes, as cinder 23 defines them, a read
# makes the OVO and clears its changes directly: their own methods ask
# ``name in ovo`` for each field, which rebuilds the 57-name field list
# every time (a third of a volume's build).  Any other class, or these ones
# defined otherwise, goes through its own methods.
_TRACKED: dict[type, tuple[str, ...]] = {
    cls: names for cls, names, module in (
        (cinder_objs.Volume, ("metadata", "admin_metadata", "glance_metadata"),
         "cinder.objects.volume"),
        (cinder_objs.Snapshot, ("metadata",), "cinder.objects.snapshot"))
    if [(k.__module__, k.__name__) for k in cls.__mro__
        if "__init__" in vars(k) or "obj_reset_changes" in vars(k)][:2]
    == [(module, cls.__name__), ("oslo_versionedobjects.base", "VersionedObject")]}


def new_ovo(cls: Any) -> Any:
    """An empty OVO of `cls`, in cinderlib's context, no changes tracked."""
    if cls not in _TRACKED:
        return cls(context=cl_objects.CONTEXT)
    ovo = cls.__new__(cls)      # what VersionedObject.__init__ sets
    ovo._changed_fields = set()
    ovo._context = cl_objects.CONTEXT
    return ovo


def reset_changes(ovo: Any) -> None:
    """``ovo.obj_reset_changes()``."""
    names = _TRACKED.get(type(ovo))
    if names is None:
        ovo.obj_reset_changes()
        return
    ovo._changed_fields.clear()
    attributes = vars(ovo)
    for name in names:
        value = attributes.get(_get_attrname(name))
        attributes["_orig_" + name] = {} if value is None else dict(value)


def ovo_from_record(cls: type, doc: Document, where: str) -> Any:
    """An OVO of `cls` from a record, with no changes tracked.  Fields the
    record leaves out are null; keys that are not fields are ignored.  Each
    value is what oslo's normal path (`from_primitive`, then `coerce`) makes
    of it: values of the plain form cinderlib writes are taken by the
    class's plan, any other goes the normal path (tests:
    ``tests/test_cinder_records.py``)."""
    ovo = new_ovo(cls)
    for name, attr, field, fast, wrap in _plan(cls).fields:
        value = doc.get(name)
        if value is None and name in _EMPTY_BY_DEFAULT:
            value = {}      # cinderlib's default; None would break obj_reset_changes
        if value is None:
            if field.nullable:      # what the field's coerce makes of None
                setattr(ovo, attr, None)
            continue
        if fast is not None:
            converted = fast(value)
            if converted is not _SLOW:
                setattr(ovo, attr, converted if wrap is None else wrap(ovo, name, converted))
                continue
        try:
            # What the field's setter does (coerce, store in the attribute
            # _get_attrname names) without its change tracking, which
            # obj_reset_changes clears below anyway.
            setattr(ovo, attr, field.coerce(ovo, name, field.from_primitive(ovo, name, value)))
        except (ValueError, TypeError, AttributeError) as exc:
            raise CorruptRecord(where, f"field {name!r}: {exc}") from None
    reset_changes(ovo)
    return ovo


def volume_from_record(doc: Document, where: str) -> cinder_objs.Volume:
    """A volume OVO from its record, volume type included."""
    ovo = ovo_from_record(cinder_objs.Volume, doc, where)
    vtype = doc.get("volume_type", {})
    if not isinstance(vtype, dict):
        raise CorruptRecord(where, "'volume_type' is not an object")
    if ovo.volume_type_id:
        try:
            ovo.volume_type = _volume_type(ovo.volume_type_id, vtype.get("extra_specs"),
                                           vtype.get("qos_specs"))
        except (ValueError, TypeError) as exc:
            raise CorruptRecord(where, f"'volume_type': {exc}") from None
    else:
        ovo.volume_type = None
    reset_changes(ovo)
    return ovo


def _volume_type(id: str, extra_specs: Any, qos_specs: Any) -> cinder_objs.VolumeType:
    """cinderlib's own type of one volume: id and name are the volume type
    id, public, QoS specs (if any) of the same id and name, for the back-end."""
    qos = None if qos_specs is None else cinder_objs.QualityOfServiceSpecs(
        context=cl_objects.CONTEXT, id=id, name=id, consumer="back-end", specs=qos_specs)
    vtype = cinder_objs.VolumeType(
        context=cl_objects.CONTEXT, id=id, name=id, is_public=True,
        extra_specs=extra_specs or {}, qos_specs_id=id if qos else None, qos_specs=qos)
    for obj in (vtype, qos):
        if obj is not None:
            obj.obj_reset_changes()
    return vtype


def changed_fields(resource: Any) -> set[str]:
    """The record keys of the fields cinderlib tracked as changed in
    `resource` (a cinderlib object)."""
    ovo = resource._ovo
    changed = {name for name in ovo._changed_fields
               if name in ovo.fields and not _is_object(ovo.fields[name])}
    if "volume_type" in ovo.fields and (
            {"volume_type", "volume_type_id"} & ovo._changed_fields
            or (ovo.obj_attr_is_set("volume_type") and ovo.volume_type
                and ovo.volume_type.obj_what_changed())):
        changed.add("volume_type")
    return changed


def merge(current: Document, doc: Document, changed: set[str]) -> Document:
    """`current` with the `changed` keys taken from `doc` (all of `doc` when
    nothing was tracked: the db plugin then writes every field too)."""
    if not changed:
        return dict(doc)
    merged = {key: value for key, value in current.items() if key != "id"}
    for key in changed:
        if key in doc:
            merged[key] = doc[key]
        else:
            merged.pop(key, None)
    return merged

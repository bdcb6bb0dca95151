"""Built cinderlib objects, kept per record version and handed out as clones.

Building a cinderlib object from a record (oslo's fields, cinderlib's
constructors) costs 30-400 us; copying a built one by a plan made once
costs a few.  `Template` freezes an object graph (cinderlib objects, their
OVOs, the lists and dicts they hold) and makes fresh copies of it;
`ObjectCache` keeps templates by record and revision, a bounded number of
them, and drops those whose record the store's cache reports changed.

Guarantees (tests: ``tests/test_cinder_objects.py``,
``tests/test_plugin_reads.py``):

* Every clone is the caller's own: no dict, list, set, OVO or cinderlib
  object in it is shared with the template or with another clone (only
  immutable values, cinderlib's Backend objects and request contexts are,
  as cinderlib shares them); changing a clone changes nothing another
  clone or a later read sees.  A value of a kind not known here refuses
  the template (`TypeError`): the caller builds each time instead.
* A template is used only for the revision it was built from: the cache
  answers by (type, id, revision), so a record another process changed is
  built again; the store's cache listener events (`Store.subscribe`) drop
  the templates of records it reports changed or removed.
* At most `size` templates are kept (least recently used go first); 0
  keeps none.  `stats` counts hits and misses.

Locking rule: one mutex, a leaf: taken inside the store cache's lock when
the cache reports (the listener methods) and alone by reads; nothing is
called out while it is held.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import missing_cinderlib

try:
    import cinderlib
    from cinder import context as cinder_context
    from cinderlib import objects as cl_objects
    from oslo_versionedobjects import base as ovo_base
    from oslo_versionedobjects import fields as ovo_fields
except ImportError as exc:
    raise missing_cinderlib(exc) from exc

# Shared by every clone, as cinderlib shares them between its objects.
_IMMUTABLE = (str, int, float, bool, type(None), bytes, datetime.datetime, datetime.date)
_SHARED = (cinder_context.RequestContext, cinderlib.Backend,
           ovo_fields.Field, ovo_fields.FieldType)     # (field definitions)
_PLAIN = (dict, list, set)
_NODES = (ovo_base.VersionedObject, cl_objects.Object)

Maker = Callable[[list[Any]], Any]


_ATOMIC = frozenset(_IMMUTABLE)      # the exact types, looked up first (most values)


def _shared(value: Any) -> bool:
    return type(value) in _ATOMIC or isinstance(value, _IMMUTABLE) or isinstance(value, _SHARED)


class Template:
    """A frozen copy of the object graph at `root`, and the plan to copy it.

    Each object of the graph (cinderlib objects, OVOs, and oslo's
    CoercedDict, CoercedList and CoercedSet, which are containers with
    attributes) is a node: its class, its attributes with the immutable ones
    as they are, and for each other attribute how to make a fresh value (a
    new dict, list or set, or a reference to another node of the copy); a
    container node also has its content, put in through the plain type's
    own methods (as unpickling does), not the coercing ones."""

    def __init__(self, root: Any) -> None:
        self._index: dict[int, int] = {}
        self._classes: list[Any] = []     # classes (Any: their __new__ takes them)
        # per node: its shared attributes; (key, node index) of those that
        # are other nodes; (key, value) of the dicts, lists and sets of
        # shared values (copied); (key, maker) of any other
        self._nodes: list[tuple[dict[str, Any], list[tuple[str, int]],
                                list[tuple[str, Any]], list[tuple[str, Maker]]]] = []
        # per container node: (index, fill, its content frozen, or a maker)
        self._contents: list[tuple[int, Any, Any, Maker | None]] = []
        self._node(root)
        del self._index

    def clone(self) -> Any:
        """A fresh copy of the graph: its root."""
        news = [cls.__new__(cls) for cls in self._classes]
        for new, (base, refs, copies, makers) in zip(news, self._nodes):
            attributes = base.copy()
            for key, index in refs:
                attributes[key] = news[index]
            for key, value in copies:
                attributes[key] = value.copy()
            for key, make in makers:
                attributes[key] = make(news)
            new.__dict__ = attributes
        for index, fill, frozen, make_content in self._contents:
            fill(news[index], frozen if make_content is None else make_content(news))
        return news[0]

    def _node(self, obj: Any) -> int:
        index = self._index.get(id(obj))
        if index is not None:
            return index
        index = self._index[id(obj)] = len(self._classes)
        self._classes.append(type(obj))
        base: dict[str, Any] = {}
        refs: list[tuple[str, int]] = []
        copies: list[tuple[str, Any]] = []
        makers: list[tuple[str, Maker]] = []
        self._nodes.append((base, refs, copies, makers))
        for key, value in vars(obj).items():
            if type(value) in _ATOMIC:
                base[key] = value
            elif _is_node(value):
                refs.append((key, self._node(value)))
            elif type(value) in _PLAIN and all(map(_shared, value.values() if type(
                    value) is dict else value)):
                copies.append((key, value.copy()))
            else:
                make = self._maker(value, key)
                if make is None:
                    base[key] = value
                else:
                    makers.append((key, make))
        if isinstance(obj, _PLAIN):     # a coerced container: its content too
            plain = next(kind for kind in _PLAIN if isinstance(obj, kind))
            frozen = plain(obj)
            self._contents.append((index, _FILL[plain], frozen,
                                   self._maker(plain(obj), f"content of {type(obj).__name__}")))
        return index

    def _maker(self, value: Any, where: str) -> Maker | None:
        """How a clone gets its own `value` (None: it is shared as it is)."""
        if _shared(value):
            return None
        if _is_node(value):
            index = self._node(value)
            return lambda news: news[index]
        if type(value) is dict:
            items = [(key, item, self._maker(item, where)) for key, item in value.items()]
            if all(make is None for _, _, make in items):
                frozen = dict(value)
                return lambda news: frozen.copy()
            return lambda news: {key: item if make is None else make(news)
                                 for key, item, make in items}
        if type(value) in (list, tuple, set, frozenset):
            kind = type(value)
            makers = [(item, self._maker(item, where)) for item in value]
            if all(make is None for _, make in makers):
                if kind in (tuple, frozenset):
                    return None
                frozen_items = list(value)
                return lambda news: kind(frozen_items)
            return lambda news: kind(item if make is None else make(news)
                                     for item, make in makers)
        raise TypeError(f"cannot clone {where!r}: a {type(value).__name__}")


_FILL: dict[type, Any] = {list: list.extend, dict: dict.update, set: set.update}


def _is_node(value: Any) -> bool:
    return isinstance(value, _NODES) or (isinstance(value, _PLAIN)
                                         and type(value) not in _PLAIN)


@dataclasses.dataclass(frozen=True)
class CacheStats:
    """The object cache's figures: templates kept and their bound, reads
    answered from a template (hits) or built (misses), templates evicted
    by the bound."""
    size: int
    bound: int
    hits: int
    misses: int
    evicted: int

    @property
    def hit_ratio(self) -> float | None:
        """hits / reads (None before the first read)."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else None


class ObjectCache:
    """Templates by (type, id), each with the revision it was built from;
    a `gitpersist.cache.CacheListener` of the store."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = self._evicted = 0

    def get(self, type: str, id: str, revision: str) -> Any:
        """What was kept for the record at `revision`, or None."""
        key = (type, id)
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != revision:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return item[1]

    def get_many(self, type: str, pairs: list[tuple[str, str]]) -> list[Any]:
        """`get` of each (id, revision), under one lock."""
        found: list[Any] = []
        items, hits = self._items, 0
        with self._lock:
            for id, revision in pairs:
                item = items.get((type, id))
                if item is None or item[0] != revision:
                    found.append(None)
                else:
                    items.move_to_end((type, id))
                    found.append(item[1])
                    hits += 1
            self._hits += hits
            self._misses += len(pairs) - hits
        return found

    def put(self, type: str, id: str, revision: str, value: Any) -> None:
        """Keep `value`, built from the record at `revision`."""
        if self.size <= 0:
            return
        key = (type, id)
        with self._lock:
            self._items[key] = (revision, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
                self._evicted += 1

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._items), self.size, self._hits, self._misses,
                              self._evicted)

    # -- what the store's cache reports (its lock held) ----------------------------

    def stored(self, type: str, id: str, revision: str) -> None:
        with self._lock:
            item = self._items.get((type, id))
            if item is not None and item[0] != revision:
                del self._items[(type, id)]

    def removed(self, type: str, id: str) -> None:
        with self._lock:
            self._items.pop((type, id), None)

    def invalidated(self, type: str | None) -> None:
        """Nothing is dropped: every read compares the revision the store
        reads now, and the store's cache reports each record it reads again
        (`stored`: a changed one is dropped then).  A watcher's event for a
        whole type folder (its creation, say, arriving after the saves)
        would otherwise drop every template of the type, and each read
        after it would build again."""

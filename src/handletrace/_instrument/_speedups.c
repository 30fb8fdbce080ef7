/* handletrace._instrument._speedups: the per-handle hot path in C (optional).
 *
 * make_hooks() returns the objects that replace interop._Handle.__init__ and __del__. They
 * do what _instrument.hooks.python_hooks() does, step for step (those are the specification:
 * tests/test_hot_path.py runs the same cases against both), without the cost of an extra
 * Python call per handle: a Python wrapper alone costs about 5 % of creating and releasing
 * the cheapest SDK object. The GIL makes each hook atomic: no Python code runs
 * between reading and writing the registry's containers, and every allocation that could
 * start a collection (and re-enter a hook through a finaliser) comes before the mutations.
 *
 * What else keeps the per-handle cost down (each measured with benchmarks/bench_overhead.py):
 * a _Handle's record is found by its address (HandleIndex), not by an attribute on it;
 * counters are C integers (Counters, one row per kind, release causes as columns); the
 * tracker's installed / config / gc_thread are read from its slots; each hook remembers the
 * unwrapped release functions, the kinds' counters, the current thread's Thread and the
 * stacks it has met, so that the common case makes no dictionary lookup for them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <pythread.h>
#include <structmember.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if PY_VERSION_HEX < 0x03090000
#error "handletrace._instrument._speedups needs CPython 3.9 or newer"
#endif
#ifdef Py_GIL_DISABLED
#error "handletrace._instrument._speedups relies on the GIL: not for free-threaded CPython"
#endif

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && \
    !defined(HANDLETRACE_PUBLIC_FRAMES)
#define HT_INTERNAL_FRAMES 1
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"
#else
#define HT_INTERNAL_FRAMES 0
#endif

#define MAX_DEPTH 256

/* -- the contract with handletrace's Python code -------------------------------------------
 * Each list below is written once, here, and used both by the code and for the module's
 * constants of the same name (ENTRY_FIELDS, COUNTER_FIELDS, CONTEXT_FIELDS, TRACKER_SLOTS,
 * CONFIG_FIELDS), which the tests compare with the Python definitions: _core.registry's
 * HANDLE_ENTRY and COUNTER_NAMES, _instrument.hooks.HookContext, _core.state.HOOK_SLOTS and
 * _core.config.Config. */

/* A _Handle's entry in the live table: the tuple the __init__ hook builds (HANDLE_ENTRY). */
#define ENTRY_FIELDS(X)                                                                    \
    X(SEQ, "seq") X(KIND, "kind") X(HANDLE, "handle") X(CODE, "code") X(THREAD, "thread")  \
    X(MONOTONIC, "monotonic") X(TRACEBACK, "traceback")

/* The leading counters of a kind's row, written by position (COUNTER_NAMES); one column per
 * release cause follows, written by the index the hooks are given (ctx.del_column...). */
#define COUNTER_FIELDS(X)                                                                  \
    X(CREATED, "created") X(RELEASED, "released") X(LIVE, "live") X(PEAK, "peak")

#define AS_INDEX(name, text) ENTRY_##name,
enum { ENTRY_FIELDS(AS_INDEX) ENTRY_LEN };
#undef AS_INDEX
#define AS_INDEX(name, text) COUNT_##name,
enum { COUNTER_FIELDS(AS_INDEX) FIRST_CAUSE_COLUMN };
#undef AS_INDEX

/* The HookContext attributes make_hooks takes, in HookContext's order: objects (kept by each
 * hook under the same name) and the counters' columns of the two causes a __del__ counts.
 * HookContext.lock is not read: the Python hooks hold it, the GIL does for these. */
#define CONTEXT_OBJECTS(X)                                                                 \
    X(tracker) X(live) X(counts) X(seq_counter) X(unwrapped) X(interned) X(active_threads) \
    X(ignored_dirs) X(ignored_files) X(empty_traceback) X(handle_index) X(kind_for)         \
    X(count_error) X(new_kind) X(make_traceback) X(monotonic) X(releasing) X(on_slow_release)
#define CONTEXT_COLUMNS(X) X(del_column) X(gc_column)

/* What the hooks read per handle: the tracker's slots (HOOK_SLOTS; read at their offset in
 * the object, see slot_offset) and the settings of tracker.config. */
#define TRACKER_SLOTS(X) X(installed) X(config) X(gc_thread) X(release_listener)
#define CONFIG_FIELDS(X) X(kinds) X(stack_depth) X(stack_sample) X(slow_release)

#define DECLARE_NAME(name) *s_##name,
static PyObject TRACKER_SLOTS(DECLARE_NAME) CONFIG_FIELDS(DECLARE_NAME) *s_where_init,
    *s_where_del, *s_missing;
#undef DECLARE_NAME

/* -- Counters: a kind's counters as C integers ---------------------------------------------
 * A fixed-length sequence of 64-bit integers (created, released, live, peak, then one per
 * release cause: see _core.registry.COUNTER_COLUMNS). The hooks add to it in place: counting in
 * Python ints would allocate a new int per counter per handle. Python code indexes it like
 * the list the pure-Python hooks use. */
typedef struct {
    PyObject_VAR_HEAD
    long long values[1];
} Counters;

static PyTypeObject CountersType;

#define Counters_Check(op) Py_IS_TYPE((op), &CountersType)

static PyObject *
counters_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *values;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Counters() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:Counters", &values))
        return NULL;
    PyObject *items = PySequence_Fast(values, "Counters() takes a sequence of integers");
    if (items == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    Counters *self = (Counters *)type->tp_alloc(type, count);
    if (self == NULL) {
        Py_DECREF(items);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        long long value = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(items, i));
        if (value == -1 && PyErr_Occurred()) {
            Py_DECREF(items);
            Py_DECREF(self);
            return NULL;
        }
        self->values[i] = value;
    }
    Py_DECREF(items);
    return (PyObject *)self;
}

static Py_ssize_t
counters_length(Counters *self)
{
    return Py_SIZE(self);
}

static PyObject *
counters_item(Counters *self, Py_ssize_t index)
{
    if (index < 0 || index >= Py_SIZE(self)) {
        PyErr_SetString(PyExc_IndexError, "Counters index out of range");
        return NULL;
    }
    return PyLong_FromLongLong(self->values[index]);
}

static int
counters_ass_item(Counters *self, Py_ssize_t index, PyObject *value)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "Counters items cannot be deleted");
        return -1;
    }
    if (index < 0 || index >= Py_SIZE(self)) {
        PyErr_SetString(PyExc_IndexError, "Counters assignment index out of range");
        return -1;
    }
    long long number = PyLong_AsLongLong(value);
    if (number == -1 && PyErr_Occurred())
        return -1;
    self->values[index] = number;
    return 0;
}

static PyObject *
counters_as_list(Counters *self)
{
    PyObject *list = PyList_New(Py_SIZE(self));
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
        PyObject *value = PyLong_FromLongLong(self->values[i]);
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, value);
    }
    return list;
}

/* Equal to another Counters, a list or a tuple with the same integers (as a list would be). */
static PyObject *
counters_richcompare(PyObject *self, PyObject *other, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !Counters_Check(self) ||
        !(Counters_Check(other) || PyList_Check(other) || PyTuple_Check(other)))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *left = counters_as_list((Counters *)self);
    PyObject *right = Counters_Check(other) ? counters_as_list((Counters *)other)
                                            : PySequence_List(other);
    PyObject *result = NULL;
    if (left != NULL && right != NULL)
        result = PyObject_RichCompare(left, right, op);
    Py_XDECREF(left);
    Py_XDECREF(right);
    return result;
}

static PyObject *
counters_repr(Counters *self)
{
    PyObject *list = counters_as_list(self);
    if (list == NULL)
        return NULL;
    PyObject *text = PyUnicode_FromFormat("Counters(%R)", list);
    Py_DECREF(list);
    return text;
}

static PySequenceMethods counters_as_sequence = {
    .sq_length = (lenfunc)counters_length,
    .sq_item = (ssizeargfunc)counters_item,
    .sq_ass_item = (ssizeobjargproc)counters_ass_item,
};

static PyTypeObject CountersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "handletrace._instrument._speedups.Counters",
    .tp_basicsize = offsetof(Counters, values),
    .tp_itemsize = sizeof(long long),
    .tp_repr = (reprfunc)counters_repr,
    .tp_as_sequence = &counters_as_sequence,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_richcompare = counters_richcompare,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Counters(values): a fixed number of 64-bit counters, indexed like a list.",
    .tp_new = counters_new,
};

/* -- HandleIndex: which record a _Handle has, by the _Handle's address --------------------
 * An open-addressing table (linear probing, backward-shift deletion) from an object's
 * address to its record's sequence number. An attribute on the _Handle did the same, but
 * setting and reading an instance attribute per handle cost more than the rest of the
 * bookkeeping (and slowed the SDK's own attribute reads on _Handle). Python code sees a
 * mapping from id(obj) to the sequence number. An entry is removed when its _Handle is
 * finalised; one left by a _Handle finalised unseen (handletrace not installed) is replaced
 * when the address is reused, and a record is only trusted after checking that the object
 * at the address holds the record's own ctypes handle (see Registry.seq_of_handle). */
typedef struct {
    void *key; /* the object's address; NULL: empty */
    PyObject *value;
} IndexSlot;

typedef struct {
    PyObject_HEAD
    IndexSlot *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    Py_ssize_t used;
} HandleIndex;

static PyTypeObject HandleIndexType;

#define HandleIndex_Check(op) Py_IS_TYPE((op), &HandleIndexType)
#define INDEX_MIN_CAPACITY 8

static size_t
index_hash(void *key)
{
    uint64_t x = (uint64_t)(uintptr_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t
index_find(HandleIndex *self, void *key)
{
    size_t i = index_hash(key) & self->mask;
    while (self->slots[i].key != NULL && self->slots[i].key != key)
        i = (i + 1) & self->mask;
    return i;
}

static int
index_resize(HandleIndex *self, size_t capacity)
{
    IndexSlot *old = self->slots;
    size_t old_capacity = old != NULL ? self->mask + 1 : 0;
    IndexSlot *slots = PyMem_Calloc(capacity, sizeof(IndexSlot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->slots = slots;
    self->mask = capacity - 1;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old[i].key != NULL)
            slots[index_find(self, old[i].key)] = old[i];
    }
    PyMem_Free(old);
    return 0;
}

/* Room for one more entry (allocates, if at all, before anything changes). */
static int
index_reserve(HandleIndex *self)
{
    size_t capacity = self->mask + 1;
    if ((size_t)(self->used + 1) * 3 <= capacity * 2)
        return 0;
    return index_resize(self, capacity * 2);
}

/* key -> value (a new reference is taken), replacing what was there; after index_reserve. */
static void
index_put(HandleIndex *self, void *key, PyObject *value)
{
    size_t i = index_find(self, key);
    PyObject *old = self->slots[i].value;
    Py_INCREF(value);
    if (self->slots[i].key == NULL) {
        self->slots[i].key = key;
        self->used++;
    }
    self->slots[i].value = value;
    Py_XDECREF(old);
}

/* Remove key: its value (new reference), or NULL (no exception) if it has none. */
static PyObject *
index_pop(HandleIndex *self, void *key)
{
    size_t mask = self->mask, hole = index_find(self, key);
    IndexSlot *slots = self->slots;
    if (slots[hole].key == NULL)
        return NULL;
    PyObject *value = slots[hole].value;
    slots[hole].key = NULL;
    slots[hole].value = NULL;
    self->used--;
    /* Move later members of the probe run back into the hole (no tombstones). */
    for (size_t j = (hole + 1) & mask; slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = index_hash(slots[j].key) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            slots[hole] = slots[j];
            slots[j].key = NULL;
            slots[j].value = NULL;
            hole = j;
        }
    }
    return value;
}

static int
index_key(PyObject *address, void **key)
{
    *key = PyLong_AsVoidPtr(address);
    if (*key == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "HandleIndex: 0 is no object's address");
        return -1;
    }
    return 0;
}

static int
index_set(HandleIndex *self, PyObject *address, PyObject *value)
{
    void *key;
    if (index_key(address, &key) < 0)
        return -1;
    if (value == NULL) {
        PyObject *old = index_pop(self, key);
        if (old == NULL) {
            PyErr_SetObject(PyExc_KeyError, address);
            return -1;
        }
        Py_DECREF(old);
        return 0;
    }
    if (index_reserve(self) < 0)
        return -1;
    index_put(self, key, value);
    return 0;
}

static PyObject *
index_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *items = NULL;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "HandleIndex() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "|O:HandleIndex", &items))
        return NULL;
    HandleIndex *self = (HandleIndex *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->slots = NULL;
    self->used = 0;
    if (index_resize(self, INDEX_MIN_CAPACITY) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (items != NULL) {
        PyObject *pairs = PyMapping_Check(items) && PyObject_HasAttrString(items, "items")
                              ? PyMapping_Items(items)
                              : PySequence_List(items);
        if (pairs == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
            PyObject *pair = PyList_GET_ITEM(pairs, i);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "HandleIndex() takes (address, value) pairs");
                Py_DECREF(pairs);
                Py_DECREF(self);
                return NULL;
            }
            if (index_set(self, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
                Py_DECREF(pairs);
                Py_DECREF(self);
                return NULL;
            }
        }
        Py_DECREF(pairs);
    }
    return (PyObject *)self;
}

static int
index_traverse(HandleIndex *self, visitproc visit, void *arg)
{
    if (self->slots != NULL) {
        for (size_t i = 0; i <= self->mask; i++)
            Py_VISIT(self->slots[i].value);
    }
    return 0;
}

/* Empty the table; values are released after it is consistent (one may run anything). */
static int
index_clear(HandleIndex *self)
{
    IndexSlot *old = self->slots;
    size_t capacity = old != NULL ? self->mask + 1 : 0;
    IndexSlot *fresh = PyMem_Calloc(INDEX_MIN_CAPACITY, sizeof(IndexSlot));
    if (fresh == NULL && old != NULL) {
        /* keep the table, drop the values in place */
        for (size_t i = 0; i < capacity; i++) {
            old[i].key = NULL;
            Py_CLEAR(old[i].value);
        }
        self->used = 0;
        return 0;
    }
    self->slots = fresh;
    self->mask = INDEX_MIN_CAPACITY - 1;
    self->used = 0;
    for (size_t i = 0; i < capacity; i++)
        Py_XDECREF(old[i].value);
    PyMem_Free(old);
    return 0;
}

static void
index_dealloc(HandleIndex *self)
{
    PyObject_GC_UnTrack(self);
    index_clear(self);
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t
index_length(HandleIndex *self)
{
    return self->used;
}

static PyObject *
index_subscript(HandleIndex *self, PyObject *address)
{
    void *key;
    if (index_key(address, &key) < 0)
        return NULL;
    IndexSlot *slot = &self->slots[index_find(self, key)];
    if (slot->key == NULL) {
        PyErr_SetObject(PyExc_KeyError, address);
        return NULL;
    }
    Py_INCREF(slot->value);
    return slot->value;
}

static int
index_contains(HandleIndex *self, PyObject *address)
{
    void *key;
    if (index_key(address, &key) < 0)
        return -1;
    return self->slots[index_find(self, key)].key != NULL;
}

static PyObject *
index_get(HandleIndex *self, PyObject *args)
{
    PyObject *address, *fallback = Py_None;
    void *key;
    if (!PyArg_ParseTuple(args, "O|O:get", &address, &fallback) || index_key(address, &key) < 0)
        return NULL;
    IndexSlot *slot = &self->slots[index_find(self, key)];
    PyObject *value = slot->key != NULL ? slot->value : fallback;
    Py_INCREF(value);
    return value;
}

static PyObject *
index_pop_method(HandleIndex *self, PyObject *args)
{
    PyObject *address, *fallback = Py_None;
    void *key;
    if (!PyArg_ParseTuple(args, "O|O:pop", &address, &fallback) || index_key(address, &key) < 0)
        return NULL;
    PyObject *value = index_pop(self, key);
    if (value == NULL) {
        Py_INCREF(fallback);
        return fallback;
    }
    return value;
}

static PyObject *
index_items(HandleIndex *self, PyObject *unused)
{
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return NULL;
    for (size_t i = 0; i <= self->mask; i++) {
        if (self->slots[i].key == NULL)
            continue;
        PyObject *pair = Py_BuildValue("(NO)", PyLong_FromVoidPtr(self->slots[i].key),
                                       self->slots[i].value);
        if (pair == NULL || PyList_Append(items, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(items);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return items;
}

static PyObject *
index_clear_method(HandleIndex *self, PyObject *unused)
{
    index_clear(self);
    Py_RETURN_NONE;
}

/* Remove every entry whose value is one of values (atomically: the hooks cannot interleave). */
static PyObject *
index_discard_values(HandleIndex *self, PyObject *values)
{
    PyObject *wanted = PySet_New(values);
    if (wanted == NULL)
        return NULL;
    Py_ssize_t removed = 0;
    size_t i = 0;
    while (i <= self->mask) {
        IndexSlot *slot = &self->slots[i];
        if (slot->key != NULL) {
            int hit = PySet_Contains(wanted, slot->value);
            if (hit < 0) {
                Py_DECREF(wanted);
                return NULL;
            }
            if (hit) {
                /* pop shifts later entries back into this slot: look at it again */
                PyObject *value = index_pop(self, slot->key);
                Py_XDECREF(value);
                removed++;
                continue;
            }
        }
        i++;
    }
    Py_DECREF(wanted);
    return PyLong_FromSsize_t(removed);
}

static PyMappingMethods index_as_mapping = {
    .mp_length = (lenfunc)index_length,
    .mp_subscript = (binaryfunc)index_subscript,
    .mp_ass_subscript = (objobjargproc)index_set,
};

static PySequenceMethods index_as_sequence = {
    .sq_contains = (objobjproc)index_contains,
};

static PyMethodDef index_methods[] = {
    {"get", (PyCFunction)index_get, METH_VARARGS, "get(address, default=None)"},
    {"pop", (PyCFunction)index_pop_method, METH_VARARGS, "pop(address, default=None)"},
    {"items", (PyCFunction)index_items, METH_NOARGS, "a list of (address, value)"},
    {"clear", (PyCFunction)index_clear_method, METH_NOARGS, "remove every entry"},
    {"discard_values", (PyCFunction)index_discard_values, METH_O,
     "discard_values(values) -> how many entries with one of these values were removed"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HandleIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "handletrace._instrument._speedups.HandleIndex",
    .tp_basicsize = sizeof(HandleIndex),
    .tp_dealloc = (destructor)index_dealloc,
    .tp_as_mapping = &index_as_mapping,
    .tp_as_sequence = &index_as_sequence,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "HandleIndex(items=()): id(obj) -> value, for the objects the hooks track.",
    .tp_traverse = (traverseproc)index_traverse,
    .tp_clear = (inquiry)index_clear,
    .tp_methods = index_methods,
    .tp_new = index_new,
};


/* -- Releasing: the native releases in flight ------------------------------------------------
 * seq -> (started, thread, cause column) while a release runs (Registry.releasing_table; the
 * Python hooks keep a dict). Few releases are ever in flight at once (one per thread at most,
 * nested ones aside), so the entries are a small array scanned from the end: a release marks
 * itself and unmarks itself with no allocation (a tuple and a float per release cost more than
 * the rest of the __del__ hook). Python code sees a mapping from seq to the tuple. */
typedef struct {
    PyObject *seq; /* NULL: free */
    PyObject *thread;
    double started;
    Py_ssize_t column;
} Marked;

typedef struct {
    PyObject_HEAD
    Marked *entries;
    Py_ssize_t used;     /* entries in use are entries[0 .. used) */
    Py_ssize_t capacity;
} Releasing;

static PyTypeObject ReleasingType;

#define Releasing_Check(op) Py_IS_TYPE((op), &ReleasingType)

/* Where seq is marked, or -1. */
static Py_ssize_t
releasing_find(Releasing *self, PyObject *seq)
{
    for (Py_ssize_t i = self->used - 1; i >= 0; i--) {
        PyObject *key = self->entries[i].seq;
        if (key == seq)
            return i;
        int equal = PyObject_RichCompareBool(key, seq, Py_EQ);
        if (equal < 0)
            PyErr_Clear();
        else if (equal)
            return i;
    }
    return -1;
}

/* Mark seq (a new reference to seq and thread is taken): 0, or -1 with an exception. */
static int
releasing_put(Releasing *self, PyObject *seq, double started, PyObject *thread,
              Py_ssize_t column)
{
    Py_ssize_t at = releasing_find(self, seq);
    if (at < 0) {
        if (self->used == self->capacity) {
            Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 8;
            Marked *entries = PyMem_Realloc(self->entries, capacity * sizeof(Marked));
            if (entries == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            self->entries = entries;
            self->capacity = capacity;
        }
        at = self->used++;
        self->entries[at].seq = NULL;
        self->entries[at].thread = NULL;
    }
    Marked *entry = &self->entries[at];
    PyObject *old_seq = entry->seq, *old_thread = entry->thread;
    Py_INCREF(seq);
    Py_INCREF(thread);
    entry->seq = seq;
    entry->thread = thread;
    entry->started = started;
    entry->column = column;
    Py_XDECREF(old_seq);
    Py_XDECREF(old_thread);
    return 0;
}

/* Unmark seq: 1 if it was marked (its entry copied to *out, references handed over), 0 if
 * not. */
static int
releasing_take(Releasing *self, PyObject *seq, Marked *out)
{
    Py_ssize_t at = releasing_find(self, seq);
    if (at < 0)
        return 0;
    *out = self->entries[at];
    self->entries[at] = self->entries[--self->used];
    return 1;
}

static PyObject *
marked_tuple(Marked *entry)
{
    return Py_BuildValue("(dOn)", entry->started, entry->thread, entry->column);
}

static int
releasing_parse(PyObject *value, double *started, PyObject **thread, Py_ssize_t *column)
{
    if (!PyArg_ParseTuple(value, "dOn:Releasing", started, thread, column)) {
        PyErr_SetString(PyExc_TypeError, "Releasing values are (started, thread, column)");
        return -1;
    }
    return 0;
}

static int
releasing_set(Releasing *self, PyObject *seq, PyObject *value)
{
    if (value == NULL) {
        Marked gone;
        if (!releasing_take(self, seq, &gone)) {
            PyErr_SetObject(PyExc_KeyError, seq);
            return -1;
        }
        Py_DECREF(gone.seq);
        Py_DECREF(gone.thread);
        return 0;
    }
    double started;
    PyObject *thread;
    Py_ssize_t column;
    if (releasing_parse(value, &started, &thread, &column) < 0)
        return -1;
    return releasing_put(self, seq, started, thread, column);
}

static int
releasing_clear(Releasing *self)
{
    Py_ssize_t used = self->used;
    Marked *entries = self->entries;
    self->used = 0;
    for (Py_ssize_t i = 0; i < used; i++) {
        Py_CLEAR(entries[i].seq);
        Py_CLEAR(entries[i].thread);
    }
    return 0;
}

static PyObject *
releasing_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *items = NULL;
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) ||
        !PyArg_ParseTuple(args, "|O:Releasing", &items))
        return NULL;
    Releasing *self = (Releasing *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->entries = NULL;
    self->used = self->capacity = 0;
    if (items != NULL) {
        PyObject *pairs = PyMapping_Check(items) && PyObject_HasAttrString(items, "items")
                              ? PyMapping_Items(items)
                              : PySequence_List(items);
        if (pairs == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
            PyObject *pair = PyList_GET_ITEM(pairs, i);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
                releasing_set(self, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "Releasing() takes (seq, value) pairs");
                Py_DECREF(pairs);
                Py_DECREF(self);
                return NULL;
            }
        }
        Py_DECREF(pairs);
    }
    return (PyObject *)self;
}

static int
releasing_traverse(Releasing *self, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < self->used; i++) {
        Py_VISIT(self->entries[i].seq);
        Py_VISIT(self->entries[i].thread);
    }
    return 0;
}

static void
releasing_dealloc(Releasing *self)
{
    PyObject_GC_UnTrack(self);
    releasing_clear(self);
    PyMem_Free(self->entries);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t
releasing_length(Releasing *self)
{
    return self->used;
}

static PyObject *
releasing_subscript(Releasing *self, PyObject *seq)
{
    Py_ssize_t at = releasing_find(self, seq);
    if (at < 0) {
        PyErr_SetObject(PyExc_KeyError, seq);
        return NULL;
    }
    return marked_tuple(&self->entries[at]);
}

static int
releasing_contains(Releasing *self, PyObject *seq)
{
    return releasing_find(self, seq) >= 0;
}

static PyObject *
releasing_pop(Releasing *self, PyObject *args)
{
    PyObject *seq, *fallback = Py_None;
    if (!PyArg_ParseTuple(args, "O|O:pop", &seq, &fallback))
        return NULL;
    Marked gone;
    if (!releasing_take(self, seq, &gone)) {
        Py_INCREF(fallback);
        return fallback;
    }
    PyObject *value = marked_tuple(&gone);
    Py_DECREF(gone.seq);
    Py_DECREF(gone.thread);
    return value;
}

/* A dict of the releases in flight (one C call: atomic with the hooks under the GIL). */
static PyObject *
releasing_copy(Releasing *self, PyObject *unused)
{
    PyObject *copy = PyDict_New();
    if (copy == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->used; i++) {
        PyObject *value = marked_tuple(&self->entries[i]);
        if (value == NULL || PyDict_SetItem(copy, self->entries[i].seq, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(copy);
            return NULL;
        }
        Py_DECREF(value);
    }
    return copy;
}

static PyObject *
releasing_items(Releasing *self, PyObject *unused)
{
    PyObject *copy = releasing_copy(self, NULL);
    if (copy == NULL)
        return NULL;
    PyObject *items = PyDict_Items(copy);
    Py_DECREF(copy);
    return items;
}

static PyObject *
releasing_clear_method(Releasing *self, PyObject *unused)
{
    releasing_clear(self);
    Py_RETURN_NONE;
}

static PyMappingMethods releasing_as_mapping = {
    .mp_length = (lenfunc)releasing_length,
    .mp_subscript = (binaryfunc)releasing_subscript,
    .mp_ass_subscript = (objobjargproc)releasing_set,
};

static PySequenceMethods releasing_as_sequence = {
    .sq_contains = (objobjproc)releasing_contains,
};

static PyMethodDef releasing_methods[] = {
    {"pop", (PyCFunction)releasing_pop, METH_VARARGS, "pop(seq, default=None)"},
    {"copy", (PyCFunction)releasing_copy, METH_NOARGS, "a dict of seq -> (started, thread, column)"},
    {"items", (PyCFunction)releasing_items, METH_NOARGS, "a list of (seq, value)"},
    {"clear", (PyCFunction)releasing_clear_method, METH_NOARGS, "unmark everything"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReleasingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "handletrace._instrument._speedups.Releasing",
    .tp_basicsize = sizeof(Releasing),
    .tp_dealloc = (destructor)releasing_dealloc,
    .tp_as_mapping = &releasing_as_mapping,
    .tp_as_sequence = &releasing_as_sequence,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Releasing(items=()): seq -> (started, thread, cause column), releases in flight.",
    .tp_traverse = (traverseproc)releasing_traverse,
    .tp_clear = (inquiry)releasing_clear,
    .tp_methods = releasing_methods,
    .tp_new = releasing_new,
};

#define UNWRAP_CACHE 8
#define ROW_CACHE 16
#define STACK_CACHE 256 /* a power of two */
#define IGNORED_CACHE 64 /* a power of two */

/* An interned stack remembered under its packed key (see capture) and a cheap hash of it. */
typedef struct {
    Py_uhash_t hash;
    PyObject *key;
    PyObject *traceback;
} StackSlot;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *dict;
    int is_init;
    PyObject *original;
    /* The context's objects, each under its HookContext name (CONTEXT_OBJECTS). */
#define DECLARE_OBJECT(name) PyObject *name;
    CONTEXT_OBJECTS(DECLARE_OBJECT)
#undef DECLARE_OBJECT
    /* Config is immutable: its values are read again only when tracker.config changes. */
    PyObject *config;
    PyObject *kinds;
    long stack_depth;
    long stack_sample;
    double slow_release; /* seconds: a release at least this long goes to on_slow_release */
    /* ctx.monotonic is time.monotonic and this platform's clock is known (see monotonic_now) */
    int read_clock;
    /* The counters' columns of the two causes a hook counts (CONTEXT_COLUMNS). */
#define DECLARE_COLUMN(name) Py_ssize_t name;
    CONTEXT_COLUMNS(DECLARE_COLUMN)
#undef DECLARE_COLUMN
    /* Where the tracker keeps installed, config and gc_thread (TRACKER_SLOTS: <name>_at),
     * when they are slots (see slot_offset); -1: read as attributes. */
#define DECLARE_OFFSET(name) Py_ssize_t name##_at;
    TRACKER_SLOTS(DECLARE_OFFSET)
#undef DECLARE_OFFSET
    /* The current thread's entry value (its threading.Thread, or its ident), for the Python
     * thread state whose unique id is thread_state_id (0: none yet). */
    unsigned long long thread_state_id;
    PyObject *thread_value;
    /* ctx.unwrapped, remembered for the last few release functions (ctx.unwrapped only grows
     * while the hooks are in place; any change of its size empties the cache). Keys are held:
     * an address here is never reused by another object. Py_None: not in ctx.unwrapped. */
    Py_ssize_t unwrap_size;
    int unwrap_next;
    PyObject *unwrap_keys[UNWRAP_CACHE];
    PyObject *unwrap_values[UNWRAP_CACHE];
    /* ctx.counts, remembered per kind: the registry never replaces or removes a row while
     * hooks are in place (clear() zeroes rows in place), so a row found stays the row. */
    int row_next;
    PyObject *row_kinds[ROW_CACHE];
    PyObject *row_values[ROW_CACHE];
    /* Stacks met before, by a hash of their packed key (NULL until the first stack): hashing
     * the key as bytes for ctx.interned cost most of a capture. */
    StackSlot *stacks;
    /* Whether frames of a code object are left out of stacks (see is_ignored). */
    PyObject *ignored_codes[IGNORED_CACHE];
    char ignored[IGNORED_CACHE];
} Hook;

/* -- helpers ---------------------------------------------------------------------------- */

/* Count a release in a kind's counters: released += 1, live -= 1, and the column of its
 * cause += 1. Rows that are not Counters (or too short for column) are left alone: the
 * registry makes every row. */
static void
count_row(PyObject *row, Py_ssize_t column)
{
    if (Counters_Check(row) && column >= FIRST_CAUSE_COLUMN && column < Py_SIZE(row)) {
        long long *values = ((Counters *)row)->values;
        values[COUNT_RELEASED] += 1;
        values[COUNT_LIVE] -= 1;
        values[column] += 1;
    }
}

/* Count the release of entry in counts[kind], if it has counters (a ResultFuture's entry has
 * its kind where a _Handle's has: ENTRY_KIND). */
static int
count_release(PyObject *counts, PyObject *entry, Py_ssize_t column)
{
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) <= ENTRY_KIND)
        return 0;
    PyObject *row = PyDict_GetItemWithError(counts, PyTuple_GET_ITEM(entry, ENTRY_KIND));
    if (row == NULL)
        return PyErr_Occurred() ? -1 : 0;
    count_row(row, column);
    return 0;
}

/* Pop seq from live; the entry (new reference) or NULL with no error if absent. */
static PyObject *
pop_entry(PyObject *live, PyObject *seq)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *entry;
    if (PyDict_Pop(live, seq, &entry) < 0)
        return NULL;
    return entry;
#else
    PyObject *entry = _PyDict_Pop(live, seq, s_missing);
    if (entry == s_missing) {
        Py_DECREF(entry);
        return NULL;
    }
    return entry;
#endif
}

/* The current exception, if it is an Exception, goes to ctx.count_error(where, exc) and is
 * cleared (0); anything else (KeyboardInterrupt, SystemExit) stays set (-1), as in Python. */
static int
report_error(Hook *self, PyObject *where)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL)
        PyException_SetTraceback(value, traceback);
    PyObject *result = PyObject_CallFunctionObjArgs(
        self->count_error, where, value != NULL ? value : Py_None, NULL);
    if (result == NULL)
        PyErr_Clear();
    else
        Py_DECREF(result);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return 0;
}

/* config.<name> as a C long: 0, or -1 with an exception. */
static int
config_long(PyObject *config, PyObject *name, long *value)
{
    PyObject *number = PyObject_GetAttr(config, name);
    if (number == NULL)
        return -1;
    *value = PyLong_AsLong(number);
    Py_DECREF(number);
    return *value == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
load_config(Hook *self, PyObject *config)
{
    long depth_value, sample_value;
    if (config_long(config, s_stack_depth, &depth_value) < 0 ||
        config_long(config, s_stack_sample, &sample_value) < 0)
        return -1;
    PyObject *slow = PyObject_GetAttr(config, s_slow_release);
    if (slow == NULL)
        return -1;
    double slow_value = PyFloat_AsDouble(slow);
    Py_DECREF(slow);
    if (slow_value == -1.0 && PyErr_Occurred())
        return -1;
    PyObject *kinds = PyObject_GetAttr(config, s_kinds);
    if (kinds == NULL)
        return -1;
    if (depth_value > MAX_DEPTH)
        depth_value = MAX_DEPTH;
    Py_INCREF(config);
    Py_XSETREF(self->config, config);
    Py_XSETREF(self->kinds, kinds);
    self->stack_depth = depth_value;
    self->stack_sample = sample_value;
    self->slow_release = slow_value;
    return 0;
}

/* ctx.monotonic(). When that is time.monotonic on Linux, the clock is read here: CPython
 * reads CLOCK_MONOTONIC there (elsewhere it may use another clock, e.g. mach_absolute_time
 * on macOS, which stops during sleep while CLOCK_MONOTONIC does not), and converts the
 * nanoseconds to seconds as _PyTime_AsSecondsDouble does. */
#if defined(__linux__) && defined(CLOCK_MONOTONIC)
#define HAVE_CLOCK 1
#else
#define HAVE_CLOCK 0
#endif

/* The clock read here, as time.monotonic would give it: 1, or 0 if it cannot be (then
 * ctx.monotonic is called). */
static int
clock_seconds(Hook *self, double *seconds)
{
#if HAVE_CLOCK
    struct timespec now;
    if (self->read_clock && clock_gettime(CLOCK_MONOTONIC, &now) == 0) {
        long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
        *seconds = ns % 1000000000LL == 0 ? (double)(ns / 1000000000LL) : (double)ns / 1e9;
        return 1;
    }
#else
    (void)self;
    (void)seconds;
#endif
    return 0;
}

static PyObject *
monotonic_now(Hook *self)
{
    double seconds;
    if (clock_seconds(self, &seconds))
        return PyFloat_FromDouble(seconds);
    return PyObject_CallNoArgs(self->monotonic);
}

/* ctx.monotonic() as a C double: 0, or -1 with an exception. */
static int
monotonic_seconds(Hook *self, double *seconds)
{
    if (clock_seconds(self, seconds))
        return 0;
    PyObject *now = PyObject_CallNoArgs(self->monotonic);
    if (now == NULL)
        return -1;
    *seconds = PyFloat_AsDouble(now);
    Py_DECREF(now);
    return *seconds == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* Whether callable is the builtin time.monotonic (then monotonic_now may read the clock). A
 * replacement, such as a test's fake clock patched into the time module, is always called. */
static int
is_time_monotonic(PyObject *callable)
{
#if HAVE_CLOCK
    if (!PyCFunction_Check(callable))
        return 0;
    PyCFunctionObject *function = (PyCFunctionObject *)callable;
    if (strcmp(function->m_ml->ml_name, "monotonic") != 0 || function->m_self == NULL ||
        !PyModule_Check(function->m_self))
        return 0;
    const char *module = PyModule_GetName(function->m_self);
    if (module == NULL) {
        PyErr_Clear();
        return 0;
    }
    return strcmp(module, "time") == 0;
#else
    (void)callable;
    return 0;
#endif
}

/* -- stack capture (what _core.stacks.capture_stack does) ---------------------------------- */

/* Whether frames of code are left out of stacks (the SDK, wrapt, handletrace's machinery):
 * its file is one of ctx.ignored_files or lies under one of ctx.ignored_dirs. Remembered per
 * code object: comparing the paths cost more than the rest of a capture. */
static int
is_ignored(Hook *self, PyCodeObject *code)
{
    size_t at = ((uintptr_t)code >> 4) & (IGNORED_CACHE - 1);
    if (self->ignored_codes[at] == (PyObject *)code)
        return self->ignored[at];
    PyObject *filename = code->co_filename;
    int match = PySet_Contains(self->ignored_files, filename);
    if (match < 0)
        return -1;
    Py_ssize_t count = PyTuple_GET_SIZE(self->ignored_dirs);
    for (Py_ssize_t i = 0; i < count && !match; i++) {
        Py_ssize_t found = PyUnicode_Tailmatch(filename, PyTuple_GET_ITEM(self->ignored_dirs, i),
                                               0, PY_SSIZE_T_MAX, -1);
        if (found < 0)
            return -1;
        match = found != 0;
    }
    /* Remembered (the code object held) unless that would free the one remembered there:
     * freeing runs finalisers, and the caller is walking the stack. */
    PyObject *old = self->ignored_codes[at];
    if (old == NULL || Py_REFCNT(old) > 1) {
        Py_INCREF(code);
        self->ignored_codes[at] = (PyObject *)code;
        self->ignored[at] = (char)match;
        Py_XDECREF(old);
    }
    return match;
}

#if !HT_INTERNAL_FRAMES
static int
frame_lasti(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetLasti(frame);
#elif PY_VERSION_HEX >= 0x030A0000
    return frame->f_lasti < 0 ? -1 : frame->f_lasti * (int)sizeof(_Py_CODEUNIT);
#else
    return frame->f_lasti;
#endif
}
#endif

/* Walking the Python stack. On CPython 3.11-3.13 the interpreter's own frame records are
 * read through its internal header (as Cython does): a frame object is made for no frame,
 * and making them is most of what capturing a stack of fresh frames costs otherwise. On
 * other versions (and with -DHANDLETRACE_PUBLIC_FRAMES), the public frame-object API.
 * walk_back() gives up the frame it is passed; code objects are borrowed from the frame. */
#if HT_INTERNAL_FRAMES
typedef _PyInterpreterFrame WalkFrame;

static WalkFrame *
walk_complete(WalkFrame *frame)
{
    while (frame != NULL) {
#if PY_VERSION_HEX >= 0x030D0000
        if (frame->owner != FRAME_OWNED_BY_CSTACK && PyCode_Check(frame->f_executable) &&
            !_PyFrame_IsIncomplete(frame))
            return frame;
#elif PY_VERSION_HEX >= 0x030C0000
        if (frame->owner != FRAME_OWNED_BY_CSTACK && !_PyFrame_IsIncomplete(frame))
            return frame;
#else
        if (!_PyFrame_IsIncomplete(frame))
            return frame;
#endif
        frame = frame->previous;
    }
    return NULL;
}

static WalkFrame *
walk_top(void)
{
    PyThreadState *tstate = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x030D0000
    return walk_complete(tstate->current_frame);
#else
    return walk_complete(tstate->cframe->current_frame);
#endif
}

#define walk_hold(frame) ((void)0)
#define walk_release(frame) ((void)0)
#define walk_back(frame) walk_complete((frame)->previous)

static PyCodeObject *
walk_code(WalkFrame *frame)
{
#if PY_VERSION_HEX >= 0x030D0000
    return (PyCodeObject *)frame->f_executable;
#else
    return frame->f_code;
#endif
}

static int
walk_lasti(WalkFrame *frame)
{
    int lasti = _PyInterpreterFrame_LASTI(frame);
    return lasti < 0 ? -1 : lasti * (int)sizeof(_Py_CODEUNIT);
}
#else
typedef PyFrameObject WalkFrame;

static WalkFrame *
walk_top(void)
{
    PyFrameObject *frame = PyEval_GetFrame();
    Py_XINCREF(frame);
    return frame;
}

#define walk_hold(frame) Py_XINCREF(frame)
#define walk_release(frame) Py_XDECREF(frame)

static WalkFrame *
walk_back(WalkFrame *frame)
{
    PyFrameObject *back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    return back;
}

static PyCodeObject *
walk_code(WalkFrame *frame)
{
    PyCodeObject *code = PyFrame_GetCode(frame);
    Py_DECREF(code); /* the frame keeps it */
    return code;
}

#define walk_lasti frame_lasti
#endif

static void
forget_stacks(Hook *self)
{
    StackSlot *stacks = self->stacks;
    self->stacks = NULL;
    if (stacks == NULL)
        return;
    for (int i = 0; i < STACK_CACHE; i++) {
        Py_XDECREF(stacks[i].key);
        Py_XDECREF(stacks[i].traceback);
    }
    PyMem_Free(stacks);
}

static void
remember_stack(Hook *self, StackSlot *slot, Py_uhash_t hash, PyObject *key, PyObject *traceback)
{
    (void)self;
    PyObject *old_key = slot->key, *old_traceback = slot->traceback;
    Py_INCREF(key);
    Py_INCREF(traceback);
    slot->hash = hash;
    slot->key = key;
    slot->traceback = traceback;
    Py_XDECREF(old_key); /* last: freeing a traceback may run anything */
    Py_XDECREF(old_traceback);
}

static PyObject *
capture(Hook *self, WalkFrame *start, long depth)
{
    PyObject *codes[MAX_DEPTH];
    int lastis[MAX_DEPTH];
    Py_ssize_t taken = 0, total = 0;
    PyObject *result = NULL;
    WalkFrame *frame = start;
    walk_hold(frame);
    while (frame != NULL) {
        int ignored = is_ignored(self, walk_code(frame));
        if (ignored < 0)
            goto done;
        if (!ignored)
            break;
        frame = walk_back(frame);
    }
    while (frame != NULL && taken < depth) {
        codes[taken] = (PyObject *)walk_code(frame);
        Py_INCREF(codes[taken]);
        lastis[taken] = walk_lasti(frame);
        taken++;
        frame = walk_back(frame);
    }
    /* Frames beyond depth are not walked (that walk cost more than the capture in a deep
     * service): the total depth is known only when the stack ended (-1: it went on). */
    total = frame == NULL ? taken : -1;
    /* The intern key: the same facts as capture_stack's tuple (total depth, offsets, code
     * object identities), packed in one bytes object: one allocation instead of 2n+1 ints.
     * (The two kinds of key never meet: one process uses one kind of hook at a time.) An
     * interned Traceback holds its code objects, so an address in a key is never reused. */
    char packed[sizeof(Py_ssize_t) + MAX_DEPTH * (sizeof(PyObject *) + sizeof(int))];
    Py_ssize_t size = sizeof(Py_ssize_t) + taken * (sizeof(PyObject *) + sizeof(int));
    char *raw = packed;
    memcpy(raw, &total, sizeof(Py_ssize_t));
    raw += sizeof(Py_ssize_t);
    memcpy(raw, codes, taken * sizeof(PyObject *));
    raw += taken * sizeof(PyObject *);
    memcpy(raw, lastis, taken * sizeof(int));
    /* FNV-1a over the packed words: a few instructions per frame (bytes hash with SipHash). */
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (Py_ssize_t i = 0; i < size / 4; i++) {
        uint32_t word;
        memcpy(&word, packed + 4 * i, 4);
        hash = (hash ^ word) * 0x100000001b3ULL;
    }
    hash ^= hash >> 29;
    if (self->stacks == NULL) {
        self->stacks = PyMem_Calloc(STACK_CACHE, sizeof(StackSlot));
        if (self->stacks == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    StackSlot *slot = &self->stacks[hash & (STACK_CACHE - 1)];
    if (slot->key != NULL && slot->hash == (Py_uhash_t)hash &&
        PyBytes_GET_SIZE(slot->key) == size &&
        memcmp(PyBytes_AS_STRING(slot->key), packed, size) == 0) {
        result = slot->traceback;
        Py_INCREF(result);
        goto done;
    }
    PyObject *key = PyBytes_FromStringAndSize(packed, size);
    if (key == NULL)
        goto done;
    result = PyDict_GetItemWithError(self->interned, key);
    if (result != NULL) {
        Py_INCREF(result);
        remember_stack(self, slot, (Py_uhash_t)hash, key, result);
        Py_DECREF(key);
        goto done;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        goto done;
    }
    PyObject *code_tuple = PyTuple_New(taken);
    PyObject *lasti_tuple = PyTuple_New(taken);
    PyObject *total_obj = PyLong_FromSsize_t(total);
    if (code_tuple == NULL || lasti_tuple == NULL || total_obj == NULL) {
        Py_XDECREF(code_tuple);
        Py_XDECREF(lasti_tuple);
        Py_XDECREF(total_obj);
        Py_DECREF(key);
        goto done;
    }
    for (Py_ssize_t i = 0; i < taken; i++) {
        PyObject *lasti = PyLong_FromLong(lastis[i]);
        if (lasti == NULL) {
            Py_DECREF(code_tuple);
            Py_DECREF(lasti_tuple);
            Py_DECREF(total_obj);
            Py_DECREF(key);
            goto done;
        }
        Py_INCREF(codes[i]);
        PyTuple_SET_ITEM(code_tuple, i, codes[i]);
        PyTuple_SET_ITEM(lasti_tuple, i, lasti);
    }
    result = PyObject_CallFunctionObjArgs(
        self->make_traceback, key, code_tuple, lasti_tuple, total_obj, NULL);
    if (result != NULL && self->stacks != NULL) /* make_traceback may run anything */
        remember_stack(self, &self->stacks[hash & (STACK_CACHE - 1)], (Py_uhash_t)hash, key,
                       result);
    Py_DECREF(code_tuple);
    Py_DECREF(lasti_tuple);
    Py_DECREF(total_obj);
    Py_DECREF(key);
done:
    walk_release(frame);
    for (Py_ssize_t i = 0; i < taken; i++)
        Py_DECREF(codes[i]);
    return result;
}

/* -- what the hooks read per handle ------------------------------------------------------- */

/* The offset of the tracker's attribute name if it is a slot holding an object that plain
 * attribute access reads (handletrace's Tracker has __slots__); -1 otherwise (then it is
 * read with getattr, as for any other tracker object). */
static Py_ssize_t
slot_offset(PyObject *tracker, PyObject *name)
{
    PyTypeObject *type = Py_TYPE(tracker);
    if (type->tp_getattro != PyObject_GenericGetAttr)
        return -1;
    PyObject *descr = _PyType_Lookup(type, name); /* borrowed, no exception */
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type))
        return -1;
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY))
        return -1;
    return member->offset;
}

/* tracker.<name> (new reference), from its slot when it has one. */
static PyObject *
tracker_get(Hook *self, Py_ssize_t offset, PyObject *name)
{
    if (offset < 0)
        return PyObject_GetAttr(self->tracker, name);
    PyObject *value = *(PyObject **)((char *)self->tracker + offset);
    if (value == NULL) {
        PyErr_SetObject(PyExc_AttributeError, name);
        return NULL;
    }
    Py_INCREF(value);
    return value;
}

/* The thread of an entry (new reference): the current thread's threading.Thread, or its
 * ident if it has none (a native SDK thread). Worked out once per Python thread state (a
 * thread state's id is never reused, an ident is); a thread that registers in threading
 * only after it made a handle keeps its ident until its thread state ends. */
static PyObject *
current_thread_value(Hook *self)
{
    unsigned long long state_id = (unsigned long long)PyThreadState_Get()->id;
    if (state_id != 0 && state_id == self->thread_state_id && self->thread_value != NULL) {
        Py_INCREF(self->thread_value);
        return self->thread_value;
    }
    PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    if (ident == NULL)
        return NULL;
    PyObject *thread = PyDict_GetItemWithError(self->active_threads, ident);
    if (thread == NULL && PyErr_Occurred()) {
        Py_DECREF(ident);
        return NULL;
    }
    PyObject *value = thread != NULL ? thread : ident;
    Py_INCREF(value);
    Py_DECREF(ident);
    Py_INCREF(value);
    Py_XSETREF(self->thread_value, value);
    self->thread_state_id = state_id;
    return value;
}

static void
unwrap_forget(Hook *self)
{
    for (int i = 0; i < UNWRAP_CACHE; i++) {
        Py_CLEAR(self->unwrap_keys[i]);
        Py_CLEAR(self->unwrap_values[i]);
    }
    self->unwrap_next = 0;
}

/* ctx.unwrapped[id(release_fn)] as a new reference: an (original, kind) tuple, or Py_None
 * if it has none; NULL with an exception. */
static PyObject *
unwrapped_entry(Hook *self, PyObject *release_fn)
{
    Py_ssize_t size = PyDict_GET_SIZE(self->unwrapped);
    if (size != self->unwrap_size) {
        unwrap_forget(self);
        self->unwrap_size = size;
    }
    for (int i = 0; i < UNWRAP_CACHE; i++) {
        if (self->unwrap_keys[i] == release_fn) {
            Py_INCREF(self->unwrap_values[i]);
            return self->unwrap_values[i];
        }
    }
    PyObject *key = PyLong_FromVoidPtr(release_fn);
    if (key == NULL)
        return NULL;
    PyObject *entry = PyDict_GetItemWithError(self->unwrapped, key);
    Py_DECREF(key);
    if (entry == NULL && PyErr_Occurred())
        return NULL;
    if (entry == NULL || !PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 2)
        entry = Py_None;
    /* New references first: what the replaced slot held may run anything when freed. */
    Py_INCREF(entry);
    Py_INCREF(entry);
    Py_INCREF(release_fn);
    int slot = self->unwrap_next;
    self->unwrap_next = (slot + 1) % UNWRAP_CACHE;
    PyObject *old_key = self->unwrap_keys[slot], *old_value = self->unwrap_values[slot];
    self->unwrap_keys[slot] = release_fn;
    self->unwrap_values[slot] = entry;
    Py_XDECREF(old_key);
    Py_XDECREF(old_value);
    return entry;
}

/* ctx.counts[kind] (new reference), or NULL: with an exception, or without one if kind has
 * no counters yet. */
static PyObject *
kind_counters(Hook *self, PyObject *kind)
{
    for (int i = 0; i < ROW_CACHE; i++) {
        if (self->row_kinds[i] == kind) {
            Py_INCREF(self->row_values[i]);
            return self->row_values[i];
        }
    }
    PyObject *row = PyDict_GetItemWithError(self->counts, kind);
    if (row == NULL)
        return NULL;
    Py_INCREF(row);
    if (!Counters_Check(row))
        return row; /* not remembered: the caller says what is wrong */
    Py_INCREF(row);
    Py_INCREF(kind);
    int slot = self->row_next;
    self->row_next = (slot + 1) % ROW_CACHE;
    PyObject *old_kind = self->row_kinds[slot], *old_row = self->row_values[slot];
    self->row_kinds[slot] = kind;
    self->row_values[slot] = row;
    Py_XDECREF(old_kind);
    Py_XDECREF(old_row);
    return row;
}

/* -- the __init__ hook -------------------------------------------------------------------- */

/* Record the new _Handle; 0 on success or when it is not tracked, -1 with an exception. */
static int
record_handle(Hook *self, PyObject *handle_obj, PyObject *handle, PyObject *release_fn,
              PyObject *unwrapped)
{
    PyObject *kind = NULL, *seq = NULL, *code = NULL, *thread = NULL, *traceback = NULL,
             *now = NULL, *record = NULL, *row = NULL, *config = NULL;
    WalkFrame *frame = NULL;
    int rc = -1;

    if (unwrapped != Py_None) {
        kind = PyTuple_GET_ITEM(unwrapped, 1);
        Py_INCREF(kind);
    }
    else {
        kind = PyObject_CallOneArg(self->kind_for, release_fn);
        if (kind == NULL)
            goto done;
    }
    config = tracker_get(self, self->config_at, s_config);
    if (config == NULL)
        goto done;
    if (config != self->config && load_config(self, config) < 0)
        goto done;
    if (self->kinds != Py_None) {
        int contained = PySequence_Contains(self->kinds, kind);
        if (contained < 0)
            goto done;
        if (!contained) {
            rc = 0;
            goto done;
        }
    }
    seq = Py_TYPE(self->seq_counter)->tp_iternext(self->seq_counter);
    if (seq == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the sequence counter is exhausted");
        goto done;
    }
    frame = walk_top(); /* the SDK code calling _Handle() */
    code = frame != NULL ? (PyObject *)walk_code(frame) : Py_None;
    Py_INCREF(code);
    thread = current_thread_value(self);
    if (thread == NULL)
        goto done;
    long sample = self->stack_sample, depth = self->stack_depth;
    int take_stack = sample && depth && frame != NULL;
    if (take_stack && sample != 1) {
        long long number = PyLong_AsLongLong(seq);
        if (number == -1 && PyErr_Occurred())
            goto done;
        take_stack = number % sample == 0;
    }
    if (take_stack) {
        traceback = capture(self, frame, depth);
        if (traceback == NULL)
            goto done;
    }
    else {
        traceback = self->empty_traceback;
        Py_INCREF(traceback);
    }
    now = monotonic_now(self);
    if (now == NULL)
        goto done;
    record = PyTuple_New(ENTRY_LEN);
    if (record == NULL)
        goto done;
    PyObject *fields[ENTRY_LEN];
    fields[ENTRY_SEQ] = seq;
    fields[ENTRY_KIND] = kind;
    fields[ENTRY_HANDLE] = handle;
    fields[ENTRY_CODE] = code;
    fields[ENTRY_THREAD] = thread;
    fields[ENTRY_MONOTONIC] = now;
    fields[ENTRY_TRACEBACK] = traceback;
    for (int i = 0; i < ENTRY_LEN; i++) {
        Py_INCREF(fields[i]);
        PyTuple_SET_ITEM(record, i, fields[i]);
    }
    row = kind_counters(self, kind);
    if (row == NULL) {
        if (PyErr_Occurred())
            goto done;
        row = PyObject_CallOneArg(self->new_kind, kind); /* Python: may run anything */
        if (row == NULL)
            goto done;
    }
    if (!Counters_Check(row) || Py_SIZE(row) < FIRST_CAUSE_COLUMN) {
        PyErr_Format(PyExc_TypeError, "handle counters must be Counters of %d or more",
                     FIRST_CAUSE_COLUMN);
        goto done;
    }
    /* Mutations only from here: no GC-tracked allocation, no Python code. */
    HandleIndex *index = (HandleIndex *)self->handle_index;
    if (index_reserve(index) < 0 || PyDict_SetItem(self->live, seq, record) < 0)
        goto done;
    index_put(index, handle_obj, seq);
    long long *values = ((Counters *)row)->values;
    values[COUNT_CREATED] += 1;
    values[COUNT_LIVE] += 1;
    if (values[COUNT_LIVE] > values[COUNT_PEAK])
        values[COUNT_PEAK] = values[COUNT_LIVE];
    rc = 0;
done:
    Py_XDECREF(kind);
    Py_XDECREF(config);
    Py_XDECREF(seq);
    Py_XDECREF(code);
    Py_XDECREF(thread);
    Py_XDECREF(traceback);
    Py_XDECREF(now);
    Py_XDECREF(record);
    Py_XDECREF(row);
    walk_release(frame);
    return rc;
}

/* The index in a vectorcall's args of the parameter at position or passed as keyword name
 * (-1: absent). */
static Py_ssize_t
argument_index(Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t position, const char *name)
{
    if (position < nargs)
        return position;
    Py_ssize_t count = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *keyword = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_Check(keyword) && PyUnicode_CompareWithASCIIString(keyword, name) == 0)
            return nargs + i;
    }
    return -1;
}

/* Whether the tracker is installed: 1, 0, or -1 with an exception. */
static int
is_installed(Hook *self)
{
    if (self->installed_at >= 0) {
        PyObject *value = *(PyObject **)((char *)self->tracker + self->installed_at);
        if (value == Py_True)
            return 1;
        if (value == Py_False)
            return 0;
    }
    PyObject *installed = tracker_get(self, self->installed_at, s_installed);
    if (installed == NULL)
        return -1;
    int on = PyObject_IsTrue(installed);
    Py_DECREF(installed);
    return on;
}

static PyObject *
init_call(Hook *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    /* _Handle.__init__(self, handle, test_fn, release_fn): the SDK passes them by position. */
    Py_ssize_t handle_at = argument_index(nargs, kwnames, 1, "handle");
    Py_ssize_t release_at = argument_index(nargs, kwnames, 3, "release_fn");
    if (nargs < 1 || handle_at < 0 || release_at < 0) /* the original says what is wrong */
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    PyObject *handle_obj = args[0], *handle = args[handle_at], *release_fn = args[release_at];

    /* The _Handle keeps the real release function, not handletrace's wrapper of it. */
    PyObject *entry = unwrapped_entry(self, release_fn);
    if (entry == NULL)
        return NULL;
    PyObject *result;
    if (entry != Py_None) {
        Py_ssize_t total = nargs + (kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0);
        PyObject *small[8];
        PyObject **copy = total <= 8 ? small : PyMem_Malloc(total * sizeof(PyObject *));
        if (copy == NULL) {
            Py_DECREF(entry);
            return PyErr_NoMemory();
        }
        memcpy(copy, args, total * sizeof(PyObject *));
        copy[release_at] = PyTuple_GET_ITEM(entry, 0);
        result = PyObject_Vectorcall(self->original, copy, nargs, kwnames);
        if (copy != small)
            PyMem_Free(copy);
    }
    else {
        result = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    if (result == NULL) {
        Py_DECREF(entry);
        return NULL; /* the SDK's own exception */
    }
    Py_DECREF(result);

    int on = is_installed(self);
    if (on > 0 && record_handle(self, handle_obj, handle, release_fn, entry) < 0)
        on = -1;
    Py_DECREF(entry);
    if (on < 0 && report_error(self, s_where_init) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- the __del__ hook --------------------------------------------------------------------- */

/* What the __del__ hook knows of a release in flight (see begin_release). */
typedef struct {
    PyObject *seq; /* NULL: not tracked (or its start failed) */
    Py_ssize_t column;
    double started;
} Release;

/* A tracked _Handle's release starts: ctx.releasing[seq] = (started, thread, column). The
 * record stays live (and counted) until end_release. 0, or -1 with an exception (then
 * nothing changed and release->seq is NULL). */
static int
begin_release(Hook *self, PyObject *handle_obj, Release *release)
{
    HandleIndex *index = (HandleIndex *)self->handle_index;
    IndexSlot *slot = &index->slots[index_find(index, handle_obj)];
    if (slot->key == NULL)
        return 0; /* not tracked */
    PyObject *seq = slot->value;
    Py_INCREF(seq);
    Py_ssize_t column = self->del_column;
    PyObject *gc_thread = tracker_get(self, self->gc_thread_at, s_gc_thread);
    if (gc_thread == NULL)
        goto fail;
    if (gc_thread != Py_None) {
        unsigned long ident = PyLong_AsUnsignedLong(gc_thread);
        if (ident == (unsigned long)-1 && PyErr_Occurred()) {
            Py_DECREF(gc_thread);
            goto fail;
        }
        if (ident == PyThread_get_thread_ident())
            column = self->gc_column;
    }
    Py_DECREF(gc_thread);
    PyObject *thread = current_thread_value(self);
    if (thread == NULL)
        goto fail;
    double started;
    if (monotonic_seconds(self, &started) < 0) {
        Py_DECREF(thread);
        goto fail;
    }
    int rc = releasing_put((Releasing *)self->releasing, seq, started, thread, column);
    Py_DECREF(thread);
    if (rc < 0)
        goto fail;
    release->seq = seq;
    release->column = column;
    release->started = started;
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* The release returned: out of ctx.releasing, out of the index and the live table, counted;
 * the release listener told; a slow one handed to ctx.on_slow_release with the frame that
 * dropped the last reference. 0, or -1 with an exception. */
static int
end_release(Hook *self, PyObject *handle_obj, Release *release)
{
    double ended;
    if (monotonic_seconds(self, &ended) < 0)
        return -1;
    double duration = ended - release->started;
    Marked marked;
    if (releasing_take((Releasing *)self->releasing, release->seq, &marked)) {
        Py_DECREF(marked.seq);
        Py_DECREF(marked.thread);
    }
    HandleIndex *index = (HandleIndex *)self->handle_index;
    IndexSlot *slot = &index->slots[index_find(index, handle_obj)];
    if (slot->key != NULL && slot->value == release->seq) {
        PyObject *value = index_pop(index, handle_obj);
        Py_XDECREF(value);
    }
    PyObject *entry = pop_entry(self->live, release->seq);
    if (entry == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int rc = 0;
    if (PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) > ENTRY_KIND) {
        PyObject *kind = PyTuple_GET_ITEM(entry, ENTRY_KIND);
        PyObject *row = kind_counters(self, kind);
        if (row != NULL) {
            count_row(row, release->column);
            Py_DECREF(row);
        }
        else if (PyErr_Occurred())
            rc = -1;
        PyObject *listener =
            rc < 0 ? NULL : tracker_get(self, self->release_listener_at, s_release_listener);
        if (listener == NULL)
            rc = -1;
        else {
            if (listener != Py_None) {
                PyObject *result = PyObject_CallFunction(listener, "Od", kind, duration);
                if (result == NULL)
                    rc = -1;
                Py_XDECREF(result);
            }
            Py_DECREF(listener);
        }
        PyObject *config =
            rc < 0 ? NULL : tracker_get(self, self->config_at, s_config);
        if (config == NULL)
            rc = -1;
        else {
            /* Read again only when tracker.config changed (Config is immutable). */
            if (config != self->config && load_config(self, config) < 0)
                rc = -1;
            Py_DECREF(config);
        }
        if (rc == 0 && duration >= self->slow_release) {
            PyObject *frame = (PyObject *)PyEval_GetFrame(); /* borrowed; NULL: none */
            PyObject *result = PyObject_CallFunction(self->on_slow_release, "OdnO", entry,
                                                     duration, release->column,
                                                     frame != NULL ? frame : Py_None);
            if (result == NULL)
                rc = -1;
            Py_XDECREF(result);
        }
    }
    Py_DECREF(entry);
    return rc;
}

static PyObject *
del_call(Hook *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Release release = {NULL, 0, 0.0};
    if (nargs >= 1 && kwnames == NULL && begin_release(self, args[0], &release) < 0 &&
        report_error(self, s_where_del) < 0)
        return NULL;
    PyObject *result = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    if (release.seq == NULL)
        return result;
    /* Whatever the release did (an exception stays set and is restored), it is over. */
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (end_release(self, args[0], &release) < 0 && report_error(self, s_where_del) < 0) {
        /* A BaseException from handletrace's own code (KeyboardInterrupt): it wins only if
         * the release itself succeeded. */
        if (result != NULL) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            Py_DECREF(result);
            Py_DECREF(release.seq);
            return NULL;
        }
        PyErr_Clear();
    }
    Py_DECREF(release.seq);
    PyErr_Restore(type, value, traceback);
    return result;
}

/* -- the hook type ------------------------------------------------------------------------ */

#define HOOK_FIELDS(X)                                                                     \
    X(original) CONTEXT_OBJECTS(X) X(config) X(kinds) X(thread_value) X(dict)

static int
hook_traverse(Hook *self, visitproc visit, void *arg)
{
#define VISIT(name) Py_VISIT(self->name);
    HOOK_FIELDS(VISIT)
#undef VISIT
    for (int i = 0; i < UNWRAP_CACHE; i++) {
        Py_VISIT(self->unwrap_keys[i]);
        Py_VISIT(self->unwrap_values[i]);
    }
    for (int i = 0; i < ROW_CACHE; i++) {
        Py_VISIT(self->row_kinds[i]);
        Py_VISIT(self->row_values[i]);
    }
    if (self->stacks != NULL) {
        for (int i = 0; i < STACK_CACHE; i++)
            Py_VISIT(self->stacks[i].traceback);
    }
    for (int i = 0; i < IGNORED_CACHE; i++)
        Py_VISIT(self->ignored_codes[i]);
    return 0;
}

static int
hook_clear(Hook *self)
{
#define CLEAR(name) Py_CLEAR(self->name);
    HOOK_FIELDS(CLEAR)
#undef CLEAR
    unwrap_forget(self);
    for (int i = 0; i < ROW_CACHE; i++) {
        Py_CLEAR(self->row_kinds[i]);
        Py_CLEAR(self->row_values[i]);
    }
    forget_stacks(self);
    for (int i = 0; i < IGNORED_CACHE; i++)
        Py_CLEAR(self->ignored_codes[i]);
    return 0;
}

static void
hook_dealloc(Hook *self)
{
    PyObject_GC_UnTrack(self);
    hook_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
hook_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *
hook_repr(Hook *self)
{
    return PyUnicode_FromFormat("<handletrace C hook for %R>", self->original);
}

static PyGetSetDef hook_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL},
};

static PyTypeObject HookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "handletrace._instrument._speedups.Hook",
    .tp_basicsize = sizeof(Hook),
    .tp_dealloc = (destructor)hook_dealloc,
    .tp_vectorcall_offset = offsetof(Hook, vectorcall),
    .tp_repr = (reprfunc)hook_repr,
    .tp_call = PyVectorcall_Call,
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A _Handle method replaced by handletrace (see hooks.python_hooks).",
    .tp_traverse = (traverseproc)hook_traverse,
    .tp_clear = (inquiry)hook_clear,
    .tp_getset = hook_getset,
    .tp_descr_get = hook_descr_get,
    .tp_dictoffset = offsetof(Hook, dict),
};

static int
take(PyObject *ctx, const char *name, PyObject **slot)
{
    *slot = PyObject_GetAttrString(ctx, name);
    return *slot == NULL ? -1 : 0;
}

static int
take_index(PyObject *ctx, const char *name, Py_ssize_t *index)
{
    PyObject *value = PyObject_GetAttrString(ctx, name);
    if (value == NULL)
        return -1;
    *index = PyNumber_AsSsize_t(value, PyExc_OverflowError);
    Py_DECREF(value);
    return *index == -1 && PyErr_Occurred() ? -1 : 0;
}

static Hook *
new_hook(PyObject *original, PyObject *ctx, int is_init)
{
    Hook *self = PyObject_GC_New(Hook, &HookType);
    if (self == NULL)
        return NULL;
    self->vectorcall = (vectorcallfunc)(is_init ? init_call : del_call);
    self->is_init = is_init;
#define NULLIFY(name) self->name = NULL;
    HOOK_FIELDS(NULLIFY)
#undef NULLIFY
    self->stack_depth = 0;
    self->stack_sample = 0;
    self->read_clock = 0;
    self->thread_state_id = 0;
    self->unwrap_size = -1;
    self->unwrap_next = 0;
    for (int i = 0; i < UNWRAP_CACHE; i++) {
        self->unwrap_keys[i] = NULL;
        self->unwrap_values[i] = NULL;
    }
    self->row_next = 0;
    self->stacks = NULL;
    for (int i = 0; i < IGNORED_CACHE; i++) {
        self->ignored_codes[i] = NULL;
        self->ignored[i] = 0;
    }
    for (int i = 0; i < ROW_CACHE; i++) {
        self->row_kinds[i] = NULL;
        self->row_values[i] = NULL;
    }
    Py_INCREF(original);
    self->original = original;
    PyObject_GC_Track(self);
#define TAKE_OBJECT(name)                                                                  \
    if (take(ctx, #name, &self->name) < 0)                                                 \
        goto fail;
    CONTEXT_OBJECTS(TAKE_OBJECT)
#undef TAKE_OBJECT
#define TAKE_COLUMN(name)                                                                  \
    if (take_index(ctx, #name, &self->name) < 0)                                           \
        goto fail;
    CONTEXT_COLUMNS(TAKE_COLUMN)
#undef TAKE_COLUMN
    if (!PyDict_CheckExact(self->live) || !PyDict_CheckExact(self->counts) ||
        !PyDict_CheckExact(self->unwrapped) || !PyDict_CheckExact(self->interned) ||
        !PyDict_CheckExact(self->active_threads) || !Releasing_Check(self->releasing) ||
        !PyTuple_CheckExact(self->ignored_dirs) ||
        !PyAnySet_Check(self->ignored_files) || !HandleIndex_Check(self->handle_index) ||
        !PyIter_Check(self->seq_counter)) {
        PyErr_SetString(PyExc_TypeError,
                        "make_hooks: ctx containers must be dicts, ignored_dirs a tuple of str, "
                        "ignored_files a frozenset, handle_index a HandleIndex, releasing a "
                        "Releasing and seq_counter an iterator");
        goto fail;
    }
    if (!PyCallable_Check(self->monotonic) || !PyCallable_Check(self->on_slow_release)) {
        PyErr_SetString(PyExc_TypeError,
                        "make_hooks: ctx.monotonic and ctx.on_slow_release must be callable");
        goto fail;
    }
    if (self->del_column < FIRST_CAUSE_COLUMN || self->gc_column < FIRST_CAUSE_COLUMN) {
        PyErr_Format(PyExc_ValueError, "make_hooks: cause columns come after the first %d",
                     FIRST_CAUSE_COLUMN);
        goto fail;
    }
    self->read_clock = is_time_monotonic(self->monotonic);
#define FIND_SLOT(name) self->name##_at = slot_offset(self->tracker, s_##name);
    TRACKER_SLOTS(FIND_SLOT)
#undef FIND_SLOT
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->ignored_dirs); i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(self->ignored_dirs, i))) {
            PyErr_SetString(PyExc_TypeError, "make_hooks: ignored_dirs must be str");
            goto fail;
        }
    }
    return self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* -- module functions --------------------------------------------------------------------- */

static PyObject *
make_hooks(PyObject *module, PyObject *args)
{
    PyObject *original_init, *original_del, *ctx;
    if (!PyArg_ParseTuple(args, "OOO:make_hooks", &original_init, &original_del, &ctx))
        return NULL;
    Hook *init_hook = new_hook(original_init, ctx, 1);
    if (init_hook == NULL)
        return NULL;
    Hook *del_hook = new_hook(original_del, ctx, 0);
    if (del_hook == NULL) {
        Py_DECREF(init_hook);
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, init_hook, del_hook);
    Py_DECREF(init_hook);
    Py_DECREF(del_hook);
    return pair;
}

static PyObject *
pop_record(PyObject *module, PyObject *args)
{
    PyObject *live, *counts, *seq;
    Py_ssize_t column;
    if (!PyArg_ParseTuple(args, "O!O!On:pop_record", &PyDict_Type, &live, &PyDict_Type,
                          &counts, &seq, &column))
        return NULL;
    if (column < FIRST_CAUSE_COLUMN) {
        PyErr_Format(PyExc_ValueError, "pop_record: cause columns come after the first %d",
                     FIRST_CAUSE_COLUMN);
        return NULL;
    }
    PyObject *entry = pop_entry(live, seq);
    if (entry == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    if (count_release(counts, entry, column) < 0) {
        Py_DECREF(entry);
        return NULL;
    }
    return entry;
}

/* Where the hooks would read each of TRACKER_SLOTS in tracker: its offset, -1 if it is not a
 * slot (then it is read with getattr, slower). */
static PyObject *
tracker_slot_offsets(PyObject *module, PyObject *tracker)
{
    Py_ssize_t offsets[] = {
#define OFFSET(name) slot_offset(tracker, s_##name),
        TRACKER_SLOTS(OFFSET)
#undef OFFSET
    };
    PyObject *result = PyTuple_New(Py_ARRAY_LENGTH(offsets));
    if (result == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < (Py_ssize_t)Py_ARRAY_LENGTH(offsets); i++) {
        PyObject *offset = PyLong_FromSsize_t(offsets[i]);
        if (offset == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyTuple_SET_ITEM(result, i, offset);
    }
    return result;
}

static PyMethodDef module_methods[] = {
    {"make_hooks", make_hooks, METH_VARARGS,
     "make_hooks(original_init, original_del, ctx) -> (init_hook, del_hook)"},
    {"pop_record", pop_record, METH_VARARGS,
     "pop_record(live, counts, seq, column) -> the popped entry or None"},
    {"tracker_slot_offsets", tracker_slot_offsets, METH_O,
     "tracker_slot_offsets(tracker) -> where the hooks read each of TRACKER_SLOTS in it "
     "(-1: not a slot, read as an attribute)"},
    {NULL, NULL, 0, NULL},
};

/* The contract's lists as module constants (tuples of str), for the tests to compare. */
#define AS_TEXT(name, text) text,
static const char *const entry_names[] = {ENTRY_FIELDS(AS_TEXT)};
static const char *const counter_names[] = {COUNTER_FIELDS(AS_TEXT)};
#undef AS_TEXT
#define AS_TEXT(name) #name,
static const char *const context_names[] = {CONTEXT_OBJECTS(AS_TEXT) CONTEXT_COLUMNS(AS_TEXT)};
static const char *const slot_names[] = {TRACKER_SLOTS(AS_TEXT)};
static const char *const config_names[] = {CONFIG_FIELDS(AS_TEXT)};
#undef AS_TEXT

static int
add_names(PyObject *module, const char *attribute, const char *const *names, Py_ssize_t count)
{
    PyObject *tuple = PyTuple_New(count);
    if (tuple == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        if (name == NULL) {
            Py_DECREF(tuple);
            return -1;
        }
        PyTuple_SET_ITEM(tuple, i, name);
    }
    if (PyModule_AddObject(module, attribute, tuple) < 0) {
        Py_DECREF(tuple);
        return -1;
    }
    return 0;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "handletrace._instrument._speedups",
    .m_doc = "The per-handle hot path of handletrace in C (optional; see _instrument/hooks.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
#define INTERN(var, text)                                                                  \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                  \
        return NULL;
#define INTERN_NAME(name) INTERN(s_##name, #name)
    TRACKER_SLOTS(INTERN_NAME)
    CONFIG_FIELDS(INTERN_NAME)
#undef INTERN_NAME
    INTERN(s_where_init, "_Handle.__init__")
    INTERN(s_where_del, "_Handle.__del__")
#undef INTERN
    if (s_missing == NULL && (s_missing = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type)) == NULL)
        return NULL;
    if (PyType_Ready(&HookType) < 0 || PyType_Ready(&CountersType) < 0 ||
        PyType_Ready(&HandleIndexType) < 0 || PyType_Ready(&ReleasingType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&CountersType);
    if (PyModule_AddObject(module, "Counters", (PyObject *)&CountersType) < 0) {
        Py_DECREF(&CountersType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&HandleIndexType);
    if (PyModule_AddObject(module, "HandleIndex", (PyObject *)&HandleIndexType) < 0) {
        Py_DECREF(&HandleIndexType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&ReleasingType);
    if (PyModule_AddObject(module, "Releasing", (PyObject *)&ReleasingType) < 0) {
        Py_DECREF(&ReleasingType);
        Py_DECREF(module);
        return NULL;
    }
#define ADD_NAMES(attribute, names)                                                        \
    add_names(module, attribute, names, Py_ARRAY_LENGTH(names)) < 0
    if (ADD_NAMES("ENTRY_FIELDS", entry_names) || ADD_NAMES("COUNTER_FIELDS", counter_names) ||
        ADD_NAMES("CONTEXT_FIELDS", context_names) || ADD_NAMES("TRACKER_SLOTS", slot_names) ||
        ADD_NAMES("CONFIG_FIELDS", config_names)) {
        Py_DECREF(module);
        return NULL;
    }
#undef ADD_NAMES
    return module;
}

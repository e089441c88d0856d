/* Binance `depthUpdate` reads decoded in C into compact level buffers: no Python object per level.
 *
 * Why: a read of ~256 depth frames of ~2.4 levels each cost ~5 us/frame in msgspec plus the sink's
 * nested-list -> Arrow conversion; both build a list and two str objects per level that only feed Arrow.
 *
 * `decode(frames)` parses a whole read (list of str/bytes frames) strictly: every frame must be a
 * combined-stream `{"stream": "...", "data": {...}}` or raw `{...}` depthUpdate whose data members are
 * exactly among e, E, T, s, U, u, pu, b, a (each at most once; e, E, s, U, u, b, a required), ids are
 * JSON integers that fit int64, strings are ASCII without escapes or control characters, and levels are
 * `[price, qty]` string pairs. Anything else anywhere returns None: the caller then takes the existing
 * per-frame path, which classifies and counts every odd frame. A valid read returns
 *   (symbols, E, U, u, pu, block)
 * with per-frame lists (pu None when absent) and `block` = (px_data, px_off, qty_data, qty_off, starts,
 * nbids): the texts of all levels concatenated per column with int32 offsets (L + 1), per frame the first
 * level (int32, n + 1) and the number of bids (int32, n); a frame's levels are its bids then its asks.
 *
 * The blocks are read back by `cryptoflow/_level_block.c` (`gather`, `gather_groups`): the delta table's
 * Arrow build lives in the core, the decoder here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct { const char *p, *end; } Cur;
typedef struct { const char *s; Py_ssize_t n; } Span;
typedef struct { Span *v; Py_ssize_t n, cap; } Spans;

static int spans_push(Spans *a, const char *s, Py_ssize_t n) {
    if (a->n == a->cap) {
        Py_ssize_t cap = a->cap ? 2 * a->cap : 1024;
        Span *v = PyMem_Realloc(a->v, (size_t)cap * sizeof(Span));
        if (!v) return -1;
        a->v = v, a->cap = cap;
    }
    a->v[a->n].s = s, a->v[a->n].n = n, a->n++;
    return 0;
}

static inline void ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static inline int lit(Cur *c, char ch) {
    ws(c);
    if (c->p < c->end && *c->p == ch) { c->p++; return 1; }
    return 0;
}

/* A JSON string without escapes, control or non-ASCII bytes: anything else is "not handled". */
static int str(Cur *c, const char **s, Py_ssize_t *n) {
    ws(c);
    if (c->p >= c->end || *c->p != '"') return 0;
    const char *q = ++c->p;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') { *s = q, *n = c->p - q, c->p++; return 1; }
        if (ch == '\\' || ch < 0x20 || ch >= 0x80) return 0;
        c->p++;
    }
    return 0;
}

/* A JSON integer (no fraction, no exponent, no leading zero) that fits int64. */
static int i64(Cur *c, long long *out) {
    ws(c);
    int neg = 0;
    if (c->p < c->end && *c->p == '-') neg = 1, c->p++;
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
    if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9') return 0;
    unsigned long long v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (v > (9223372036854775808ULL - d) / 10) return 0;
        v = v * 10 + d, c->p++;
    }
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E')) return 0;
    if (!neg && v > 9223372036854775807ULL) return 0;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 1;
}

/* `[[px, qty], ...]`: spans appended to px/qty. -1 = out of memory, 0 = not handled, 1 = ok. */
static int levels(Cur *c, Spans *px, Spans *qty) {
    if (!lit(c, '[')) return 0;
    if (lit(c, ']')) return 1;
    do {
        const char *s; Py_ssize_t n;
        if (!lit(c, '[') || !str(c, &s, &n)) return 0;
        if (spans_push(px, s, n) < 0) return -1;
        if (!lit(c, ',') || !str(c, &s, &n)) return 0;
        if (spans_push(qty, s, n) < 0) return -1;
        if (!lit(c, ']')) return 0;
    } while (lit(c, ','));
    return lit(c, ']') ? 1 : 0;
}

typedef struct { long long E, U, u, pu; int has_pu; const char *sym; Py_ssize_t sym_n; } Frame;

enum { F_e = 1, F_E = 2, F_T = 4, F_s = 8, F_U = 16, F_u = 32, F_pu = 64, F_b = 128, F_a = 256 };
#define F_REQUIRED (F_e | F_E | F_s | F_U | F_u | F_b | F_a)

#define KEY(k, lit_) ((k##_n) == (Py_ssize_t)(sizeof(lit_) - 1) && memcmp(k, lit_, sizeof(lit_) - 1) == 0)

/* The members of a depthUpdate object whose `{` is consumed; `key` is its first key if already read.
 * Bids go to px/qty, asks to the scratch spans (appended after the bids by the caller). */
static int data_members(Cur *c, const char *key, Py_ssize_t key_n, Frame *f, Spans *px, Spans *qty,
                        Spans *apx, Spans *aqty) {
    unsigned seen = 0;
    for (;;) {
        if (!key && !str(c, &key, &key_n)) return 0;
        if (!lit(c, ':')) return 0;
        unsigned bit;
        int r = 1;
        long long tmp;
        if (KEY(key, "e")) {
            const char *s; Py_ssize_t n;
            bit = F_e, r = str(c, &s, &n) && n == 11 && memcmp(s, "depthUpdate", 11) == 0;
        } else if (KEY(key, "E")) bit = F_E, r = i64(c, &f->E);
        else if (KEY(key, "T")) bit = F_T, r = i64(c, &tmp);
        else if (KEY(key, "s")) bit = F_s, r = str(c, &f->sym, &f->sym_n);
        else if (KEY(key, "U")) bit = F_U, r = i64(c, &f->U);
        else if (KEY(key, "u")) bit = F_u, r = i64(c, &f->u);
        else if (KEY(key, "pu")) bit = F_pu, r = i64(c, &f->pu);
        else if (KEY(key, "b")) bit = F_b, r = levels(c, px, qty);
        else if (KEY(key, "a")) bit = F_a, r = levels(c, apx, aqty);
        else return 0;
        if (r <= 0 || (seen & bit)) return r < 0 ? -1 : 0;
        seen |= bit;
        key = NULL;
        if (lit(c, '}')) break;
        if (!lit(c, ',')) return 0;
    }
    f->has_pu = (seen & F_pu) != 0;
    return (seen & F_REQUIRED) == F_REQUIRED;
}

static int frame(Cur *c, Frame *f, Spans *px, Spans *qty, Spans *apx, Spans *aqty) {
    const char *key; Py_ssize_t key_n;
    if (!lit(c, '{') || !str(c, &key, &key_n)) return 0;
    if (KEY(key, "stream") || KEY(key, "data")) {  /* combined stream: exactly "stream" and "data" */
        int have_stream = 0, have_data = 0;
        for (;;) {
            if (!lit(c, ':')) return 0;
            if (KEY(key, "stream") && !have_stream) {
                const char *s; Py_ssize_t n;
                if (!str(c, &s, &n)) return 0;
                have_stream = 1;
            } else if (KEY(key, "data") && !have_data) {
                if (!lit(c, '{')) return 0;
                int r = data_members(c, NULL, 0, f, px, qty, apx, aqty);
                if (r <= 0) return r;
                have_data = 1;
            } else return 0;
            if (lit(c, '}')) break;
            if (!lit(c, ',') || !str(c, &key, &key_n)) return 0;
        }
        if (!have_stream || !have_data) return 0;
    } else {
        int r = data_members(c, key, key_n, f, px, qty, apx, aqty);
        if (r <= 0) return r;
    }
    ws(c);
    return c->p == c->end;
}

static int frame_text(PyObject *o, Cur *c) {
    if (PyUnicode_CheckExact(o)) {
        if (!PyUnicode_IS_ASCII(o)) return 0;
        c->p = (const char *)PyUnicode_DATA(o), c->end = c->p + PyUnicode_GET_LENGTH(o);
        return 1;
    }
    if (PyBytes_CheckExact(o)) {
        c->p = PyBytes_AS_STRING(o), c->end = c->p + PyBytes_GET_SIZE(o);
        return 1;
    }
    return 0;
}

/* Texts of `spans` as one bytes blob plus int32 offsets; NULL on error (exception set). */
static int join_spans(const Spans *a, PyObject **data, PyObject **off) {
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < a->n; i++) total += a->v[i].n;
    if (total > INT32_MAX) { PyErr_SetString(PyExc_OverflowError, "level text over 2 GB"); return -1; }
    *data = PyBytes_FromStringAndSize(NULL, total);
    *off = PyBytes_FromStringAndSize(NULL, (a->n + 1) * (Py_ssize_t)sizeof(int32_t));
    if (!*data || !*off) { Py_CLEAR(*data); Py_CLEAR(*off); return -1; }
    char *d = PyBytes_AS_STRING(*data);
    int32_t *o = (int32_t *)PyBytes_AS_STRING(*off);
    int32_t pos = 0;
    for (Py_ssize_t i = 0; i < a->n; i++) {
        o[i] = pos;
        memcpy(d + pos, a->v[i].s, (size_t)a->v[i].n);
        pos += (int32_t)a->v[i].n;
    }
    o[a->n] = pos;
    return 0;
}

#define SYM_CACHE 32

typedef struct {
    Spans px, qty, apx, aqty;
    Frame *fs;
    int32_t *starts, *nbids;
} Read;

static void read_free(Read *r) {
    PyMem_Free(r->px.v), PyMem_Free(r->qty.v), PyMem_Free(r->apx.v), PyMem_Free(r->aqty.v);
    PyMem_Free(r->fs), PyMem_Free(r->starts), PyMem_Free(r->nbids);
}

/* Parse every frame of the read: 1 = all handled, 0 = not handled (decline), -1 = error set. */
static int read_frames(PyObject *frames, Read *r) {
    Py_ssize_t n = PyList_GET_SIZE(frames);
    memset(r, 0, sizeof(*r));
    r->fs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Frame));
    r->starts = PyMem_Malloc((size_t)(n + 1) * sizeof(int32_t));
    r->nbids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!r->fs || !r->starts || !r->nbids) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        Cur c;
        if (!frame_text(PyList_GET_ITEM(frames, i), &c)) return 0;
        r->starts[i] = (int32_t)r->px.n;
        r->apx.n = r->aqty.n = 0;
        int res = frame(&c, &r->fs[i], &r->px, &r->qty, &r->apx, &r->aqty);
        if (res < 0) { PyErr_NoMemory(); return -1; }
        if (res == 0) return 0;
        r->nbids[i] = (int32_t)(r->px.n - r->starts[i]);
        for (Py_ssize_t k = 0; k < r->apx.n; k++) {
            if (spans_push(&r->px, r->apx.v[k].s, r->apx.v[k].n) < 0
                || spans_push(&r->qty, r->aqty.v[k].s, r->aqty.v[k].n) < 0) {
                PyErr_NoMemory();
                return -1;
            }
        }
        if (r->px.n > INT32_MAX - 1) return 0;
    }
    r->starts[n] = (int32_t)r->px.n;
    return 1;
}

/* The read's level block (see the top of this file); NULL with an exception set on error. */
static PyObject *read_block(const Read *r, Py_ssize_t n) {
    PyObject *block[6] = {0};
    if (join_spans(&r->px, &block[0], &block[1]) < 0 || join_spans(&r->qty, &block[2], &block[3]) < 0) goto fail;
    if (!(block[4] = PyBytes_FromStringAndSize((const char *)r->starts, (n + 1) * (Py_ssize_t)sizeof(int32_t)))) goto fail;
    if (!(block[5] = PyBytes_FromStringAndSize((const char *)r->nbids, n * (Py_ssize_t)sizeof(int32_t)))) goto fail;
    PyObject *blk = PyTuple_New(6);
    if (!blk) goto fail;
    for (int k = 0; k < 6; k++) PyTuple_SET_ITEM(blk, k, block[k]);
    return blk;
fail:
    for (int k = 0; k < 6; k++) Py_XDECREF(block[k]);
    return NULL;
}

static PyObject *decode(PyObject *self, PyObject *frames) {
    (void)self;
    if (!PyList_CheckExact(frames)) { PyErr_SetString(PyExc_TypeError, "frames must be a list"); return NULL; }
    Py_ssize_t n = PyList_GET_SIZE(frames);
    Read rd;
    PyObject *result = NULL, *lists[5] = {0};
    PyObject *sym_obj[SYM_CACHE];
    int n_sym = 0;
    int handled = read_frames(frames, &rd);
    if (handled < 0) goto done;
    if (!handled) { result = Py_NewRef(Py_None); goto done; }
    for (int k = 0; k < 5; k++)
        if (!(lists[k] = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        Frame *f = &rd.fs[i];
        PyObject *sym = NULL;
        for (int k = 0; k < n_sym; k++) {
            if (PyUnicode_GET_LENGTH(sym_obj[k]) == f->sym_n && memcmp(PyUnicode_DATA(sym_obj[k]), f->sym, (size_t)f->sym_n) == 0) {
                sym = Py_NewRef(sym_obj[k]);
                break;
            }
        }
        if (!sym) {
            if (!(sym = PyUnicode_FromStringAndSize(f->sym, f->sym_n))) goto done;
            if (n_sym < SYM_CACHE) sym_obj[n_sym++] = sym;  /* borrowed: the list below holds it */
        }
        PyList_SET_ITEM(lists[0], i, sym);
        PyObject *v;
        if (!(v = PyLong_FromLongLong(f->E))) goto done;
        PyList_SET_ITEM(lists[1], i, v);
        if (!(v = PyLong_FromLongLong(f->U))) goto done;
        PyList_SET_ITEM(lists[2], i, v);
        if (!(v = PyLong_FromLongLong(f->u))) goto done;
        PyList_SET_ITEM(lists[3], i, v);
        if (!(v = f->has_pu ? PyLong_FromLongLong(f->pu) : Py_NewRef(Py_None))) goto done;
        PyList_SET_ITEM(lists[4], i, v);
    }
    PyObject *blk = read_block(&rd, n);
    if (!blk) goto done;
    result = PyTuple_Pack(6, lists[0], lists[1], lists[2], lists[3], lists[4], blk);
    Py_DECREF(blk);
done:
    for (int k = 0; k < 5; k++) Py_XDECREF(lists[k]);
    read_free(&rd);
    return result;
}

/* `decode_groups(frames)`: the same strict read, as columns per symbol instead of Python objects per frame.
 * Returns None (declined, as `decode`) or (groups, block) with one group per distinct symbol in order of
 * first appearance:
 *   (symbol, pos, E_us, U, u, pu, first_U, first_u, first_pu, last_u, last_E_us, spot_chain, usdm_chain)
 * pos = int32 positions of the symbol's frames in the read (= frame index in `block`); E_us, U, u, pu =
 * int64 columns (E in microseconds; pu None when the symbol's frames carry none, and a symbol whose frames
 * disagree on carrying pu declines the read). spot_chain: every frame after the first continues the one
 * before under the spot rule (u > previous u, U <= previous u + 1); usdm_chain: pu == previous u and
 * u > previous u. With one frame both are true. */
typedef struct { const char *s; Py_ssize_t n; Py_ssize_t count, fill; int has_pu; } Group;

static PyObject *bytes_of(Py_ssize_t n, Py_ssize_t size, char **out) {
    PyObject *b = PyBytes_FromStringAndSize(NULL, n * size);
    if (b) *out = PyBytes_AS_STRING(b);
    return b;
}

static PyObject *decode_groups(PyObject *self, PyObject *frames) {
    (void)self;
    if (!PyList_CheckExact(frames)) { PyErr_SetString(PyExc_TypeError, "frames must be a list"); return NULL; }
    Py_ssize_t n = PyList_GET_SIZE(frames);
    Read rd;
    PyObject *result = NULL, *groups = NULL, *blk = NULL;
    Group *gs = NULL;
    int32_t *gid = NULL;
    Py_ssize_t ng = 0, gcap = 0;
    int handled = read_frames(frames, &rd);
    if (handled < 0) goto done;
    if (!handled || n == 0) { result = Py_NewRef(Py_None); goto done; }
    if (!(gid = PyMem_Malloc((size_t)n * sizeof(int32_t)))) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++) {
        Frame *f = &rd.fs[i];
        Py_ssize_t g = ng - 1;  /* the previous frame's symbol first: reads are often runs of one */
        if (i > 0) g = gid[i - 1];
        if (!(i > 0 && gs[g].n == f->sym_n && memcmp(gs[g].s, f->sym, (size_t)f->sym_n) == 0)) {
            for (g = 0; g < ng; g++)
                if (gs[g].n == f->sym_n && memcmp(gs[g].s, f->sym, (size_t)f->sym_n) == 0) break;
            if (g == ng) {
                if (ng == gcap) {
                    gcap = gcap ? 2 * gcap : 8;
                    Group *v = PyMem_Realloc(gs, (size_t)gcap * sizeof(Group));
                    if (!v) { PyErr_NoMemory(); goto done; }
                    gs = v;
                }
                gs[ng].s = f->sym, gs[ng].n = f->sym_n, gs[ng].count = 0, gs[ng].fill = 0, gs[ng].has_pu = f->has_pu;
                ng++;
            }
        }
        if (gs[g].has_pu != f->has_pu) { result = Py_NewRef(Py_None); goto done; }
        gs[g].count++;
        gid[i] = (int32_t)g;
    }
    if (!(groups = PyList_New(ng))) goto done;
    /* per group: build the columns in one pass over the read's frames of that group */
    Py_ssize_t *last = PyMem_Malloc((size_t)ng * sizeof(Py_ssize_t));
    if (!last) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t g = 0; g < ng; g++) last[g] = -1;
    PyObject *cols[5];
    char **ptr = PyMem_Malloc((size_t)ng * 5 * sizeof(char *));
    int *spot = PyMem_Malloc((size_t)ng * sizeof(int)), *usdm = PyMem_Malloc((size_t)ng * sizeof(int));
    Py_ssize_t *first = PyMem_Malloc((size_t)ng * sizeof(Py_ssize_t));
    if (!ptr || !spot || !usdm || !first) {
        PyMem_Free(last), PyMem_Free(ptr), PyMem_Free(spot), PyMem_Free(usdm), PyMem_Free(first);
        PyErr_NoMemory();
        goto done;
    }
    PyObject **objs = PyMem_Malloc((size_t)ng * 5 * sizeof(PyObject *));
    if (!objs) { PyMem_Free(last), PyMem_Free(ptr), PyMem_Free(spot), PyMem_Free(usdm), PyMem_Free(first); PyErr_NoMemory(); goto done; }
    int ok = 1;
    for (Py_ssize_t g = 0; g < ng; g++) {
        Py_ssize_t c = gs[g].count;
        objs[5 * g] = bytes_of(c, 4, &ptr[5 * g]);
        objs[5 * g + 1] = bytes_of(c, 8, &ptr[5 * g + 1]);
        objs[5 * g + 2] = bytes_of(c, 8, &ptr[5 * g + 2]);
        objs[5 * g + 3] = bytes_of(c, 8, &ptr[5 * g + 3]);
        objs[5 * g + 4] = gs[g].has_pu ? bytes_of(c, 8, &ptr[5 * g + 4]) : Py_NewRef(Py_None);
        for (int k = 0; k < 5; k++) if (!objs[5 * g + k]) ok = 0;
        spot[g] = usdm[g] = 1;
    }
    if (ok) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Frame *f = &rd.fs[i];
            Py_ssize_t g = gid[i], k = gs[g].fill++;
            ((int32_t *)ptr[5 * g])[k] = (int32_t)i;
            ((int64_t *)ptr[5 * g + 1])[k] = (int64_t)f->E * 1000;
            ((int64_t *)ptr[5 * g + 2])[k] = (int64_t)f->U;
            ((int64_t *)ptr[5 * g + 3])[k] = (int64_t)f->u;
            if (f->has_pu) ((int64_t *)ptr[5 * g + 4])[k] = (int64_t)f->pu;
            if (last[g] >= 0) {
                Frame *p = &rd.fs[last[g]];
                if (!(f->u > p->u && f->U <= p->u + 1)) spot[g] = 0;
                if (!(f->has_pu && f->pu == p->u && f->u > p->u)) usdm[g] = 0;
            } else first[g] = i;
            last[g] = i;
        }
        for (Py_ssize_t g = 0; g < ng && ok; g++) {
            Frame *a = &rd.fs[first[g]], *z = &rd.fs[last[g]];
            PyObject *sym = PyUnicode_FromStringAndSize(gs[g].s, gs[g].n);
            PyObject *fpu = a->has_pu ? PyLong_FromLongLong(a->pu) : Py_NewRef(Py_None);
            PyObject *t = sym && fpu ? Py_BuildValue("(NOOOOONLLLLOO)", sym, objs[5 * g], objs[5 * g + 1],
                objs[5 * g + 2], objs[5 * g + 3], objs[5 * g + 4], fpu, a->U, a->u, z->u, (long long)z->E * 1000,
                spot[g] ? Py_True : Py_False, usdm[g] ? Py_True : Py_False) : NULL;
            if (!t) { if (!sym) Py_XDECREF(fpu); else if (!fpu) Py_DECREF(sym); ok = 0; break; }
            PyList_SET_ITEM(groups, g, t);
        }
    }
    for (Py_ssize_t k = 0; k < ng * 5; k++) Py_XDECREF(objs[k]);
    PyMem_Free(objs), PyMem_Free(last), PyMem_Free(ptr), PyMem_Free(spot), PyMem_Free(usdm), PyMem_Free(first);
    (void)cols;
    if (!ok) goto done;
    if (!(blk = read_block(&rd, n))) goto done;
    result = PyTuple_Pack(2, groups, blk);
done:
    Py_XDECREF(groups);
    Py_XDECREF(blk);
    PyMem_Free(gs), PyMem_Free(gid);
    read_free(&rd);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_O, "A read of Binance depthUpdate frames -> (symbols, E, U, u, pu, block), or None."},
    {"decode_groups", decode_groups, METH_O, "A read of Binance depthUpdate frames -> (per-symbol column groups, block), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef depth_module = {
    PyModuleDef_HEAD_INIT, "connectors.binance._depth", "Compiled Binance depthUpdate decoder (see parsing.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__depth(void) { return PyModule_Create(&depth_module); }

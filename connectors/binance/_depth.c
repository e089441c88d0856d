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
 * `gather(blocks, idx)` concatenates the levels of frames (blocks[k], idx[k]) for the delta table:
 * (px_data, px_off, qty_data, qty_off, frame int32 per level, is_ask uint8 per level).
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

static PyObject *decode(PyObject *self, PyObject *frames) {
    (void)self;
    if (!PyList_CheckExact(frames)) { PyErr_SetString(PyExc_TypeError, "frames must be a list"); return NULL; }
    Py_ssize_t n = PyList_GET_SIZE(frames);
    Spans px = {0}, qty = {0}, apx = {0}, aqty = {0};
    Frame *fs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Frame));
    int32_t *starts = PyMem_Malloc((size_t)(n + 1) * sizeof(int32_t));
    int32_t *nbids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    PyObject *result = NULL, *lists[5] = {0}, *block[6] = {0};
    PyObject *sym_obj[SYM_CACHE];
    int n_sym = 0;
    if (!fs || !starts || !nbids) { PyErr_NoMemory(); goto done; }
    int handled = 1;
    for (Py_ssize_t i = 0; i < n && handled; i++) {
        Cur c;
        if (!frame_text(PyList_GET_ITEM(frames, i), &c)) { handled = 0; break; }
        starts[i] = (int32_t)px.n;
        apx.n = aqty.n = 0;
        int r = frame(&c, &fs[i], &px, &qty, &apx, &aqty);
        if (r < 0) { PyErr_NoMemory(); goto done; }
        if (r == 0) { handled = 0; break; }
        nbids[i] = (int32_t)(px.n - starts[i]);
        for (Py_ssize_t k = 0; k < apx.n; k++) {
            if (spans_push(&px, apx.v[k].s, apx.v[k].n) < 0 || spans_push(&qty, aqty.v[k].s, aqty.v[k].n) < 0) {
                PyErr_NoMemory();
                goto done;
            }
        }
        if (px.n > INT32_MAX - 1) { handled = 0; break; }
    }
    if (!handled) { result = Py_NewRef(Py_None); goto done; }
    starts[n] = (int32_t)px.n;
    for (int k = 0; k < 5; k++)
        if (!(lists[k] = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        Frame *f = &fs[i];
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
    if (join_spans(&px, &block[0], &block[1]) < 0 || join_spans(&qty, &block[2], &block[3]) < 0) goto done;
    if (!(block[4] = PyBytes_FromStringAndSize((const char *)starts, (n + 1) * (Py_ssize_t)sizeof(int32_t)))) goto done;
    if (!(block[5] = PyBytes_FromStringAndSize((const char *)nbids, n * (Py_ssize_t)sizeof(int32_t)))) goto done;
    PyObject *blk = PyTuple_New(6);
    if (!blk) goto done;
    for (int k = 0; k < 6; k++) PyTuple_SET_ITEM(blk, k, block[k]), block[k] = NULL;
    result = PyTuple_Pack(6, lists[0], lists[1], lists[2], lists[3], lists[4], blk);
    Py_DECREF(blk);
done:
    for (int k = 0; k < 5; k++) Py_XDECREF(lists[k]);
    for (int k = 0; k < 6; k++) Py_XDECREF(block[k]);
    PyMem_Free(px.v), PyMem_Free(qty.v), PyMem_Free(apx.v), PyMem_Free(aqty.v);
    PyMem_Free(fs), PyMem_Free(starts), PyMem_Free(nbids);
    return result;
}

/* A block as `decode` made it: six bytes objects with consistent sizes (checked, blocks may be pickled). */
static int block_parts(PyObject *b, const char **pd, const int32_t **po, const char **qd, const int32_t **qo,
                       const int32_t **st, const int32_t **nb, Py_ssize_t *frames, Py_ssize_t *lv) {
    if (!PyTuple_CheckExact(b) || PyTuple_GET_SIZE(b) != 6) goto bad;
    for (int k = 0; k < 6; k++)
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(b, k))) goto bad;
    *pd = PyBytes_AS_STRING(PyTuple_GET_ITEM(b, 0)), *po = (const int32_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(b, 1));
    *qd = PyBytes_AS_STRING(PyTuple_GET_ITEM(b, 2)), *qo = (const int32_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(b, 3));
    *st = (const int32_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(b, 4)), *nb = (const int32_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(b, 5));
    *frames = PyBytes_GET_SIZE(PyTuple_GET_ITEM(b, 5)) / 4;
    *lv = PyBytes_GET_SIZE(PyTuple_GET_ITEM(b, 1)) / 4 - 1;
    if (PyBytes_GET_SIZE(PyTuple_GET_ITEM(b, 4)) / 4 != *frames + 1 || PyBytes_GET_SIZE(PyTuple_GET_ITEM(b, 3)) / 4 != *lv + 1
        || *lv < 0 || (*st)[*frames] != *lv || (*po)[*lv] != PyBytes_GET_SIZE(PyTuple_GET_ITEM(b, 0))
        || (*qo)[*lv] != PyBytes_GET_SIZE(PyTuple_GET_ITEM(b, 2)))
        goto bad;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "not a level block");
    return -1;
}

static PyObject *gather(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *blocks, *idx;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &blocks, &PyList_Type, &idx)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(blocks);
    if (PyList_GET_SIZE(idx) != n) { PyErr_SetString(PyExc_ValueError, "blocks and idx differ in length"); return NULL; }
    const char *pd, *qd; const int32_t *po, *qo, *st, *nb;
    Py_ssize_t nf, nl, levels_total = 0, pbytes = 0, qbytes = 0;
    /* pass 1: sizes and checks */
    for (Py_ssize_t k = 0; k < n; k++) {
        if (block_parts(PyList_GET_ITEM(blocks, k), &pd, &po, &qd, &qo, &st, &nb, &nf, &nl) < 0) return NULL;
        Py_ssize_t i = PyLong_AsSsize_t(PyList_GET_ITEM(idx, k));
        if (i == -1 && PyErr_Occurred()) return NULL;
        if (i < 0 || i >= nf || st[i] > st[i + 1] || st[i] < 0 || nb[i] < 0 || nb[i] > st[i + 1] - st[i]) {
            PyErr_SetString(PyExc_IndexError, "frame index out of its level block");
            return NULL;
        }
        levels_total += st[i + 1] - st[i];
        pbytes += po[st[i + 1]] - po[st[i]], qbytes += qo[st[i + 1]] - qo[st[i]];
    }
    if (pbytes > INT32_MAX || qbytes > INT32_MAX || levels_total > INT32_MAX) { PyErr_SetString(PyExc_OverflowError, "too many levels"); return NULL; }
    PyObject *out[6];
    out[0] = PyBytes_FromStringAndSize(NULL, pbytes);
    out[1] = PyBytes_FromStringAndSize(NULL, (levels_total + 1) * 4);
    out[2] = PyBytes_FromStringAndSize(NULL, qbytes);
    out[3] = PyBytes_FromStringAndSize(NULL, (levels_total + 1) * 4);
    out[4] = PyBytes_FromStringAndSize(NULL, levels_total * 4);
    out[5] = PyBytes_FromStringAndSize(NULL, levels_total);
    for (int k = 0; k < 6; k++)
        if (!out[k]) { for (int j = 0; j < 6; j++) Py_XDECREF(out[j]); return NULL; }
    char *opd = PyBytes_AS_STRING(out[0]), *oqd = PyBytes_AS_STRING(out[2]), *oask = PyBytes_AS_STRING(out[5]);
    int32_t *opo = (int32_t *)PyBytes_AS_STRING(out[1]), *oqo = (int32_t *)PyBytes_AS_STRING(out[3]);
    int32_t *ofr = (int32_t *)PyBytes_AS_STRING(out[4]);
    int32_t pp = 0, qp = 0, lv = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        block_parts(PyList_GET_ITEM(blocks, k), &pd, &po, &qd, &qo, &st, &nb, &nf, &nl);
        Py_ssize_t i = PyLong_AsSsize_t(PyList_GET_ITEM(idx, k));
        int32_t a = st[i], b = st[i + 1], first_ask = a + nb[i];
        int32_t plen = po[b] - po[a], qlen = qo[b] - qo[a];
        memcpy(opd + pp, pd + po[a], (size_t)plen);
        memcpy(oqd + qp, qd + qo[a], (size_t)qlen);
        for (int32_t j = a; j < b; j++, lv++) {
            opo[lv] = pp + (po[j] - po[a]);
            oqo[lv] = qp + (qo[j] - qo[a]);
            ofr[lv] = (int32_t)k;
            oask[lv] = j >= first_ask;
        }
        pp += plen, qp += qlen;
    }
    opo[lv] = pp, oqo[lv] = qp;
    PyObject *res = PyTuple_New(6);
    if (!res) { for (int j = 0; j < 6; j++) Py_DECREF(out[j]); return NULL; }
    for (int k = 0; k < 6; k++) PyTuple_SET_ITEM(res, k, out[k]);
    return res;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_O, "A read of Binance depthUpdate frames -> (symbols, E, U, u, pu, block), or None."},
    {"gather", gather, METH_VARARGS, "Levels of frames (blocks[k], idx[k]) -> (px_data, px_off, qty_data, qty_off, frame, is_ask)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef depth_module = {
    PyModuleDef_HEAD_INIT, "connectors.binance._depth", "Compiled Binance depthUpdate decoder (see parsing.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__depth(void) { return PyModule_Create(&depth_module); }

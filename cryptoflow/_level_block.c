/* Level blocks (see connectors/binance/_depth.c for how a read is decoded into one) read back for the
 * delta table's Arrow build, without a Python object per level. Core code: `cryptoflow.schemas` uses it,
 * whichever connector made the blocks.
 *
 * A block is (px_data, px_off, qty_data, qty_off, starts, nbids): level texts per column concatenated with
 * int32 offsets (L + 1), per frame the first level (int32, n + 1) and the number of bids (int32, n); a
 * frame's levels are its bids then its asks.
 *
 * `gather(blocks, idx)` concatenates the levels of frames (blocks[k], idx[k]) for the delta table:
 * (px_data, px_off, qty_data, qty_off, frame int32 per level, is_ask uint8 per level).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* A block as a decoder made it: six bytes objects with consistent sizes (checked, blocks may be pickled). */
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

/* Check frame i of a block (nf frames: its level range inside the block, its bid count within it) and add
 * its levels and text bytes to the totals; -1 with IndexError set when it is not a frame of the block. */
static int count_frame(Py_ssize_t i, Py_ssize_t nf, const int32_t *st, const int32_t *nb, const int32_t *po,
                       const int32_t *qo, Py_ssize_t *levels, Py_ssize_t *pbytes, Py_ssize_t *qbytes) {
    if (i < 0 || i >= nf || st[i] > st[i + 1] || st[i] < 0 || nb[i] < 0 || nb[i] > st[i + 1] - st[i]) {
        PyErr_SetString(PyExc_IndexError, "frame index out of its level block");
        return -1;
    }
    *levels += st[i + 1] - st[i];
    *pbytes += po[st[i + 1]] - po[st[i]], *qbytes += qo[st[i + 1]] - qo[st[i]];
    return 0;
}

/* The gathered columns being written: texts, offsets, frame per level, is_ask per level, and where the
 * next level and the next text bytes go. */
typedef struct {
    char *pd, *qd, *ask;
    int32_t *po, *qo, *fr;
    int32_t pp, qp, lv;
} Gathered;

/* Output buffers 0-5 of `gather`/`gather_groups` for `levels` levels and the text byte totals; 0, or -1
 * with every buffer released. */
static int new_level_buffers(PyObject **out, Py_ssize_t levels, Py_ssize_t pbytes, Py_ssize_t qbytes, Gathered *g) {
    out[0] = PyBytes_FromStringAndSize(NULL, pbytes);
    out[1] = PyBytes_FromStringAndSize(NULL, (levels + 1) * 4);
    out[2] = PyBytes_FromStringAndSize(NULL, qbytes);
    out[3] = PyBytes_FromStringAndSize(NULL, (levels + 1) * 4);
    out[4] = PyBytes_FromStringAndSize(NULL, levels * 4);
    out[5] = PyBytes_FromStringAndSize(NULL, levels);
    for (int k = 0; k < 6; k++)
        if (!out[k]) { for (int j = 0; j < 6; j++) Py_XDECREF(out[j]); return -1; }
    g->pd = PyBytes_AS_STRING(out[0]), g->qd = PyBytes_AS_STRING(out[2]), g->ask = PyBytes_AS_STRING(out[5]);
    g->po = (int32_t *)PyBytes_AS_STRING(out[1]), g->qo = (int32_t *)PyBytes_AS_STRING(out[3]);
    g->fr = (int32_t *)PyBytes_AS_STRING(out[4]);
    g->pp = g->qp = g->lv = 0;
    return 0;
}

/* Append frame i's levels (bids then asks) of a checked block, tagged with output frame number `frame`. */
static inline void copy_frame(Gathered *g, int32_t frame, int32_t i, const char *pd, const int32_t *po,
                              const char *qd, const int32_t *qo, const int32_t *st, const int32_t *nb) {
    int32_t a = st[i], b = st[i + 1], first_ask = a + nb[i];
    int32_t plen = po[b] - po[a], qlen = qo[b] - qo[a];
    memcpy(g->pd + g->pp, pd + po[a], (size_t)plen);
    memcpy(g->qd + g->qp, qd + qo[a], (size_t)qlen);
    for (int32_t l = a; l < b; l++, g->lv++) {
        g->po[g->lv] = g->pp + (po[l] - po[a]);
        g->qo[g->lv] = g->qp + (qo[l] - qo[a]);
        g->fr[g->lv] = frame;
        g->ask[g->lv] = l >= first_ask;
    }
    g->pp += plen, g->qp += qlen;
}

/* The closing offsets, then the buffers as one tuple (released on failure). */
static PyObject *finish(Gathered *g, PyObject **out, int count) {
    g->po[g->lv] = g->pp, g->qo[g->lv] = g->qp;
    PyObject *res = PyTuple_New(count);
    if (!res) { for (int j = 0; j < count; j++) Py_DECREF(out[j]); return NULL; }
    for (int k = 0; k < count; k++) PyTuple_SET_ITEM(res, k, out[k]);
    return res;
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
        if (count_frame(i, nf, st, nb, po, qo, &levels_total, &pbytes, &qbytes) < 0) return NULL;
    }
    if (pbytes > INT32_MAX || qbytes > INT32_MAX || levels_total > INT32_MAX) { PyErr_SetString(PyExc_OverflowError, "too many levels"); return NULL; }
    PyObject *out[6];
    Gathered g;
    if (new_level_buffers(out, levels_total, pbytes, qbytes, &g) < 0) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        block_parts(PyList_GET_ITEM(blocks, k), &pd, &po, &qd, &qo, &st, &nb, &nf, &nl);
        Py_ssize_t i = PyLong_AsSsize_t(PyList_GET_ITEM(idx, k));
        copy_frame(&g, (int32_t)k, (int32_t)i, pd, po, qd, qo, st, nb);
    }
    return finish(&g, out, 6);
}

/* `gather_groups(blocks, positions)`: `gather` for `decode_groups`' groups: the levels of frames
 * positions[k] (int32 bytes) of blocks[k], for every k in order -> (px_data, px_off, qty_data, qty_off,
 * frame int32 per level (running index over all the groups' frames), is_ask uint8 per level, group int32
 * per frame). */
static PyObject *gather_groups(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *blocks, *positions;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &blocks, &PyList_Type, &positions)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(blocks);
    if (PyList_GET_SIZE(positions) != n) { PyErr_SetString(PyExc_ValueError, "blocks and positions differ in length"); return NULL; }
    const char *pd, *qd; const int32_t *po, *qo, *st, *nb;
    Py_ssize_t nf, nl, levels_total = 0, frames_total = 0, pbytes = 0, qbytes = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (block_parts(PyList_GET_ITEM(blocks, k), &pd, &po, &qd, &qo, &st, &nb, &nf, &nl) < 0) return NULL;
        PyObject *pos = PyList_GET_ITEM(positions, k);
        if (!PyBytes_CheckExact(pos) || PyBytes_GET_SIZE(pos) % 4) { PyErr_SetString(PyExc_ValueError, "positions must be int32 bytes"); return NULL; }
        const int32_t *ix = (const int32_t *)PyBytes_AS_STRING(pos);
        Py_ssize_t m = PyBytes_GET_SIZE(pos) / 4;
        for (Py_ssize_t j = 0; j < m; j++)
            if (count_frame(ix[j], nf, st, nb, po, qo, &levels_total, &pbytes, &qbytes) < 0) return NULL;
        frames_total += m;
    }
    if (pbytes > INT32_MAX || qbytes > INT32_MAX || levels_total > INT32_MAX || frames_total > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "too many levels");
        return NULL;
    }
    PyObject *out[7];
    Gathered g;
    if (new_level_buffers(out, levels_total, pbytes, qbytes, &g) < 0) return NULL;
    if (!(out[6] = PyBytes_FromStringAndSize(NULL, frames_total * 4))) {
        for (int j = 0; j < 6; j++) Py_DECREF(out[j]);
        return NULL;
    }
    int32_t *ogr = (int32_t *)PyBytes_AS_STRING(out[6]), fr = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        block_parts(PyList_GET_ITEM(blocks, k), &pd, &po, &qd, &qo, &st, &nb, &nf, &nl);
        PyObject *pos = PyList_GET_ITEM(positions, k);
        const int32_t *ix = (const int32_t *)PyBytes_AS_STRING(pos);
        Py_ssize_t m = PyBytes_GET_SIZE(pos) / 4;
        for (Py_ssize_t j = 0; j < m; j++, fr++) {
            copy_frame(&g, fr, ix[j], pd, po, qd, qo, st, nb);
            ogr[fr] = (int32_t)k;
        }
    }
    return finish(&g, out, 7);
}

/* The text [p, end) as a decimal128 value at `scale` (pow10[k] = 10^k), or 0 when it is not a plain
 * non-negative decimal `digits[.digits]` with at most `scale` fraction digits and at most 38 - scale
 * integer digits (the caller then leaves the column to Arrow's cast, which decides what such texts mean). */
static inline int parse_decimal(const char *p, const char *end, int scale, const unsigned __int128 *pow10,
                                unsigned __int128 *out) {
    Py_ssize_t n = end - p;
    if (n > 0 && n <= 19) {
        /* exchange texts: at most 19 digits fit a 64-bit integer; one branch-light pass, checks after */
        const char *s = p;
        uint64_t lo = 0;
        Py_ssize_t dot = -1;
        for (; p < end; p++) {
            unsigned d = (unsigned)(unsigned char)*p - '0';
            if (d < 10) lo = lo * 10 + d;
            else if (*p == '.' && dot < 0) dot = p - s;
            else return 0;
        }
        Py_ssize_t int_digits = dot < 0 ? n : dot, frac = dot < 0 ? 0 : n - dot - 1;
        if (int_digits == 0 || (dot >= 0 && frac == 0) || frac > scale) return 0;
        if (int_digits <= 38 - scale) {  /* leading zeros counted: when over, the long path counts exactly */
            *out = (unsigned __int128)lo * pow10[scale - frac];
            return 1;
        }
        p = s;
    }
    unsigned __int128 v = 0;
    int int_digits = 0, frac = 0, any = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (v || *p != '0') int_digits++;
        v = v * 10 + (unsigned)(*p - '0'), p++, any = 1;
        if (int_digits > 38 - scale) return 0;
    }
    if (!any) return 0;
    if (p < end) {
        if (*p != '.') return 0;
        p++;
        if (p == end) return 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (++frac > scale) return 0;
            v = v * 10 + (unsigned)(*p - '0'), p++;
        }
        if (p != end) return 0;
    }
    *out = v * pow10[scale - frac];
    return 1;
}

static void powers_of_ten(unsigned __int128 *pow10) {
    pow10[0] = 1;
    for (int k = 1; k <= 38; k++) pow10[k] = pow10[k - 1] * 10;
}

/* `decimals(data, offsets, scale)`: the texts data[offsets[i]:offsets[i+1]] as an Arrow decimal128 buffer
 * (16 bytes per value, little-endian two's complement) at `scale`, or None when any text is not plain
 * (see parse_decimal). */
static PyObject *decimals(PyObject *self, PyObject *args) {
    (void)self;
    const char *data; Py_ssize_t data_n; const char *off_b; Py_ssize_t off_n; int scale;
    if (!PyArg_ParseTuple(args, "y#y#i", &data, &data_n, &off_b, &off_n, &scale)) return NULL;
    if (off_n % 4 || off_n < 4 || scale < 0 || scale > 38) { PyErr_SetString(PyExc_ValueError, "bad offsets or scale"); return NULL; }
    const int32_t *off = (const int32_t *)off_b;
    Py_ssize_t n = off_n / 4 - 1;
    if (off[0] < 0 || off[n] > data_n) { PyErr_SetString(PyExc_ValueError, "offsets out of the data"); return NULL; }
    unsigned __int128 pow10[39];
    powers_of_ten(pow10);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 16);
    if (!out) return NULL;
    char *o = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t a = off[i], b = off[i + 1];
        unsigned __int128 v;
        if (a > b || !parse_decimal(data + a, data + b, scale, pow10, &v)) goto decline;
        memcpy(o + 16 * i, &v, 16);
    }
    return out;
decline:
    Py_DECREF(out);
    Py_RETURN_NONE;
}

/* An exact str as (pointer, length) of its text; 0 for anything else or a non-ASCII str (never plain). */
static inline int ascii_text(PyObject *s, const char **p, Py_ssize_t *n) {
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_COMPACT_ASCII(s)) return 0;
    *p = (const char *)PyUnicode_DATA(s), *n = PyUnicode_GET_LENGTH(s);
    return 1;
}

/* A list or tuple argument's items (borrowed) and size; -1 with TypeError for anything else. */
static int sequence_items(PyObject *seq, PyObject ***items, Py_ssize_t *n) {
    if (!PyList_Check(seq) && !PyTuple_Check(seq)) {
        PyErr_SetString(PyExc_TypeError, "expected a list or tuple");
        return -1;
    }
    *items = PySequence_Fast_ITEMS(seq), *n = Py_SIZE(seq);
    return 0;
}

/* `book_levels(books, scale)`: a list or tuple of book sides (each a list or tuple of (price, qty) str pairs, best
 * first) as the Arrow buffers of a large_list<struct<price, qty decimal128>> column: (int64 list offsets
 * (n + 1), price decimal128 buffer, qty decimal128 buffer). None when any side or level has another shape
 * or any text is not plain (see parse_decimal): the caller then builds the column the generic way. */
static PyObject *book_levels(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *books; int scale;
    PyObject **sides; Py_ssize_t n, levels = 0;
    if (!PyArg_ParseTuple(args, "Oi", &books, &scale) || sequence_items(books, &sides, &n)) return NULL;
    if (scale < 0 || scale > 38) { PyErr_SetString(PyExc_ValueError, "bad scale"); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *side = sides[i];
        if (PyList_CheckExact(side)) levels += PyList_GET_SIZE(side);
        else if (PyTuple_CheckExact(side)) levels += PyTuple_GET_SIZE(side);
        else Py_RETURN_NONE;
    }
    unsigned __int128 pow10[39];
    powers_of_ten(pow10);
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 8);
    PyObject *prices = PyBytes_FromStringAndSize(NULL, levels * 16);
    PyObject *qtys = PyBytes_FromStringAndSize(NULL, levels * 16);
    if (!offsets || !prices || !qtys) goto fail;
    int64_t *off = (int64_t *)PyBytes_AS_STRING(offsets);
    char *po = PyBytes_AS_STRING(prices), *qo = PyBytes_AS_STRING(qtys);
    int64_t k = 0;
    off[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *side = sides[i];
        /* the counts were taken above and nothing here runs Python code, so the sizes still hold */
        PyObject **items = PySequence_Fast_ITEMS(side);
        Py_ssize_t m = Py_SIZE(side);
        if (k + m > levels) goto decline;  /* cannot happen (no Python code ran); never write past */
        for (Py_ssize_t j = 0; j < m; j++, k++) {
            PyObject *level = items[j], *price, *qty;
            if (PyTuple_CheckExact(level) && PyTuple_GET_SIZE(level) == 2)
                price = PyTuple_GET_ITEM(level, 0), qty = PyTuple_GET_ITEM(level, 1);
            else if (PyList_CheckExact(level) && PyList_GET_SIZE(level) == 2)
                price = PyList_GET_ITEM(level, 0), qty = PyList_GET_ITEM(level, 1);
            else goto decline;
            const char *t; Py_ssize_t tn;
            unsigned __int128 v;
            if (!ascii_text(price, &t, &tn) || !parse_decimal(t, t + tn, scale, pow10, &v)) goto decline;
            memcpy(po + 16 * k, &v, 16);
            if (!ascii_text(qty, &t, &tn) || !parse_decimal(t, t + tn, scale, pow10, &v)) goto decline;
            memcpy(qo + 16 * k, &v, 16);
        }
        off[i + 1] = k;
    }
    return Py_BuildValue("(NNN)", offsets, prices, qtys);
decline:
    Py_DECREF(offsets), Py_DECREF(prices), Py_DECREF(qtys);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(offsets), Py_XDECREF(prices), Py_XDECREF(qtys);
    return NULL;
}

/* `decimal_column(values, scale)`: a list or tuple of decimal texts or None as Arrow buffers of a nullable
 * decimal128 column: (validity bitmap or None when no value is None, null count, value buffer; a None's
 * slot holds zero). None when any value is neither None nor a plain text (see parse_decimal). */
static PyObject *decimal_column(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *values; int scale;
    PyObject **items; Py_ssize_t n, nulls = 0;
    if (!PyArg_ParseTuple(args, "Oi", &values, &scale) || sequence_items(values, &items, &n)) return NULL;
    if (scale < 0 || scale > 38) { PyErr_SetString(PyExc_ValueError, "bad scale"); return NULL; }
    unsigned __int128 pow10[39];
    powers_of_ten(pow10);
    PyObject *data = PyBytes_FromStringAndSize(NULL, n * 16);
    PyObject *valid = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    if (!data || !valid) { Py_XDECREF(data), Py_XDECREF(valid); return NULL; }
    char *o = PyBytes_AS_STRING(data);
    uint8_t *bits = (uint8_t *)PyBytes_AS_STRING(valid);
    memset(bits, 0, (size_t)((n + 7) / 8));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = items[i];
        unsigned __int128 v = 0;
        if (s == Py_None) nulls++;
        else {
            const char *t; Py_ssize_t tn;
            if (!ascii_text(s, &t, &tn) || !parse_decimal(t, t + tn, scale, pow10, &v)) {
                Py_DECREF(data), Py_DECREF(valid);
                Py_RETURN_NONE;
            }
            bits[i >> 3] |= (uint8_t)(1u << (i & 7));
        }
        memcpy(o + 16 * i, &v, 16);
    }
    if (!nulls) { Py_DECREF(valid); valid = Py_None; Py_INCREF(valid); }
    return Py_BuildValue("(NnN)", valid, nulls, data);
}

static PyMethodDef methods[] = {
    {"gather", gather, METH_VARARGS, "Levels of frames (blocks[k], idx[k]) -> (px_data, px_off, qty_data, qty_off, frame, is_ask)."},
    {"gather_groups", gather_groups, METH_VARARGS, "Levels of the frames of column groups -> (px_data, px_off, qty_data, qty_off, frame, is_ask, group)."},
    {"decimals", decimals, METH_VARARGS, "Decimal texts (data, int32 offsets) -> decimal128 buffer at a scale, or None."},
    {"book_levels", book_levels, METH_VARARGS, "Book sides [[(price, qty)]] -> (int64 offsets, price, qty decimal128 buffers), or None."},
    {"decimal_column", decimal_column, METH_VARARGS, "Decimal texts or None -> (validity or None, null count, decimal128 buffer), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef level_block_module = {
    PyModuleDef_HEAD_INIT, "cryptoflow._level_block", "Level blocks -> Arrow buffers (see level_block.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__level_block(void) { return PyModule_Create(&level_block_module); }

/* One side of an L2 order book in C: a sorted array of fixed-size levels, no Python object per level.
 *
 * Why: the pure-Python side (operators/book/levels.py, `PySide`) keeps two str objects, one int and a
 * dict entry per level (~208 bytes) and pays 0.5-2 us of interpreter time per level update. Here a level
 * is 32 bytes in one array and an update is a parse + binary search + (rarely) a short memmove.
 *
 * Exactness: a price is parsed once into an exact integer at 18 decimal places (the same number as
 * `levels.price_key`) and its own count of decimals; a quantity into an integer mantissa and its count
 * of decimals. The exchange's text is rebuilt from those two numbers, and it is byte-identical to what
 * was sent because only canonical decimal text is accepted (`digits[.digits]`, no sign, no exponent, no
 * leading zero except a lone "0" before the point); anything else raises ValueError, which the tracker
 * counts as a bad event. Zero quantities ("0", "0.000", "0E-8") delete a level, as in `levels.is_zero`.
 *
 * Layout: levels are kept in ascending order of `skey` with the best level last, whatever the side
 * (bids: skey = key, asks: skey = -key), so the busy end of the book is the end of the array and inserts
 * and deletes near the top move only a few levels. Levels dropped from the worst end advance `start`
 * instead of moving the array.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef __int128 i128;
typedef unsigned __int128 u128;

#define SCALE 18
#define MAX_INT_DIGITS 20 /* prices below 1e20 (the tables hold decimal(38, 18)) */
#define STATE_VERSION 1

typedef struct {
    i128 skey;    /* price * 10^18, negated on the ask side */
    int64_t qty;  /* quantity mantissa */
    uint8_t pp;   /* decimals of the price text */
    uint8_t qp;   /* decimals of the quantity text */
} Level;

typedef struct {
    PyObject_HEAD
    Level *lv;
    Py_ssize_t start, len, cap;
    int descending;
    int has_horizon;
    i128 horizon; /* skey of the worst level kept when we cut the side to our depth cap */
} Side;

static u128 POW10[39];

/* Inlined into set_level: the per-level path is a few dozen instructions, so calls and out-parameters
 * through memory were a measurable share of it. */
#define HOT static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------------------------- text */

/* `levels.is_zero`: the first character that is not '0' or '.' is missing or an exponent marker. */
HOT int is_zero(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '0' || c == '.') continue;
        return c == 'e' || c == 'E';
    }
    return 1;
}

/* Canonical decimal text -> mantissa and decimals. Returns 0, or -1 if not canonical / too long.
 * Accumulates in 64 bits (up to 19 digits, every real price and size) and only then in 128 bits. */
HOT int parse_dec(const char *s, Py_ssize_t n, u128 *mant, int *places, int *int_digits) {
    if (n <= 0 || n > 40) return -1;
    if (s[0] == '0' && n > 1 && s[1] != '.') return -1; /* leading zero */
    uint64_t m64 = 0;
    u128 m = 0;
    int nd = 0;
    Py_ssize_t dot = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d <= 9) {
            if (nd < 19) m64 = m64 * 10 + d;
            else {
                if (nd == 19) m = m64;
                m = m * 10 + d;
            }
            nd++;
        } else if (s[i] == '.' && dot < 0 && i > 0 && i < n - 1) {
            dot = i;
        } else {
            return -1;
        }
    }
    *mant = nd <= 19 ? (u128)m64 : m;
    *places = dot < 0 ? 0 : (int)(n - 1 - dot);
    *int_digits = dot < 0 ? (int)n : (int)dot;
    return 0;
}

/* The bytes of a str (checked before). Exchange numbers are ASCII, whose compact str holds them inline:
 * read them there instead of calling PyUnicode_AsUTF8AndSize (with the parsers below inlined into
 * set_level: -4 to -17 % per level update in bench-book, two sessions). Anything else takes the call. */
static inline const char *str_bytes(PyObject *obj, Py_ssize_t *n) {
    if (PyUnicode_IS_COMPACT_ASCII(obj)) {
        *n = PyUnicode_GET_LENGTH(obj);
        return (const char *)PyUnicode_DATA(obj);
    }
    return PyUnicode_AsUTF8AndSize(obj, n);
}

HOT int parse_price(PyObject *obj, i128 *key, int *places) {
    Py_ssize_t n;
    const char *s;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "price must be str, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    s = str_bytes(obj, &n);
    if (s == NULL) return -1;
    u128 m;
    int pl, id;
    if (parse_dec(s, n, &m, &pl, &id) < 0 || pl > SCALE || id > MAX_INT_DIGITS) {
        PyErr_Format(PyExc_ValueError, "price %R is not a canonical decimal (digits[.digits], < 1e20, <= 18 places)", obj);
        return -1;
    }
    *key = (i128)(m * POW10[SCALE - pl]);
    *places = pl;
    return 0;
}

/* Returns 1 if zero (delete), 0 if parsed, -1 on error. */
HOT int parse_qty(PyObject *obj, int64_t *mant, int *places) {
    Py_ssize_t n;
    const char *s;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "quantity must be str, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    s = str_bytes(obj, &n);
    if (s == NULL) return -1;
    if (is_zero(s, n)) return 1;
    u128 m;
    int pl, id;
    if (parse_dec(s, n, &m, &pl, &id) < 0 || pl > SCALE || m > (u128)INT64_MAX) {
        PyErr_Format(PyExc_ValueError, "quantity %R is not a canonical decimal (digits[.digits], < 2^63 units)", obj);
        return -1;
    }
    *mant = (int64_t)m;
    *places = pl;
    return 0;
}

/* Decimal digits of `m` into `out` (no terminator); "" for 0. Returns the count. */
static int digits_of(u128 m, char *out) {
    char tmp[48];
    int n = 0;
    while (m) {
        tmp[n++] = (char)('0' + (int)(m % 10));
        m /= 10;
    }
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

static char DIGIT_PAIRS[200]; /* "00", "01", ..., "99" */

/* Decimal digits of `m` into `out` ("" for 0), two at a time in 64-bit arithmetic when it fits (every
 * real price and size): 128-bit division is a libgcc call per digit. Returns the count. */
HOT int digits_fast(u128 m, char *out) {
    if (m > UINT64_MAX) return digits_of(m, out);
    uint64_t v = (uint64_t)m;
    int n = 0;
    while (n < 20 && v >= (uint64_t)POW10[n]) n++; /* the digit count: written back to front below */
    char *p = out + n;
    for (; v >= 100; v /= 100) {
        p -= 2;
        memcpy(p, DIGIT_PAIRS + 2 * (v % 100), 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, DIGIT_PAIRS + 2 * v, 2);
    } else if (v) {
        *--p = (char)('0' + v);
    }
    return n;
}

static uint64_t INV5[SCALE + 1]; /* 5^k's inverse modulo 2^64 */
static u128 FITS64[SCALE + 1];   /* 10^k * 2^64: a multiple of 10^k below it has a 64-bit quotient */

/* key / 10^k for a key that is a multiple of 10^k (a price key at its own places): key >> k is then
 * quotient * 5^k exactly, and multiplying by 5^k's inverse modulo 2^64 gives the quotient when it fits
 * 64 bits, without the 128-bit division (a libgcc call, a quarter of the checksum's time). */
HOT u128 exact_div_pow10(u128 key, int k) {
    if (key < FITS64[k]) return (u128)((uint64_t)(key >> k) * INV5[k]);
    return key / POW10[k];
}

/* Mantissa + decimals -> the canonical text (what parse_dec accepted), written straight into a new
 * ASCII str. */
static PyObject *format_dec(u128 m, int places) {
    char d[48];
    int nd = digits_fast(m, d); /* "" for 0 */
    int lead = nd <= places ? places + 1 - nd : 0; /* at least one digit before the point */
    int total = lead + nd, whole = total - places;
    PyObject *out = PyUnicode_New(total + (places > 0), 127);
    if (out == NULL) return NULL;
    Py_UCS1 *o = PyUnicode_1BYTE_DATA(out);
    int k = 0;
    for (int i = 0; i < total; i++) {
        if (i == whole) o[k++] = '.';
        o[k++] = (Py_UCS1)(i < lead ? '0' : d[i - lead]);
    }
    return out;
}

static PyObject *price_text(const Side *self, const Level *l) {
    i128 key = self->descending ? l->skey : -l->skey;
    return format_dec(exact_div_pow10((u128)key, SCALE - l->pp), l->pp);
}

static PyObject *qty_text(const Level *l) { return format_dec((u128)l->qty, l->qp); }

static PyObject *int128_to_py(i128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX) return PyLong_FromLongLong((long long)v);
    char buf[48];
    int neg = v < 0, k = sizeof(buf) - 1;
    u128 m = neg ? (u128)(-v) : (u128)v;
    buf[k] = 0;
    do { buf[--k] = (char)('0' + (int)(m % 10)); m /= 10; } while (m);
    if (neg) buf[--k] = '-';
    return PyLong_FromString(buf + k, NULL, 10);
}

/* ---------------------------------------------------------------------------------------- storage */

/* First position (relative to start) whose skey is >= `skey`. Updates cluster at the top of the book,
 * which is the end of the array: gallop back from the end (1, 2, 4, ... levels) to bracket the position,
 * then bisect the bracket, so a level k places from the top costs about 2*log2(k) comparisons. */
HOT Py_ssize_t lower_bound(const Side *self, i128 skey) {
    const Level *lv = self->lv + self->start;
    Py_ssize_t n = self->len, hi = n, step = 1, lo;
    for (;;) {
        Py_ssize_t probe = n - step;
        if (probe <= 0) {
            lo = 0;
            break;
        }
        if (lv[probe].skey < skey) {
            lo = probe + 1;
            break;
        }
        hi = probe;
        step <<= 1;
    }
    /* branch-free bisection of [lo, hi): the comparison result moves `lo` (a cmov, no misprediction) */
    Py_ssize_t count = hi - lo;
    while (count > 0) {
        Py_ssize_t half = count >> 1;
        int less = lv[lo + half].skey < skey;
        lo = less ? lo + half + 1 : lo;
        count = less ? count - half - 1 : half;
    }
    return lo;
}

static int reserve_one(Side *self) {
    if (self->start + self->len < self->cap) return 0;
    if (self->start > 0 && self->start >= self->cap / 8) {
        memmove(self->lv, self->lv + self->start, (size_t)self->len * sizeof(Level));
        self->start = 0;
        return 0;
    }
    Py_ssize_t cap = self->cap + (self->cap >> 2) + 16;
    Level *lv = PyMem_Realloc(self->lv, (size_t)cap * sizeof(Level));
    if (lv == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->lv = lv;
    self->cap = cap;
    return 0;
}

static int insert_at(Side *self, Py_ssize_t i, const Level *l) {
    if (reserve_one(self) < 0) return -1;
    Level *base = self->lv + self->start;
    memmove(base + i + 1, base + i, (size_t)(self->len - i) * sizeof(Level));
    base[i] = *l;
    self->len++;
    return 0;
}

static void delete_at(Side *self, Py_ssize_t i) {
    Level *base = self->lv + self->start;
    if (i < self->len - 1 - i) { /* fewer levels on the worst side: move those and advance start */
        memmove(base + 1, base, (size_t)i * sizeof(Level));
        self->start++;
    } else {
        memmove(base + i, base + i + 1, (size_t)(self->len - 1 - i) * sizeof(Level));
    }
    self->len--;
}

static void shrink(Side *self) {
    if (self->cap <= 64 || self->len * 2 >= self->cap) return;
    memmove(self->lv, self->lv + self->start, (size_t)self->len * sizeof(Level));
    self->start = 0;
    Py_ssize_t cap = self->len + (self->len >> 3) + 16;
    Level *lv = PyMem_Realloc(self->lv, (size_t)cap * sizeof(Level));
    if (lv != NULL) {
        self->lv = lv;
        self->cap = cap;
    }
}

/* One level: insert, replace or delete. Returns 1 if a level was added or removed, 0 if not, -1 error. */
static int set_level(Side *self, PyObject *price, PyObject *qty) {
    i128 key;
    int pp, qp = 0;
    int64_t qm = 0;
    int zero = parse_qty(qty, &qm, &qp);
    if (zero < 0) return -1;
    if (parse_price(price, &key, &pp) < 0) return -1;
    i128 skey = self->descending ? key : -key;
    Py_ssize_t i = lower_bound(self, skey);
    Level *base = self->lv + self->start;
    int present = i < self->len && base[i].skey == skey;
    if (zero) {
        if (!present) return 0; /* deleting a level we do not hold is normal (beyond snapshot depth) */
        delete_at(self, i);
        return 1;
    }
    if (present) { /* new quantity; a price written differently ("1.5" vs "1.50") keeps the newest text */
        base[i].qty = qm;
        base[i].qp = (uint8_t)qp;
        base[i].pp = (uint8_t)pp;
        return 0;
    }
    if (self->has_horizon && skey < self->horizon) return 0; /* beyond our depth cap: unknown neighbours */
    Level l;
    memset(&l, 0, sizeof(l)); /* padding too: snapshots of equal books are equal bytes */
    l.skey = skey;
    l.qty = qm;
    l.pp = (uint8_t)pp;
    l.qp = (uint8_t)qp;
    if (insert_at(self, i, &l) < 0) return -1;
    return 1;
}

static int level_items(PyObject *level, PyObject **price, PyObject **qty) {
    if (PyList_Check(level)) {
        if (PyList_GET_SIZE(level) < 2) goto short_level;
        *price = PyList_GET_ITEM(level, 0);
        *qty = PyList_GET_ITEM(level, 1);
        return 0;
    }
    if (PyTuple_Check(level)) {
        if (PyTuple_GET_SIZE(level) < 2) goto short_level;
        *price = PyTuple_GET_ITEM(level, 0);
        *qty = PyTuple_GET_ITEM(level, 1);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "a level must be a list or tuple, not %.100s", Py_TYPE(level)->tp_name);
    return -1;
short_level:
    PyErr_SetString(PyExc_IndexError, "a level needs a price and a quantity");
    return -1;
}

static Py_ssize_t truncate_to(Side *self, Py_ssize_t depth, int remember) {
    if (depth < 0) depth = 0;
    Py_ssize_t extra = self->len - depth;
    if (extra <= 0) return 0;
    self->start += extra; /* the worst levels are at the front */
    self->len = depth;
    if (remember && self->len > 0) {
        self->has_horizon = 1;
        self->horizon = self->lv[self->start].skey;
    }
    shrink(self);
    return extra;
}

/* ---------------------------------------------------------------------------------------- methods */

static int Side_init(Side *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"descending", NULL};
    int descending;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "p", kwlist, &descending)) return -1;
    self->descending = descending;
    PyMem_Free(self->lv);
    self->lv = NULL;
    self->start = self->len = self->cap = 0;
    self->has_horizon = 0;
    self->horizon = 0;
    return 0;
}

static void Side_dealloc(Side *self) {
    PyMem_Free(self->lv);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Side_len(Side *self) { return self->len; }

static PyObject *Side_set(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set(price, qty)");
        return NULL;
    }
    int r = set_level(self, args[0], args[1]);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

/* `set` every [price, qty] of `levels` in order; returns how many, or -1 on error (the levels before the
 * bad one stay applied, as in the pure-Python side). */
static Py_ssize_t apply_levels(Side *self, PyObject *levels) {
    PyObject *seq = PySequence_Fast(levels, "levels must be iterable");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *price, *qty;
        if (level_items(items[k], &price, &qty) < 0 || set_level(self, price, qty) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return n;
}

static PyObject *Side_apply(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "apply(levels, cap=None)");
        return NULL;
    }
    Py_ssize_t n = apply_levels(self, args[0]);
    if (n < 0) return NULL;
    if (nargs == 2 && args[1] != Py_None) {
        Py_ssize_t cap = PyLong_AsSsize_t(args[1]);
        if (cap == -1 && PyErr_Occurred()) return NULL;
        if (self->len > cap) truncate_to(self, cap, 1);
    }
    return PyLong_FromSsize_t(n);
}

typedef struct {
    Level l;
    Py_ssize_t order;
    int zero;
} Loading;

static int cmp_loading(const void *a, const void *b) {
    const Loading *x = a, *y = b;
    if (x->l.skey != y->l.skey) return x->l.skey < y->l.skey ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

/* Replace the side with the snapshot `levels`; returns how many levels were read, or -1 on error (the
 * side is unchanged then). */
static Py_ssize_t load_levels(Side *self, PyObject *levels) {
    PyObject *seq = PySequence_Fast(levels, "levels must be iterable");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Loading *tmp = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof(Loading)); /* zeroed padding */
    if (tmp == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    int sorted = 1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *price, *qty;
        i128 key;
        int pp, qp = 0;
        int64_t qm = 0;
        int zero;
        if (level_items(items[k], &price, &qty) < 0 || (zero = parse_qty(qty, &qm, &qp)) < 0 ||
            parse_price(price, &key, &pp) < 0) {
            PyMem_Free(tmp);
            Py_DECREF(seq);
            return -1;
        }
        Loading *t = &tmp[k];
        t->l.skey = self->descending ? key : -key;
        t->l.qty = qm;
        t->l.pp = (uint8_t)pp;
        t->l.qp = (uint8_t)qp;
        t->order = k;
        t->zero = zero;
        if (k > 0 && tmp[k - 1].l.skey >= t->l.skey) sorted = 0;
    }
    Py_DECREF(seq);
    if (!sorted) qsort(tmp, (size_t)n, sizeof(Loading), cmp_loading);
    /* Of several levels at one price the last one sent wins; a zero one removes the price. */
    Py_ssize_t kept = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (k + 1 < n && tmp[k + 1].l.skey == tmp[k].l.skey) continue;
        if (!tmp[k].zero) tmp[kept++].l = tmp[k].l;
    }
    Level *lv = PyMem_Malloc((size_t)(kept > 0 ? kept : 1) * sizeof(Level));
    if (lv == NULL) {
        PyMem_Free(tmp);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < kept; k++) lv[k] = tmp[k].l;
    PyMem_Free(tmp);
    PyMem_Free(self->lv);
    self->lv = lv;
    self->start = 0;
    self->len = self->cap = kept;
    self->has_horizon = 0;
    self->horizon = 0;
    return n;
}

static PyObject *Side_load(Side *self, PyObject *levels) {
    Py_ssize_t n = load_levels(self, levels);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *Side_truncate(Side *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"depth", "remember", NULL};
    Py_ssize_t depth;
    int remember = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|p", kwlist, &depth, &remember)) return NULL;
    return PyLong_FromSsize_t(truncate_to(self, depth, remember));
}

static PyObject *Side_clear(Side *self, PyObject *Py_UNUSED(ignored)) {
    PyMem_Free(self->lv);
    self->lv = NULL;
    self->start = self->len = self->cap = 0;
    self->has_horizon = 0;
    self->horizon = 0;
    Py_RETURN_NONE;
}

static PyObject *level_tuple(const Side *self, const Level *l) {
    PyObject *t = PyTuple_New(2);
    if (t == NULL) return NULL;
    PyObject *p = price_text(self, l);
    if (p == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, p);
    PyObject *q = qty_text(l);
    if (q == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 1, q);
    return t;
}

/* The best n levels as [(price, qty), ...], best first. */
static PyObject *top_list(const Side *self, Py_ssize_t n) {
    if (n < 0) n = 0;
    if (n > self->len) n = self->len;
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    const Level *best = self->lv + self->start + self->len - 1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *t = level_tuple(self, best - k);
        if (t == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, k, t);
    }
    return out;
}

static PyObject *Side_top(Side *self, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    return top_list(self, n);
}

/* Kraken's checksum text of the best n levels: each level's price then quantity text with the '.'
 * removed and leading zeros stripped, which for canonical text is exactly the mantissa's digits. */
static PyObject *Side_kraken_digits(Side *self, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0) n = 0;
    if (n > self->len) n = self->len;
    char *buf = PyMem_Malloc((size_t)(n > 0 ? n : 1) * 80);
    if (buf == NULL) return PyErr_NoMemory();
    size_t k = 0;
    const Level *best = self->lv + self->start + self->len - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const Level *l = best - i;
        i128 key = self->descending ? l->skey : -l->skey;
        k += (size_t)digits_of((u128)key / POW10[SCALE - l->pp], buf + k);
        k += (size_t)digits_of((u128)l->qty, buf + k);
    }
    PyObject *out = PyBytes_FromStringAndSize(buf, (Py_ssize_t)k);
    PyMem_Free(buf);
    return out;
}

static PyObject *Side_best(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (self->len == 0) Py_RETURN_NONE;
    return level_tuple(self, self->lv + self->start + self->len - 1);
}

static PyObject *Side_best_key(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (self->len == 0) Py_RETURN_NONE;
    i128 s = self->lv[self->start + self->len - 1].skey;
    return int128_to_py(self->descending ? s : -s);
}

/* Index of `price` in the side, or -1 (not held), -2 (error). */
static Py_ssize_t find(Side *self, PyObject *price) {
    i128 key;
    int pp;
    if (parse_price(price, &key, &pp) < 0) return -2;
    i128 skey = self->descending ? key : -key;
    Py_ssize_t i = lower_bound(self, skey);
    return (i < self->len && self->lv[self->start + i].skey == skey) ? i : -1;
}

static int Side_contains(Side *self, PyObject *price) {
    Py_ssize_t i = find(self, price);
    if (i == -2) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    return i >= 0;
}

static PyObject *Side_get(Side *self, PyObject *price) {
    Py_ssize_t i = find(self, price);
    if (i == -2) return NULL;
    if (i < 0) Py_RETURN_NONE;
    return qty_text(self->lv + self->start + i);
}

static PyObject *Side_getstate(Side *self, PyObject *Py_UNUSED(ignored)) {
    /* version, horizon flag, horizon, then the levels as they lie in memory: one memcpy each way */
    size_t head = 2 * sizeof(i128), body = (size_t)self->len * sizeof(Level);
    PyObject *blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(head + body));
    if (blob == NULL) return NULL;
    char *p = PyBytes_AS_STRING(blob);
    i128 flags = STATE_VERSION | (self->has_horizon ? 0x100 : 0);
    memcpy(p, &flags, sizeof(i128));
    memcpy(p + sizeof(i128), &self->horizon, sizeof(i128));
    if (body) memcpy(p + head, self->lv + self->start, body);
    return blob;
}

static int Side_set_horizon(Side *self, PyObject *value, void *closure);
static PyObject *Side_load(Side *self, PyObject *levels);

/* The pickled state of a pure-Python side (`levels.PySide`: pickle's (None, {slot: value})). Recovery
 * data written before the compiled side existed holds those under the name `levels.Side`. */
static PyObject *setstate_from_python_side(Side *self, PyObject *slots) {
    PyObject *descending = PyDict_GetItemString(slots, "descending");
    PyObject *texts = PyDict_GetItemString(slots, "texts");
    PyObject *qty = PyDict_GetItemString(slots, "qty");
    PyObject *horizon = PyDict_GetItemString(slots, "horizon");
    if (descending == NULL || texts == NULL || qty == NULL || !PyDict_Check(qty)) {
        PyErr_SetString(PyExc_ValueError, "not a Side state");
        return NULL;
    }
    int desc = PyObject_IsTrue(descending);
    if (desc < 0) return NULL;
    self->descending = desc;
    PyObject *seq = PySequence_Fast(texts, "texts must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *levels = PyList_New(n);
    if (levels == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *text = PySequence_Fast_GET_ITEM(seq, k);
        PyObject *q = PyDict_GetItemWithError(qty, text);
        PyObject *pair = q == NULL ? NULL : PyTuple_Pack(2, text, q);
        if (pair == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "Side state: a price without quantity");
            Py_DECREF(levels);
            Py_DECREF(seq);
            return NULL;
        }
        PyList_SET_ITEM(levels, k, pair);
    }
    Py_DECREF(seq);
    PyObject *r = Side_load(self, levels);
    Py_DECREF(levels);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    if (Side_set_horizon(self, horizon, NULL) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Side_setstate(Side *self, PyObject *blob) {
    if (PyTuple_Check(blob) && PyTuple_GET_SIZE(blob) == 2 && PyDict_Check(PyTuple_GET_ITEM(blob, 1)))
        return setstate_from_python_side(self, PyTuple_GET_ITEM(blob, 1));
    if (PyDict_Check(blob)) return setstate_from_python_side(self, blob);
    if (!PyBytes_Check(blob)) {
        PyErr_SetString(PyExc_TypeError, "Side state must be bytes");
        return NULL;
    }
    size_t head = 2 * sizeof(i128), size = (size_t)PyBytes_GET_SIZE(blob);
    const char *p = PyBytes_AS_STRING(blob);
    i128 flags;
    if (size < head || (size - head) % sizeof(Level) != 0) goto bad;
    memcpy(&flags, p, sizeof(i128));
    if ((flags & 0xff) != STATE_VERSION) goto bad;
    Py_ssize_t n = (Py_ssize_t)((size - head) / sizeof(Level));
    Level *lv = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(Level));
    if (lv == NULL) return PyErr_NoMemory();
    if (n) memcpy(lv, p + head, (size_t)n * sizeof(Level));
    PyMem_Free(self->lv);
    self->lv = lv;
    self->start = 0;
    self->len = self->cap = n;
    self->has_horizon = (flags & 0x100) != 0;
    memcpy(&self->horizon, p + sizeof(i128), sizeof(i128));
    Py_RETURN_NONE;
bad:
    PyErr_SetString(PyExc_ValueError, "not a Side state (other version or corrupt)");
    return NULL;
}

static PyObject *Side_reduce(Side *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *state = Side_getstate(self, NULL);
    if (state == NULL) return NULL;
    return Py_BuildValue("O(O)N", (PyObject *)Py_TYPE(self), self->descending ? Py_True : Py_False, state);
}

static PyObject *Side_copy(Side *self, PyObject *Py_UNUSED(ignored)) {
    Side *other = (Side *)PyType_GenericAlloc(Py_TYPE(self), 0);
    if (other == NULL) return NULL;
    other->descending = self->descending;
    other->has_horizon = self->has_horizon;
    other->horizon = self->horizon;
    other->lv = PyMem_Malloc((size_t)(self->len > 0 ? self->len : 1) * sizeof(Level));
    if (other->lv == NULL) {
        Py_DECREF(other);
        return PyErr_NoMemory();
    }
    if (self->len) memcpy(other->lv, self->lv + self->start, (size_t)self->len * sizeof(Level));
    other->start = 0;
    other->len = other->cap = self->len;
    return (PyObject *)other;
}

static PyObject *Side_deepcopy(Side *self, PyObject *Py_UNUSED(memo)) { return Side_copy(self, NULL); }

static PyObject *Side_sizeof(Side *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSsize_t((Py_ssize_t)sizeof(Side) + self->cap * (Py_ssize_t)sizeof(Level));
}

static PyObject *Side_get_horizon(Side *self, void *Py_UNUSED(closure)) {
    if (!self->has_horizon) Py_RETURN_NONE;
    return int128_to_py(self->descending ? self->horizon : -self->horizon);
}

/* Set from a price key (levels.price_key units) or None; used to restore a pure-Python side's state. */
static int Side_set_horizon(Side *self, PyObject *value, void *closure) {
    (void)closure;
    if (value == NULL || value == Py_None) {
        self->has_horizon = 0;
        self->horizon = 0;
        return 0;
    }
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "horizon must be an int (a price key) or None");
        return -1;
    }
    PyObject *text = PyObject_Str(value);
    if (text == NULL) return -1;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    int neg = s != NULL && n > 0 && s[0] == '-';
    u128 m = 0;
    int ok = s != NULL && n - neg >= 1 && n - neg <= 38;
    for (Py_ssize_t i = neg; ok && i < n; i++) {
        if (s[i] < '0' || s[i] > '9') ok = 0;
        else m = m * 10 + (unsigned)(s[i] - '0');
    }
    Py_DECREF(text);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "horizon out of range");
        return -1;
    }
    i128 key = neg ? -(i128)m : (i128)m;
    self->horizon = self->descending ? key : -key;
    self->has_horizon = 1;
    return 0;
}

static PyObject *Side_get_descending(Side *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->descending);
}

static PyMethodDef Side_methods[] = {
    {"set", (PyCFunction)(void (*)(void))Side_set, METH_FASTCALL,
     "set(price, qty) -> bool: insert, replace or (zero qty) delete one level; True if one was added or removed."},
    {"apply", (PyCFunction)(void (*)(void))Side_apply, METH_FASTCALL,
     "apply(levels, cap=None) -> int: `set` every [price, qty] in order, then cut to `cap` levels."},
    {"load", (PyCFunction)Side_load, METH_O, "load(levels) -> int: replace the side with a snapshot."},
    {"truncate", (PyCFunction)(void (*)(void))Side_truncate, METH_VARARGS | METH_KEYWORDS,
     "truncate(depth, remember=True) -> int: drop the worst levels beyond depth."},
    {"clear", (PyCFunction)Side_clear, METH_NOARGS, "Empty the side and forget the horizon."},
    {"top", (PyCFunction)Side_top, METH_O, "top(n) -> [(price, qty)]: the best n levels, best first."},
    {"best", (PyCFunction)Side_best, METH_NOARGS, "best() -> (price, qty) | None"},
    {"best_key", (PyCFunction)Side_best_key, METH_NOARGS, "best_key() -> int | None (levels.price_key units)"},
    {"get", (PyCFunction)Side_get, METH_O, "get(price) -> qty text | None"},
    {"kraken_digits", (PyCFunction)Side_kraken_digits, METH_O,
     "kraken_digits(n) -> bytes: the best n levels as Kraken's checksum input (see checksums.py)."},
    {"__getstate__", (PyCFunction)Side_getstate, METH_NOARGS, NULL},
    {"__setstate__", (PyCFunction)Side_setstate, METH_O, NULL},
    {"__reduce__", (PyCFunction)Side_reduce, METH_NOARGS, NULL},
    {"__copy__", (PyCFunction)Side_copy, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)Side_deepcopy, METH_O, NULL},
    {"__sizeof__", (PyCFunction)Side_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Side_getset[] = {
    {"horizon", (getter)Side_get_horizon, (setter)Side_set_horizon,
     "Worst price key kept after our own depth cut, or None.", NULL},
    {"descending", (getter)Side_get_descending, NULL, "True for bids.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Side_as_sequence = {
    .sq_length = (lenfunc)Side_len,
    .sq_contains = (objobjproc)Side_contains,
};

static PyTypeObject SideType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "operators.book._levels.Side",
    .tp_doc = "One side of an order book: price -> quantity, 32 bytes per level, texts rebuilt exactly.",
    .tp_basicsize = sizeof(Side),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Side_init,
    .tp_dealloc = (destructor)Side_dealloc,
    .tp_methods = Side_methods,
    .tp_getset = Side_getset,
    .tp_as_sequence = &Side_as_sequence,
};

/* ------------------------------------------------------------------------------------ Kraken v2 */

/* CRC32 (zlib's polynomial; table built at import) of Kraken's checksum text, straight from the sides:
 * the same value as zlib.crc32(asks.kraken_digits(n) + bids.kraken_digits(n)) without the bytes. */
/* CRC_TABLE[0] is zlib's byte table; CRC_TABLE[k] advances it k more bytes (slicing-by-8: eight bytes
 * per step with independent lookups instead of one dependent lookup per byte). */
static uint32_t CRC_TABLE[8][256];

static uint32_t crc_update(uint32_t crc, const char *buf, size_t n) {
    const unsigned char *p = (const unsigned char *)buf;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint32_t(*t)[256] = (const uint32_t(*)[256])CRC_TABLE;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t one, two;
        memcpy(&one, p, 4);
        memcpy(&two, p + 4, 4);
        one ^= crc;
        crc = t[7][one & 0xFF] ^ t[6][(one >> 8) & 0xFF] ^ t[5][(one >> 16) & 0xFF] ^ t[4][one >> 24] ^
              t[3][two & 0xFF] ^ t[2][(two >> 8) & 0xFF] ^ t[1][(two >> 16) & 0xFF] ^ t[0][two >> 24];
    }
#endif
    for (; n > 0; p++, n--) crc = CRC_TABLE[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
    return crc;
}

/* Kraken's checksum text of a side's best n levels (see Side_kraken_digits), fed to the CRC in chunks. */
static uint32_t crc_side(uint32_t crc, const Side *side, Py_ssize_t n) {
    char buf[16 * 64]; /* 16 levels of at most 39 + 19 digits */
    size_t k = 0;
    if (n > side->len) n = side->len;
    const Level *best = side->lv + side->start + side->len - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const Level *l = best - i;
        i128 key = side->descending ? l->skey : -l->skey;
        k += (size_t)digits_fast(exact_div_pow10((u128)key, SCALE - l->pp), buf + k);
        k += (size_t)digits_fast((u128)l->qty, buf + k);
        if (k > sizeof(buf) - 64) {
            crc = crc_update(crc, buf, k);
            k = 0;
        }
    }
    return crc_update(crc, buf, k);
}

static PyObject *kraken_crc32(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyObject_TypeCheck(args[0], &SideType) || !PyObject_TypeCheck(args[1], &SideType)) {
        PyErr_SetString(PyExc_TypeError, "kraken_crc32(asks: Side, bids: Side, n: int)");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[2]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    uint32_t crc = crc_side(0xFFFFFFFFu, (const Side *)args[0], n);
    crc = crc_side(crc, (const Side *)args[1], n);
    return PyLong_FromUnsignedLong((unsigned long)(crc ^ 0xFFFFFFFFu));
}

/* The break reasons of operators/book/checksum_book.py (interned at import, so equal to its constants). */
static PyObject *R_CHECKSUM, *R_CROSSED;

static int side_crossed(const Side *bids, const Side *asks) {
    if (bids->len == 0 || asks->len == 0) return 0;
    i128 b = bids->lv[bids->start + bids->len - 1].skey;  /* bids: skey = key */
    i128 a = -asks->lv[asks->start + asks->len - 1].skey; /* asks: skey = -key */
    return b >= a;
}

/* kraken_step(bids, asks, bid_levels, ask_levels, snapshot, cap, depth, checksum): one whole Kraken book
 * message, the steps of checksum_book.load_snapshot / apply_update (`OrderBook.load` or `.apply` with the
 * book's depth cap, then `_settle`) in the same order on the two compiled sides, in one call. Why: those
 * steps cost ~10 Python calls per message, each taking the GIL the client threads wait for. Returns None,
 * "checksum" or "crossed"; raises what the Python steps raise on a malformed level. */
static PyObject *kraken_step(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8 || !PyObject_TypeCheck(args[0], &SideType) || !PyObject_TypeCheck(args[1], &SideType)) {
        PyErr_SetString(PyExc_TypeError,
                        "kraken_step(bids: Side, asks: Side, bid_levels, ask_levels, snapshot, cap, depth, checksum)");
        return NULL;
    }
    Side *bids = (Side *)args[0], *asks = (Side *)args[1];
    int snapshot = PyObject_IsTrue(args[4]);
    if (snapshot < 0) return NULL;
    Py_ssize_t cap = PyLong_AsSsize_t(args[5]);
    if (cap == -1 && PyErr_Occurred()) return NULL;
    if (snapshot) { /* OrderBook.load: both sides, then the cap (remembered) */
        if (load_levels(bids, args[2]) < 0 || load_levels(asks, args[3]) < 0) return NULL;
        truncate_to(bids, cap, 1);
        truncate_to(asks, cap, 1);
    } else { /* OrderBook.apply: each side, then its cap */
        if (apply_levels(bids, args[2]) < 0) return NULL;
        if (bids->len > cap) truncate_to(bids, cap, 1);
        if (apply_levels(asks, args[3]) < 0) return NULL;
        if (asks->len > cap) truncate_to(asks, cap, 1);
    }
    if (args[6] != Py_None) { /* Kraken's own depth: it sends the levels that come back, so not remembered */
        Py_ssize_t depth = PyNumber_AsSsize_t(args[6], PyExc_OverflowError); /* as Side.truncate's "n" */
        if (depth == -1 && PyErr_Occurred()) return NULL;
        truncate_to(bids, depth, 0);
        truncate_to(asks, depth, 0);
    }
    PyObject *checksum = args[7];
    if (checksum != Py_None) {
        uint32_t crc = crc_side(0xFFFFFFFFu, asks, 10);
        crc = crc_side(crc, bids, 10) ^ 0xFFFFFFFFu;
        int mismatch;
        if (PyLong_CheckExact(checksum)) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(checksum, &overflow);
            if (v == -1 && !overflow && PyErr_Occurred()) return NULL;
            mismatch = overflow || v != (long long)crc;
        } else { /* anything else compares as Python compares it to the int */
            PyObject *ours = PyLong_FromUnsignedLong((unsigned long)crc);
            if (ours == NULL) return NULL;
            mismatch = PyObject_RichCompareBool(checksum, ours, Py_NE);
            Py_DECREF(ours);
            if (mismatch < 0) return NULL;
        }
        if (mismatch) return Py_NewRef(R_CHECKSUM);
    }
    if (side_crossed(bids, asks)) return Py_NewRef(R_CROSSED);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------ mid and spread text */

static int n_digits(u128 m) {
    int n = 1;
    while (m >= 10) {
        m /= 10;
        n++;
    }
    return n;
}

/* str(Decimal) of coefficient `m` (> 0) at exponent -places, or NULL (no exception) where str would use
 * exponent notation (adjusted exponent < -6). */
static PyObject *decimal_str(u128 m, int places) {
    int nd = n_digits(m);
    if (nd - 1 - places < -6) return NULL;
    return format_dec(m, places);
}

#define DECIMAL_PREC 28 /* the default decimal context: beyond it Decimal rounds, and we leave it to Decimal */

/* The texts BookTracker.row computes with Decimal from the best bid b and ask a: `(b + a) / 2` (quantized
 * to 18 places when finer) and `a - b`, from the best levels' integers. Sets both to new strs, or both to
 * NULL where that arithmetic would round or print in exponent form (empty or crossed book, > 28 digits,
 * tiny values): the caller then uses Decimal itself. Returns -1 on error. */
static int mid_spread_texts(const Side *bids, const Side *asks, PyObject **mid_text, PyObject **spread_text) {
    *mid_text = *spread_text = NULL;
    if (bids->len == 0 || asks->len == 0 || side_crossed(bids, asks)) return 0;
    const Level *bl = bids->lv + bids->start + bids->len - 1, *al = asks->lv + asks->start + asks->len - 1;
    int places = bl->pp > al->pp ? bl->pp : al->pp; /* Decimal's sum and difference keep the finer exponent */
    u128 b = exact_div_pow10((u128)bl->skey, SCALE - places), a = exact_div_pow10((u128)(-al->skey), SCALE - places);
    u128 sum = a + b, diff = a - b;
    if (n_digits(sum) > DECIMAL_PREC) return 0;
    /* exact quotient at the ideal exponent (-places), or one place finer when the sum is odd */
    u128 mid = sum & 1 ? sum * 5 : sum / 2;
    int mid_places = sum & 1 ? places + 1 : places;
    if (n_digits(mid) > DECIMAL_PREC) return 0;
    if (mid_places > SCALE) { /* quantize to 18 places, half-even: the dropped digit is always a 5 */
        mid /= 10;
        if (mid & 1) mid += 1;
        mid_places = SCALE;
    }
    if (mid == 0) return 0;
    PyObject *m = decimal_str(mid, mid_places);
    if (m == NULL) return PyErr_Occurred() ? -1 : 0;
    PyObject *d = decimal_str(diff, places);
    if (d == NULL) {
        Py_DECREF(m);
        return PyErr_Occurred() ? -1 : 0;
    }
    *mid_text = m;
    *spread_text = d;
    return 0;
}

/* mid_spread(bids, asks) -> (mid, spread) | None: see mid_spread_texts. */
static PyObject *mid_spread(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &SideType) || !PyObject_TypeCheck(args[1], &SideType)) {
        PyErr_SetString(PyExc_TypeError, "mid_spread(bids: Side, asks: Side)");
        return NULL;
    }
    PyObject *m, *d;
    if (mid_spread_texts((const Side *)args[0], (const Side *)args[1], &m, &d) < 0) return NULL;
    if (m == NULL) Py_RETURN_NONE;
    return Py_BuildValue("(NN)", m, d);
}

/* row_levels(bids, asks, depth) -> (bid levels, ask levels, best bid, best ask, mid, spread): what
 * BookTracker.row reads from the book, in one call (the best prices are the lists' first price texts;
 * None for an empty list, and then no mid and spread). mid and spread are None also where
 * mid_spread_texts leaves them to Decimal. */
static PyObject *row_levels(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyObject_TypeCheck(args[0], &SideType) || !PyObject_TypeCheck(args[1], &SideType)) {
        PyErr_SetString(PyExc_TypeError, "row_levels(bids: Side, asks: Side, depth: int)");
        return NULL;
    }
    const Side *bids = (const Side *)args[0], *asks = (const Side *)args[1];
    Py_ssize_t depth = PyLong_AsSsize_t(args[2]);
    if (depth == -1 && PyErr_Occurred()) return NULL;
    PyObject *b = top_list(bids, depth), *a = b == NULL ? NULL : top_list(asks, depth), *m = NULL, *d = NULL;
    int both = a != NULL && PyList_GET_SIZE(b) && PyList_GET_SIZE(a); /* as row: no best prices, no mid */
    if (a == NULL || (both && mid_spread_texts(bids, asks, &m, &d) < 0)) {
        Py_XDECREF(b);
        Py_XDECREF(a);
        return NULL;
    }
    PyObject *out = PyTuple_New(6);
    if (out == NULL) {
        Py_DECREF(b);
        Py_DECREF(a);
        Py_XDECREF(m);
        Py_XDECREF(d);
        return NULL;
    }
    PyObject *best_bid = PyList_GET_SIZE(b) ? PyTuple_GET_ITEM(PyList_GET_ITEM(b, 0), 0) : Py_None;
    PyObject *best_ask = PyList_GET_SIZE(a) ? PyTuple_GET_ITEM(PyList_GET_ITEM(a, 0), 0) : Py_None;
    Py_INCREF(best_bid);
    Py_INCREF(best_ask);
    PyTuple_SET_ITEM(out, 0, b);
    PyTuple_SET_ITEM(out, 1, a);
    PyTuple_SET_ITEM(out, 2, best_bid);
    PyTuple_SET_ITEM(out, 3, best_ask);
    PyTuple_SET_ITEM(out, 4, m ? m : Py_NewRef(Py_None));
    PyTuple_SET_ITEM(out, 5, d ? d : Py_NewRef(Py_None));
    return out;
}

/* A Kraken v2 one-book frame laid out exactly as Kraken sends it:
 *   {"channel":"book","type":"snapshot"|"update","data":[{"symbol":S,"bids":[L,...],"asks":[L,...],
 *    "checksum":N(,"timestamp":T)}]}   with L = {"price":NUM,"qty":NUM}, no whitespace, no escapes,
 * -> (is_snapshot, symbol, [[price, qty], ...] bids, asks, checksum, timestamp | None); None for
 * anything else (the Python parser then takes its general path). Numbers follow JSON's grammar and are
 * returned as their literal text, like json's parse_float=str (the checksum needs the text). This is
 * the connector's parse of its hottest frame, here because this is the one compiled module. */
typedef struct {
    const char *p, *end;
} Cursor;

static int lit(Cursor *c, const char *s) {
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int digits(Cursor *c) {
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    return c->p > start;
}

/* A JSON number as a new str, or NULL (no exception) if the text is not one. */
static PyObject *number(Cursor *c) {
    const char *start = c->p;
    if (c->p < c->end && *c->p == '-') c->p++;
    if (c->p < c->end && *c->p == '0') c->p++;
    else if (!digits(c)) return NULL;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digits(c)) return NULL;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        if (!digits(c)) return NULL;
    }
    return PyUnicode_DecodeUTF8(start, c->p - start, NULL);
}

/* The body of a JSON string without escapes or control characters (after the opening quote, through
 * the closing one) as a new str; NULL (no exception) otherwise or if empty. */
static PyObject *plain_string(Cursor *c) {
    const char *start = c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' || (unsigned char)*c->p < 0x20) return NULL;
        c->p++;
    }
    if (c->p == start || c->p >= c->end) return NULL;
    PyObject *out = PyUnicode_DecodeUTF8(start, c->p - start, NULL);
    if (out == NULL) PyErr_Clear();
    c->p++;
    return out;
}

/* `[L,...]` (after `[`) through `]` into a new list; NULL with no exception if malformed. */
static PyObject *level_list(Cursor *c) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    if (lit(c, "]")) return out;
    for (;;) {
        PyObject *price = NULL, *qty = NULL, *pair = NULL;
        if (!lit(c, "{\"price\":") || (price = number(c)) == NULL || !lit(c, ",\"qty\":") ||
            (qty = number(c)) == NULL || !lit(c, "}") || (pair = PyList_New(2)) == NULL) {
            Py_XDECREF(price);
            Py_XDECREF(qty);
            Py_DECREF(out);
            PyErr_Clear();
            return NULL;
        }
        PyList_SET_ITEM(pair, 0, price);
        PyList_SET_ITEM(pair, 1, qty);
        int r = PyList_Append(out, pair);
        Py_DECREF(pair);
        if (r < 0) {
            Py_DECREF(out);
            PyErr_Clear();
            return NULL;
        }
        if (lit(c, "]")) return out;
        if (!lit(c, ",")) {
            Py_DECREF(out);
            return NULL;
        }
    }
}

static PyObject *kraken_v2_book(PyObject *Py_UNUSED(module), PyObject *arg) {
    if (!PyUnicode_Check(arg)) Py_RETURN_NONE;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Cursor c = {s, s + n};
    PyObject *symbol = NULL, *bids = NULL, *asks = NULL, *ts = NULL, *checksum = NULL;
    int snapshot;
    if (!lit(&c, "{\"channel\":\"book\",\"type\":\"")) goto no;
    if (lit(&c, "snapshot\"")) snapshot = 1;
    else if (lit(&c, "update\"")) snapshot = 0;
    else goto no;
    if (!lit(&c, ",\"data\":[{\"symbol\":\"") || (symbol = plain_string(&c)) == NULL) goto no;
    if (!lit(&c, ",\"bids\":[") || (bids = level_list(&c)) == NULL) goto no;
    if (!lit(&c, ",\"asks\":[") || (asks = level_list(&c)) == NULL) goto no;
    if (!lit(&c, ",\"checksum\":")) goto no;
    const char *cs = c.p;
    if (c.p < c.end && *c.p == '0') c.p++;
    else if (!digits(&c)) goto no;
    if (c.p - cs > 18) goto no;
    long long sum = 0;
    for (const char *q = cs; q < c.p; q++) sum = sum * 10 + (*q - '0');
    if (lit(&c, ",\"timestamp\":\"") && (ts = plain_string(&c)) == NULL) goto no;
    if (!lit(&c, "}]}") || c.p != c.end) goto no;
    if ((checksum = PyLong_FromLongLong(sum)) == NULL) goto no;
    if (ts == NULL) {
        ts = Py_None;
        Py_INCREF(ts);
    }
    return Py_BuildValue("(ONNNNN)", snapshot ? Py_True : Py_False, symbol, bids, asks, checksum, ts);
no:
    Py_XDECREF(symbol);
    Py_XDECREF(bids);
    Py_XDECREF(asks);
    Py_XDECREF(ts);
    Py_XDECREF(checksum);
    PyErr_Clear();
    Py_RETURN_NONE;
}

static PyMethodDef levels_functions[] = {
    {"kraken_crc32", (PyCFunction)(void (*)(void))kraken_crc32, METH_FASTCALL,
     "kraken_crc32(asks, bids, n) -> int: Kraken's CRC32 over the best n levels of each side."},
    {"kraken_step", (PyCFunction)(void (*)(void))kraken_step, METH_FASTCALL,
     "kraken_step(bids, asks, bid_levels, ask_levels, snapshot, cap, depth, checksum) -> None | 'checksum' | "
     "'crossed': one Kraken book message (see operators/book/checksum_book.py)."},
    {"mid_spread", (PyCFunction)(void (*)(void))mid_spread, METH_FASTCALL,
     "mid_spread(bids, asks) -> (mid, spread) | None: the Decimal texts of BookTracker.row, or None."},
    {"row_levels", (PyCFunction)(void (*)(void))row_levels, METH_FASTCALL,
     "row_levels(bids, asks, depth) -> (bid levels, ask levels, best bid, best ask, mid, spread)."},
    {"kraken_v2_book", (PyCFunction)kraken_v2_book, METH_O,
     "kraken_v2_book(text) -> (is_snapshot, symbol, bids, asks, checksum, timestamp|None) | None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef levels_module = {
    PyModuleDef_HEAD_INIT, "operators.book._levels", "Compiled order-book side (see operators/book/levels.py).", -1,
    levels_functions,
};

PyMODINIT_FUNC PyInit__levels(void) {
    POW10[0] = 1;
    for (int k = 1; k < 39; k++) POW10[k] = POW10[k - 1] * 10;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        CRC_TABLE[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            CRC_TABLE[t][i] = (CRC_TABLE[t - 1][i] >> 8) ^ CRC_TABLE[0][CRC_TABLE[t - 1][i] & 0xFF];
    for (int i = 0; i < 100; i++) {
        DIGIT_PAIRS[2 * i] = (char)('0' + i / 10);
        DIGIT_PAIRS[2 * i + 1] = (char)('0' + i % 10);
    }
    for (int k = 0; k <= SCALE; k++) {
        uint64_t five = 1, inv;
        for (int j = 0; j < k; j++) five *= 5;
        inv = five; /* Newton: each step doubles the correct low bits (3 -> 6 -> ... -> 96) */
        for (int j = 0; j < 5; j++) inv *= 2 - five * inv;
        INV5[k] = inv;
        FITS64[k] = POW10[k] << 64;
    }
    if (PyType_Ready(&SideType) < 0) return NULL;
    if (R_CHECKSUM == NULL && (R_CHECKSUM = PyUnicode_InternFromString("checksum")) == NULL) return NULL;
    if (R_CROSSED == NULL && (R_CROSSED = PyUnicode_InternFromString("crossed")) == NULL) return NULL;
    PyObject *m = PyModule_Create(&levels_module);
    if (m == NULL) return NULL;
    Py_INCREF(&SideType);
    if (PyModule_AddObject(m, "Side", (PyObject *)&SideType) < 0) {
        Py_DECREF(&SideType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "LEVEL_BYTES", (long)sizeof(Level));
    return m;
}

/* Compiled inner loops of dataset validation: the per-byte work that numpy and str methods cannot do in
 * one pass. Each function has a pure-Python twin with the same result (dedup.py, pii.py); the twin runs
 * where this module was not built (the Lambda layer, a machine without a C compiler) and a test holds the
 * two equal.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define BINS 128
#define MIX1 0xBF58476D1CE4E5B9ULL

/* ASCII letters folded to lower case, every other byte unchanged (as bytes.lower()). */
static uint8_t fold[256];

/* MinHash signatures of byte 8-gram shingles, one-permutation hashing: see dedup.minhash_signatures. */
static PyObject *
minhash_signatures(PyObject *self, PyObject *texts)
{
    if (!PyList_Check(texts)) {
        PyErr_SetString(PyExc_TypeError, "texts must be a list of str");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(texts);
    PyObject *out = PyByteArray_FromStringAndSize(NULL, count * BINS * (Py_ssize_t)sizeof(uint64_t));
    if (out == NULL)
        return NULL;
    uint64_t *signature = (uint64_t *)PyByteArray_AS_STRING(out);
    memset(signature, 0xFF, (size_t)count * BINS * sizeof(uint64_t));
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *text = PyList_GET_ITEM(texts, index);
        if (!PyUnicode_Check(text)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "texts must be a list of str");
            return NULL;
        }
        Py_ssize_t size;
        const uint8_t *data = (const uint8_t *)PyUnicode_AsUTF8AndSize(text, &size);
        if (data == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        uint64_t *bins = signature + index * BINS;
        uint64_t window = 0;
        for (Py_ssize_t position = 0; position < size; position++) {
            /* the little-endian uint64 of the 8 bytes ending here, as numpy reads it */
            window = (window >> 8) | ((uint64_t)fold[data[position]] << 56);
            if (position < 7)
                continue;
            uint64_t hashed = window * MIX1;
            uint64_t *bin = bins + (hashed >> 57);
            *bin = hashed < *bin ? hashed : *bin;
        }
    }
    return out;
}

/* Bytes that may start a pattern the PII detectors look for (digits are counted separately). */
static uint8_t starts_pattern[256];

static int
followed_by(const uint8_t *data, Py_ssize_t size, Py_ssize_t position, const char *literal)
{
    size_t length = strlen(literal);
    return (size_t)(size - position - 1) >= length && memcmp(data + position + 1, literal, length) == 0;
}

enum { EMAIL = 1, DIGITS = 2, AWS = 4, BEARER = 8, PRIVATE_KEY = 16, ALL = 31 };

/* Which PII detectors the text can interest (a bit set): see pii._pii_triggers. */
static PyObject *
pii_triggers(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return NULL;
    }
    Py_ssize_t size;
    const uint8_t *data = (const uint8_t *)PyUnicode_AsUTF8AndSize(text, &size);
    if (data == NULL)
        return NULL;
    int digits = 0;
    long found = 0;
    Py_ssize_t position = 0;
    while (position < size && found != ALL) {
#ifdef __SSE2__
        /* Skip 16 bytes at a time while none of them is a digit or can start a pattern: most text. */
        if (position + 16 <= size) {
            __m128i bytes = _mm_loadu_si128((const __m128i *)(data + position));
            __m128i shifted = _mm_sub_epi8(bytes, _mm_set1_epi8('0'));
            /* '0'..'9' and '@', 'A', 'B' lie in one range: '0' + 0 .. '0' + 18 */
            __m128i in_range = _mm_cmpeq_epi8(_mm_min_epu8(shifted, _mm_set1_epi8(18)), shifted);
            __m128i others = _mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('P')),
                                          _mm_cmpeq_epi8(bytes, _mm_set1_epi8('b')));
            if (_mm_movemask_epi8(_mm_or_si128(in_range, others)) == 0) {
                digits = 0;
                position += 16;
                continue;
            }
        }
        Py_ssize_t stop = position + 16 < size ? position + 16 : size;
#else
        Py_ssize_t stop = size;
#endif
        for (; position < stop; position++) {
            uint8_t byte = data[position];
            digits = (uint8_t)(byte - '0') < 10 ? digits + 1 : 0;
            if (digits >= 3)
                found |= DIGITS;
            if (!starts_pattern[byte])
                continue;
            if (byte == '@')
                found |= EMAIL;
            else if (byte == 'A' &&
                     (followed_by(data, size, position, "KIA") || followed_by(data, size, position, "SIA") ||
                      followed_by(data, size, position, "BIA") || followed_by(data, size, position, "CCA")))
                found |= AWS;
            else if ((byte == 'B' || byte == 'b') && followed_by(data, size, position, "earer"))
                found |= BEARER;
            else if (byte == 'P' && followed_by(data, size, position, "RIVATE KEY"))
                found |= PRIVATE_KEY;
        }
    }
    return PyLong_FromLong(found);
}

static PyMethodDef methods[] = {
    {"minhash_signatures", minhash_signatures, METH_O,
     "minhash_signatures(texts: list[str]) -> bytearray: len(texts) x 128 little-endian uint64 bins"},
    {"pii_triggers", pii_triggers, METH_O, "pii_triggers(text: str) -> int: the bits of pii.py's triggers"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__scan(void)
{
    for (int byte = 0; byte < 256; byte++)
        fold[byte] = (byte >= 'A' && byte <= 'Z') ? (uint8_t)(byte | 0x20) : (uint8_t)byte;
    for (const char *first = "@ABbP"; *first; first++)
        starts_pattern[(uint8_t)*first] = 1;
    return PyModule_Create(&module);
}

/* Compiled inner loops of dataset validation: the per-byte work that numpy and str methods cannot do in
 * one pass. Each function has a pure-Python twin with the same result (fingerprint.py, pii.py); the twin
 * runs where this module was not built (the Lambda layer, a machine without a C compiler) and a test holds
 * the two equal, bit for bit.
 */
#define PY_SSIZE_T_CLEAN
/* The stable ABI of CPython 3.11 and later: one build (``_scan.abi3.so``) loads in every later Python, so the
 * Lambda layer carries it for the runtime's Python whichever Python built it. */
#define Py_LIMITED_API 0x030B0000
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the shingles and digests are little-endian words, as numpy reads them in the twins"
#endif

#define BINS 128
#define SEPARATOR 0x1F
#define MIX1 0xBF58476D1CE4E5B9ULL
#define MIX2 0x94D049BB133111EBULL
#define WORD_KEY 0x9E3779B97F4A7C15ULL
#define LENGTH_KEY 0xD6E8FEB86659FD93ULL
#define EMPTY UINT64_MAX

enum { EMAIL = 1, DIGITS = 2, AWS = 4, BEARER = 8, PRIVATE_KEY = 16, ALL = 31 };

/* ASCII letters folded to lower case, every other byte unchanged (as bytes.lower()). */
static uint8_t fold[256];
/* ASCII whitespace as bytes.strip() sees it: space, \t \n \v \f \r */
static uint8_t space[256];
/* Bytes that may start a pattern the PII detectors look for (digits are counted separately). */
static uint8_t starts_pattern[256];
/* JSON's whitespace: a line that starts with it may be blank */
static uint8_t json_space[256];
/* The ASCII characters str.isspace() counts: \t \n \v \f \r, \x1c-\x1f and space */
static uint8_t str_space[128];

static uint64_t
mix64(uint64_t value)
{
    value ^= value >> 30;
    value *= MIX1;
    value ^= value >> 27;
    value *= MIX2;
    return value ^ (value >> 31);
}

static int
followed_by(const uint8_t *data, Py_ssize_t size, Py_ssize_t position, const char *literal)
{
    size_t length = strlen(literal);
    return (size_t)(size - position - 1) >= length && memcmp(data + position + 1, literal, length) == 0;
}

/* Which PII detectors the bytes can interest (a bit set): see pii._pii_triggers. */
static long
triggers_of(const uint8_t *data, Py_ssize_t size)
{
    int digits = 0;
    long found = 0;
    Py_ssize_t position = 0;
    while (position < size && found != ALL) {
#ifdef __SSE2__
        /* Skip 16 bytes at a time while none of them starts a run of three digits or a pattern's first two
         * bytes: nearly all text. Outside a run of digits only: one that started before must be counted. */
        if (digits == 0 && position + 18 <= size) {
            __m128i first = _mm_loadu_si128((const __m128i *)(data + position));
            __m128i second = _mm_loadu_si128((const __m128i *)(data + position + 1));
            __m128i third = _mm_loadu_si128((const __m128i *)(data + position + 2));
            __m128i nine = _mm_set1_epi8(9), zero = _mm_set1_epi8('0');
#define IS_DIGIT(bytes) _mm_cmpeq_epi8(_mm_min_epu8(_mm_sub_epi8(bytes, zero), nine), _mm_sub_epi8(bytes, zero))
#define IS(bytes, byte) _mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte))
            __m128i digit_run = _mm_and_si128(_mm_and_si128(IS_DIGIT(first), IS_DIGIT(second)), IS_DIGIT(third));
            __m128i aws = _mm_and_si128(IS(first, 'A'), _mm_or_si128(_mm_or_si128(IS(second, 'K'), IS(second, 'S')),
                                                                     _mm_or_si128(IS(second, 'B'), IS(second, 'C'))));
            __m128i bearer = _mm_and_si128(IS(_mm_or_si128(first, _mm_set1_epi8(0x20)), 'b'), IS(second, 'e'));
            __m128i key = _mm_and_si128(IS(first, 'P'), IS(second, 'R'));
            __m128i any = _mm_or_si128(_mm_or_si128(digit_run, IS(first, '@')),
                                       _mm_or_si128(aws, _mm_or_si128(bearer, key)));
#undef IS_DIGIT
#undef IS
            if (_mm_movemask_epi8(any) == 0) {
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
    return found;
}

/* Copy `size` bytes with ASCII letters folded to lower case, 16 bytes at a time where SSE2 is there. */
static void
copy_folded(uint8_t *to, const uint8_t *from, size_t size)
{
    size_t position = 0;
#ifdef __SSE2__
    for (; position + 16 <= size; position += 16) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(from + position));
        __m128i shifted = _mm_sub_epi8(bytes, _mm_set1_epi8('A'));
        /* 'A'..'Z' is 'A' + 0 .. 'A' + 25: unsigned min with 25 leaves exactly those unchanged */
        __m128i upper = _mm_cmpeq_epi8(_mm_min_epu8(shifted, _mm_set1_epi8(25)), shifted);
        bytes = _mm_or_si128(bytes, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
        _mm_storeu_si128((__m128i *)(to + position), bytes);
    }
#endif
    for (; position < size; position++)
        to[position] = fold[from[position]];
}

/* The example digest of normalised bytes: see fingerprint._numpy_digests. */
static uint64_t
digest_of(const uint8_t *data, Py_ssize_t size)
{
    uint64_t total = 0;
    uint64_t word_index = 1;
    Py_ssize_t position = 0;
    for (; position + 8 <= size; position += 8, word_index++) { /* a fixed-size copy: one load */
        uint64_t word;
        memcpy(&word, data + position, 8);
        total += mix64(word + word_index * WORD_KEY);
    }
    if (position < size) { /* the last, partial word, zero-padded */
        uint64_t word = 0;
        memcpy(&word, data + position, (size_t)(size - position));
        total += mix64(word + word_index * WORD_KEY);
    }
    return mix64(total + (uint64_t)size * LENGTH_KEY);
}

/* One-permutation MinHash bins of the 8-byte windows: see fingerprint._numpy_signatures. Odd and even
 * windows go to separate bins, merged at the end: two independent chains of load-min-store per step
 * instead of one (5-10% faster than a single set of bins on this project's 2-core AMD EPYC). */
static void
signature_of(const uint8_t *data, Py_ssize_t size, uint64_t *bins)
{
    uint64_t odd[BINS];
    memset(odd, 0xFF, sizeof odd);
    Py_ssize_t position = 0;
    for (; position + 9 <= size; position += 2) {
        uint64_t even_window, odd_window;
        memcpy(&even_window, data + position, 8);
        memcpy(&odd_window, data + position + 1, 8);
        uint64_t even_hash = even_window * MIX1, odd_hash = odd_window * MIX1;
        uint64_t *even_bin = bins + (even_hash >> 57), *odd_bin = odd + (odd_hash >> 57);
        /* branch-free: new minima are unpredictable */
        *even_bin = even_hash < *even_bin ? even_hash : *even_bin;
        *odd_bin = odd_hash < *odd_bin ? odd_hash : *odd_bin;
    }
    if (position + 8 <= size) { /* the last window, when the count is odd */
        uint64_t window;
        memcpy(&window, data + position, 8);
        uint64_t hashed = window * MIX1;
        uint64_t *bin = bins + (hashed >> 57);
        *bin = hashed < *bin ? hashed : *bin;
    }
    for (int bin = 0; bin < BINS; bin++)
        bins[bin] = odd[bin] < bins[bin] ? odd[bin] : bins[bin];
}

/* Empty bins filled from the next non-empty bin to the right (circularly), mixed with the distance; a
 * record with no shingle at all gets bins unique to it: see fingerprint._densify. */
static void
densify(uint64_t *bins, uint64_t record)
{
    int empty = 0, full = 0;
    for (int bin = 0; bin < BINS; bin++) {
        if (bins[bin] == EMPTY)
            empty = 1;
        else
            full = 1;
    }
    if (!empty)
        return;
    if (!full) {
        for (int bin = 0; bin < BINS; bin++)
            bins[bin] = mix64(record * BINS + (uint64_t)bin + (1ULL << 60)) | (1ULL << 63);
        return;
    }
    uint64_t filled[BINS];
    for (int bin = 0; bin < BINS; bin++) {
        filled[bin] = bins[bin];
        for (int distance = 1; filled[bin] == EMPTY; distance++) {
            uint64_t source = bins[(bin + distance) % BINS];
            if (source != EMPTY)
                filled[bin] = mix64(source + (uint64_t)distance);
        }
    }
    memcpy(bins, filled, sizeof filled);
}

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
    return PyLong_FromLong(triggers_of(data, size));
}

/* fingerprint(batch, bands, rows, first) for records given as lists of texts, the first of them record
 * number `first` of the dataset: see fingerprint.fingerprints. bands == 0: no band keys. */
static PyObject *
fingerprint(PyObject *self, PyObject *args)
{
    PyObject *batch;
    Py_ssize_t bands, rows, first;
    if (!PyArg_ParseTuple(args, "O!nnn", &PyList_Type, &batch, &bands, &rows, &first))
        return NULL;
    if (bands < 0 || rows < 0 || bands * rows > BINS || (bands > 0 && rows == 0)) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= bands * rows <= 128");
        return NULL;
    }
    Py_ssize_t count = PyList_Size(batch);
    PyObject *digests = PyBytes_FromStringAndSize(NULL, count * 8);
    PyObject *triggers = PyBytes_FromStringAndSize(NULL, count);
    PyObject *keys = Py_None;
    uint8_t *joined = NULL;
    size_t capacity = 0;
    uint64_t weights[BINS], salts[BINS];
    for (Py_ssize_t row = 0; row < rows; row++)
        weights[row] = mix64((uint64_t)row + 1);
    for (Py_ssize_t band = 0; band < bands; band++)
        salts[band] = mix64((uint64_t)band);
    if (bands)
        keys = PyBytes_FromStringAndSize(NULL, count * bands * 8);
    else
        Py_INCREF(Py_None);
    capacity = 4096;
    joined = malloc(capacity); /* grown for longer records below */
    if (joined == NULL)
        PyErr_NoMemory();
    if (digests == NULL || triggers == NULL || keys == NULL || joined == NULL)
        goto fail;
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *texts = PyList_GetItem(batch, index);
        if (!PyList_Check(texts)) {
            PyErr_SetString(PyExc_TypeError, "each record must be a list of str");
            goto fail;
        }
        /* the record's texts joined by the separator, as "\x1f".join(texts).encode(), folded as they are
         * copied; the triggers of the joined text are those of its parts (no pattern spans the separator) */
        size_t size = 0;
        long found = 0;
        for (Py_ssize_t part = 0; part < PyList_Size(texts); part++) {
            PyObject *text = PyList_GetItem(texts, part);
            if (!PyUnicode_Check(text)) {
                PyErr_SetString(PyExc_TypeError, "each record must be a list of str");
                goto fail;
            }
            Py_ssize_t length;
            const char *data = PyUnicode_AsUTF8AndSize(text, &length);
            if (data == NULL)
                goto fail;
            if (size + (size_t)length + 1 > capacity) {
                capacity = 2 * (size + (size_t)length + 1);
                uint8_t *grown = realloc(joined, capacity);
                if (grown == NULL) {
                    PyErr_NoMemory();
                    goto fail;
                }
                joined = grown;
            }
            if (part)
                joined[size++] = SEPARATOR;
            if (found != ALL)
                found |= triggers_of((const uint8_t *)data, length);
            copy_folded(joined + size, (const uint8_t *)data, (size_t)length);
            size += (size_t)length;
        }
        PyBytes_AsString(triggers)[index] = (char)found;
        /* normalised: outer ASCII whitespace stripped (folding leaves whitespace as it is) */
        size_t start = 0, end = size;
        while (start < end && space[joined[start]])
            start++;
        while (end > start && space[joined[end - 1]])
            end--;
        uint64_t digest = digest_of(joined + start, (Py_ssize_t)(end - start));
        memcpy(PyBytes_AsString(digests) + index * 8, &digest, 8);
        if (bands) {
            uint64_t bins[BINS];
            memset(bins, 0xFF, sizeof bins);
            signature_of(joined + start, (Py_ssize_t)(end - start), bins);
            densify(bins, (uint64_t)first + (uint64_t)index);
            uint64_t *out = (uint64_t *)PyBytes_AsString(keys) + index * bands;
            for (Py_ssize_t band = 0; band < bands; band++) {
                uint64_t sum = 0;
                for (Py_ssize_t row = 0; row < rows; row++)
                    sum += bins[band * rows + row] * weights[row];
                out[band] = sum ^ salts[band];
            }
        }
    }
    free(joined);
    return Py_BuildValue("(NNN)", digests, keys, triggers);
fail:
    free(joined);
    Py_XDECREF(digests);
    Py_XDECREF(triggers);
    Py_XDECREF(keys);
    return NULL;
}

/* 1 when every character of the str is whitespace, as str.isspace() (a non-empty str); -1 on error. Decided
 * from the UTF-8 bytes, which end the loop at the first visible ASCII character (nearly always the first);
 * only a str of ASCII spaces and other characters asks str.isspace itself. */
static int
all_space(PyObject *text)
{
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(text, &size);
    if (data == NULL)
        return -1;
    int ascii = 1;
    for (Py_ssize_t index = 0; index < size; index++) {
        uint8_t byte = (uint8_t)data[index];
        if (byte >= 0x80)
            ascii = 0;
        else if (!str_space[byte])
            return 0;
    }
    if (size == 0)
        return 0;
    if (ascii)
        return 1;
    PyObject *answer = PyObject_CallMethod(text, "isspace", NULL);
    if (answer == NULL)
        return -1;
    int blank = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return blank;
}

/* chat_texts(records) for decoded fast.ChatRecord structs: each record's message contents, or None as soon
 * as one record breaks a rule the schema cannot express (turn order, whitespace-only content). The twin is
 * fast._chat_texts. */
static PyObject *
chat_texts(PyObject *self, PyObject *records)
{
    if (!PyList_Check(records)) {
        PyErr_SetString(PyExc_TypeError, "records must be a list");
        return NULL;
    }
    static PyObject *messages_name, *role_name, *content_name;
    if (messages_name == NULL) {
        messages_name = PyUnicode_InternFromString("messages");
        role_name = PyUnicode_InternFromString("role");
        content_name = PyUnicode_InternFromString("content");
        if (messages_name == NULL || role_name == NULL || content_name == NULL)
            return NULL;
    }
    Py_ssize_t count = PyList_Size(records);
    PyObject *out = PyList_New(count);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *messages = PyObject_GetAttr(PyList_GetItem(records, index), messages_name);
        if (messages == NULL)
            goto fail;
        Py_ssize_t size = PyList_Check(messages) ? PyList_Size(messages) : 0;
        PyObject *texts = PyList_New(size);
        if (texts == NULL) {
            Py_DECREF(messages);
            goto fail;
        }
        int valid = size > 0;
        char expected = 'u'; /* system first (optional), then user/assistant alternating, assistant last */
        char last = 0;
        for (Py_ssize_t position = 0; valid && position < size; position++) {
            PyObject *message = PyList_GetItem(messages, position);
            PyObject *role = PyObject_GetAttr(message, role_name);
            PyObject *content = role == NULL ? NULL : PyObject_GetAttr(message, content_name);
            if (content == NULL) {
                Py_XDECREF(role);
                Py_DECREF(messages);
                Py_DECREF(texts);
                goto fail;
            }
            if (PyUnicode_CompareWithASCIIString(role, "system") == 0)
                last = 's', valid = position == 0;
            else if (PyUnicode_CompareWithASCIIString(role, "user") == 0)
                last = 'u', valid = expected == 'u', expected = 'a';
            else if (PyUnicode_CompareWithASCIIString(role, "assistant") == 0)
                last = 'a', valid = expected == 'a', expected = 'u';
            else
                valid = 0;
            Py_DECREF(role);
            int blank = PyUnicode_Check(content) ? all_space(content) : 1;
            if (blank < 0) {
                Py_DECREF(content);
                Py_DECREF(messages);
                Py_DECREF(texts);
                goto fail;
            }
            if (blank)
                valid = 0;
            PyList_SetItem(texts, position, content); /* steals the reference */
        }
        Py_DECREF(messages);
        if (!valid || last != 'a') {
            Py_DECREF(texts);
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        PyList_SetItem(out, index, texts);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* line_summary(data) -> (lines, a line starts with JSON whitespace): see reader._line_summary. */
static PyObject *
line_summary(PyObject *self, PyObject *block)
{
    Py_buffer view;
    if (PyObject_GetBuffer(block, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *data = view.buf;
    Py_ssize_t size = view.len;
    Py_ssize_t lines = 0;
    int blank = 0;
    if (size > 0) {
        lines = 1;
        blank = json_space[(uint8_t)data[0]];
        const char *cursor = data, *end = data + size;
        const char *newline;
        while ((newline = memchr(cursor, '\n', (size_t)(end - cursor))) != NULL && newline + 1 < end) {
            lines++;
            blank |= json_space[(uint8_t)newline[1]];
            cursor = newline + 1;
        }
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nO)", lines, blank ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"fingerprint", fingerprint, METH_VARARGS,
     "fingerprint(batch: list[list[str]], bands: int, rows: int, first: int) -> (digests: bytes, "
     "band_keys: bytes | None, triggers: bytes)"},
    {"pii_triggers", pii_triggers, METH_O, "pii_triggers(text: str) -> int: the bits of pii.py's triggers"},
    {"line_summary", line_summary, METH_O, "line_summary(block: bytes-like) -> (lines, starts_with_space)"},
    {"chat_texts", chat_texts, METH_O, "chat_texts(records: list[ChatRecord]) -> list[list[str]] | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__scan(void)
{
    for (int byte = 0; byte < 256; byte++)
        fold[byte] = (byte >= 'A' && byte <= 'Z') ? (uint8_t)(byte | 0x20) : (uint8_t)byte;
    for (const char *first = " \t\n\v\f\r"; *first; first++)
        space[(uint8_t)*first] = 1;
    for (const char *first = "@ABbP"; *first; first++)
        starts_pattern[(uint8_t)*first] = 1;
    for (const char *first = " \t\n\r"; *first; first++)
        json_space[(uint8_t)*first] = 1;
    for (int byte = 0; byte < 128; byte++)
        str_space[byte] = (byte >= 0x09 && byte <= 0x0D) || (byte >= 0x1C && byte <= 0x20);
    return PyModule_Create(&module);
}

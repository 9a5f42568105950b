/*
 * sha256.c: SHA-256 (FIPS 180-4) as a hex digest, in plain C: sha256_hex_digest().
 * Included by sysmodule.c, where it is ociruntime._native._sys.sha256_hex (the wrapper
 * below, compiled only beside Python.h, which lists SHA256_METHODS), and by shim_front.c,
 * the shim binary, for the starter's socket name.
 *
 * Why not hashlib: importing it loads OpenSSL's libcrypto through _hashlib, ~4 ms of
 * CPU in a fresh interpreter, and two per-container paths need one digest each: the
 * shim's `start` (its server's socket name) and a create with a seccomp profile (the
 * compiled program's cache key).  CPython's own _sha256/_sha2 are private modules.
 * tests/unit/test_sha256.py holds this to hashlib, the oracle.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

#define SHA256_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* One 64-byte block into the state h. */
static void sha256_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, k, t1, t2;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16
               | (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = SHA256_ROTR(w[i - 15], 7) ^ SHA256_ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = SHA256_ROTR(w[i - 2], 17) ^ SHA256_ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; k = h[7];
    for (i = 0; i < 64; i++) {
        t1 = k + (SHA256_ROTR(e, 6) ^ SHA256_ROTR(e, 11) ^ SHA256_ROTR(e, 25))
             + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
        t2 = (SHA256_ROTR(a, 2) ^ SHA256_ROTR(a, 13) ^ SHA256_ROTR(a, 22))
             + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

/* The digest of p[0..n) in lower-case hex (hashlib's hexdigest), NUL-terminated. */
static void sha256_hex_digest(const unsigned char *p, size_t n, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char tail[128];
    size_t rest, full, tail_len;
    uint64_t bits;
    int i;

    full = n - n % 64;
    for (rest = 0; rest < full; rest += 64)
        sha256_block(h, p + rest);
    /* the last partial block, 0x80, zeros, the length in bits (big-endian): 1 or 2 blocks */
    tail_len = n % 64 < 56 ? 64 : 128;
    memset(tail, 0, sizeof(tail));
    memcpy(tail, p + full, n % 64);
    tail[n % 64] = 0x80;
    bits = (uint64_t)n * 8;
    for (i = 0; i < 8; i++)
        tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha256_block(h, tail);
    if (tail_len == 128)
        sha256_block(h, tail + 64);
    for (i = 0; i < 32; i++) {
        unsigned char byte = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[64] = '\0';
}

#ifdef Py_PYTHON_H
/* sha256_hex(data: bytes) -> str: the digest in lower-case hex, as hashlib's hexdigest. */
static PyObject *sys_sha256_hex(PyObject *self, PyObject *args)
{
    char out[65];
    PyObject *data;
    char *p;
    Py_ssize_t n;

    if (!PyArg_ParseTuple(args, "O!", &PyBytes_Type, &data))
        return NULL;
    if (PyBytes_AsStringAndSize(data, &p, &n) < 0)
        return NULL;
    sha256_hex_digest((const unsigned char *)p, (size_t)n, out);
    return PyUnicode_FromString(out);
}

#define SHA256_METHODS {"sha256_hex", sys_sha256_hex, METH_VARARGS, NULL},
#endif

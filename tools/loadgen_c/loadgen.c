/* loadgen: many lean players of a tickserver match from one thread (io_uring, or epoll).
 *
 * Owns the load of the players-per-core sweep (`python -m tools.bench --sweep`), so that the
 * server's capacity and not the generator's is what the sweep finds. It speaks just enough of
 * PROTOCOL.md: the HTTP upgrade to PATH (no extensions), masked client frames, `hello` as msgpack,
 * then per `update` received: read its `tick` from the first bytes (the server writes every update
 * as a map starting `t`, `tick`) and answer with one `input` (`seq` from 1, `ack` the tick, a
 * random walk on the first two fields of `welcome.ruleset.inputs`, zeros after; each within
 * [-1, 1], which every field of the drift and arena rulesets holds). Large frames are read only
 * as far as needed and the rest skipped without copying. Nothing is decoded or verified beyond
 * that: a few `tools.client.GameClient` run beside it for that.
 *
 * Timeline: connect CLIENTS at RATE per second (at most TIMEOUT s for all to be welcomed), WARMUP
 * s, a measured window of DURATION s, then a close 1000 to everyone. Loopback only; every phase is
 * bounded. Prints JSON lines on stdout: {"event": "window_start"} and {"event": "window_end"}
 * when the window opens and closes (a driver snapshots the server's CPU then), and the summary
 * last: connected, welcomed, updates/s per client over the window (min, p1, p50, mean), its own
 * CPU over the window (cores, and µs per update received and answered), the mean update's bytes,
 * the I/O path it used (`io`: uring or epoll, `io_note`: why not uring), how often it waited for
 * the kernel over the window (`waits_per_s`: updates per wait is its batch), errors (count and the first
 * few) and closes by code.
 *
 * Cost: what it spends per update is almost all kernel time, and on loopback that includes the
 * server socket's receive path for each input (run in the sender's context). Connections are set up
 * on epoll; once open, each moves to an io_uring (raw system calls, see below) so that a whole batch
 * of updates is received and answered with one system call instead of a recv and a send each.
 * `python -m tools.genbench` measures it against build/feeder (BENCHMARKS.md, "Players per core").
 *
 * Build: `make loadgen` (gcc -O2), output in build/loadgen.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define MAX_CLIENTS 20000
#define PEEK 4080          /* bytes of a data frame handed over; the rest is skipped */
#define HOLD (PEEK + 16)   /* carry-over between reads: an incomplete header plus its peek */
#define OUTBUF 2048
#define READBUF (256 * 1024)
#define MAX_ERR_MSGS 5

enum { S_CONNECTING, S_HTTP, S_OPEN, S_CLOSING, S_DONE };

typedef struct {
    int fd, state, index, n_inputs, welcomed;
    int uring;                /* its reads and writes go through the ring (it left epoll once open) */
    int sock;                 /* the socket while the ring still holds it (a read armed, a write in flight) */
    int in_flight;            /* bytes of out handed to the ring and not yet completed */
    int dx, dy;
    uint32_t seq;
    uint64_t rng;
    uint64_t skip;            /* payload bytes still to skip */
    uint64_t frame_len;       /* the length of the frame being handled */
    uint64_t updates, updates_at_start, updates_at_end;
    unsigned char mask[4];
    int hold_len, out_len;
    unsigned char hold[HOLD];
    unsigned char out[OUTBUF];
} Conn;

static Conn *conns;
static int n_clients = 100, port = 0, epfd;
static double rate = 1000, warmup = 3, duration = 10, timeout_s = 60;
static const char *path = "/ws";
static uint64_t seed = 1;
static long errors;
static char err_msgs[MAX_ERR_MSGS][160];
static long closes[5000];
static int n_epoll; /* connections still on epoll (connecting, or on the ring-less path) */
static int window_phase; /* 0 before, 1 in, 2 after */
static uint64_t window_bytes, window_updates; /* update bytes and updates received in the window */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 30; x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27; x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void error_msg(Conn *c, const char *fmt, ...) {
    errors++;
    if (errors <= MAX_ERR_MSGS) {
        char *m = err_msgs[errors - 1];
        int n = snprintf(m, 160, "c%d: ", c ? c->index : -1);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m + n, 160 - n, fmt, ap);
        va_end(ap);
        for (char *p = m; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = '?';
    }
}

static void uring_close(Conn *c);

static void drop(Conn *c) {
    if (c->fd >= 0) {
        if (c->uring) {
            c->fd = -1;  /* gone for everything else; the socket closes once the ring lets go of it */
            if (!c->in_flight) uring_close(c);
        } else {
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
            n_epoll--;
        }
    }
    c->state = S_DONE;
}

static void want_out(Conn *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void uring_send(Conn *c);

static void flush(Conn *c) {
    if (c->uring) { if (!c->in_flight && c->out_len > 0) uring_send(c); return; }
    while (c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) { want_out(c, 1); return; }
            if (c->state != S_CLOSING) error_msg(c, "send: %s", strerror(errno));
            drop(c);
            return;
        }
        memmove(c->out, c->out + n, c->out_len - n);
        c->out_len -= n;
    }
}

static void queue(Conn *c, const void *data, int len) {
    if (c->fd < 0) return;
    if (c->out_len + len > OUTBUF) { error_msg(c, "output buffer full (the server reads too slowly)"); drop(c); return; }
    int was_empty = c->out_len == 0;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    if (was_empty) {
        flush(c);
        if (c->fd >= 0 && c->out_len == 0) return;
    }
}

/* One final masked client frame. */
static void send_frame(Conn *c, int opcode, const unsigned char *payload, int n) {
    unsigned char f[256];
    if (n > 125) n = 125;
    f[0] = 0x80 | opcode;
    f[1] = 0x80 | n;
    for (int i = 0; i < 4; i++) f[2 + i] = c->mask[i];
    for (int i = 0; i < n; i++) f[6 + i] = payload[i] ^ c->mask[i & 3];
    queue(c, f, 6 + n);
}

static void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static void send_input(Conn *c, uint32_t tick) {
    /* {"t": "input", "seq": u32, "in": [dx, dy, 0...], "ack": u32} */
    unsigned char m[64];
    int k = 0;
    static const unsigned char head[] = {0x84, 0xa1, 't', 0xa5, 'i', 'n', 'p', 'u', 't', 0xa3, 's', 'e', 'q', 0xce};
    memcpy(m, head, sizeof head); k = sizeof head;
    put32(m + k, ++c->seq); k += 4;
    m[k++] = 0xa2; m[k++] = 'i'; m[k++] = 'n';
    m[k++] = 0x90 | c->n_inputs;
    c->rng = mix(c->rng + 0x9E3779B97F4A7C15ULL);
    if (!(c->dx || c->dy) || c->rng % 40 == 0) {
        static const int oct[8][2] = {{1, 0}, {1, 1}, {0, 1}, {-1, 1}, {-1, 0}, {-1, -1}, {0, -1}, {1, -1}};
        int o = (c->rng >> 32) % 8;
        c->dx = oct[o][0]; c->dy = oct[o][1];
    }
    for (int i = 0; i < c->n_inputs; i++) {
        int v = i == 0 ? c->dx : i == 1 ? c->dy : 0;
        m[k++] = (unsigned char)(int8_t)v; /* positive/negative fixint */
    }
    m[k++] = 0xa3; m[k++] = 'a'; m[k++] = 'c'; m[k++] = 'k'; m[k++] = 0xce;
    put32(m + k, tick); k += 4;
    send_frame(c, 2, m, k);
}

static int has_prefix(const unsigned char *p, int n, const char *s, int sn) { return n >= sn && memcmp(p, s, sn) == 0; }

static void on_message(Conn *c, const unsigned char *p, int n) {
    /* update: fixmap, "t": "update", "tick": uint */
    if (n >= 16 && (p[0] & 0xf0) == 0x80 && has_prefix(p + 1, n - 1, "\xa1t\xa6update\xa4tick", 14)) {
        uint32_t tick;
        const unsigned char *q = p + 15;
        int left = n - 15;
        if (q[0] < 0x80) tick = q[0];
        else if (q[0] == 0xcc && left >= 2) tick = q[1];
        else if (q[0] == 0xcd && left >= 3) tick = (q[1] << 8) | q[2];
        else if (q[0] == 0xce && left >= 5) tick = ((uint32_t)q[1] << 24) | (q[2] << 16) | (q[3] << 8) | q[4];
        else { error_msg(c, "unreadable update tick"); return; }
        c->updates++;
        if (window_phase == 1) window_updates++, window_bytes += c->frame_len;
        if (c->welcomed && c->state == S_OPEN) send_input(c, tick);
        return;
    }
    if (n >= 4 && (p[0] & 0xf0) == 0x80 && p[1] == 0xa1 && p[2] == 't') {
        if (has_prefix(p + 3, n - 3, "\xa7welcome", 8)) {
            const unsigned char *k = memmem(p, n, "\xa6inputs", 7);
            if (!k || k + 7 >= p + n || (k[7] & 0xf0) != 0x90) { error_msg(c, "welcome without ruleset inputs in its first %d bytes", PEEK); return; }
            c->n_inputs = k[7] & 0x0f;
            if (c->n_inputs > 15) c->n_inputs = 15;
            c->welcomed = 1;
            return;
        }
        if (has_prefix(p + 3, n - 3, "\xa5" "error", 6)) {
            const unsigned char *r = memmem(p, n, "\xa6reason", 7);
            if (r && r + 8 < p + n && (r[7] & 0xe0) == 0xa0) {
                int len = r[7] & 0x1f;
                if (r + 8 + len <= p + n) { error_msg(c, "server error: %.*s", len, r + 8); return; }
            }
            error_msg(c, "server error");
            return;
        }
        return; /* roster, pong, moved, anything newer: ignored */
    }
    error_msg(c, "unreadable message of %d bytes", n);
}

static void on_frame(Conn *c, int fin, int opcode, const unsigned char *p, int n) {
    switch (opcode) {
    case 2:
        if (!fin) { error_msg(c, "fragmented message"); return; }
        on_message(c, p, n);
        return;
    case 8: {
        int code = n >= 2 ? (p[0] << 8) | p[1] : 1005;
        if (code >= 0 && code < 5000) closes[code]++;
        if (c->state == S_OPEN && code != 1000 && code != 1001) error_msg(c, "closed by server %d %.*s", code, n > 2 ? n - 2 : 0, p + 2);
        if (c->state == S_OPEN) send_frame(c, 8, p, n >= 2 ? 2 : 0);
        drop(c);
        return;
    }
    case 9: send_frame(c, 10, p, n); return;
    case 10: return;
    default: error_msg(c, "unexpected opcode %d", opcode); drop(c); return;
    }
}

static void on_ws_bytes(Conn *c, unsigned char *data, int len) {
    int pos = 0;
    while (pos < len && c->fd >= 0) {
        if (c->skip) {
            uint64_t k = c->skip < (uint64_t)(len - pos) ? c->skip : (uint64_t)(len - pos);
            c->skip -= k; pos += k;
            continue;
        }
        int avail = len - pos;
        if (avail < 2) break;
        unsigned char b0 = data[pos], b1 = data[pos + 1];
        if (b0 & 0x70) { error_msg(c, "reserved bits in frame header"); drop(c); return; }
        if (b1 & 0x80) { error_msg(c, "the server sent a masked frame"); drop(c); return; }
        uint64_t L = b1 & 0x7f;
        int h = 2;
        if (L == 126) { if (avail < 4) break; L = (data[pos + 2] << 8) | data[pos + 3]; h = 4; }
        else if (L == 127) {
            if (avail < 10) break;
            L = 0;
            for (int i = 0; i < 8; i++) L = (L << 8) | data[pos + 2 + i];
            h = 10;
        }
        int opcode = b0 & 0x0f;
        uint64_t take = L;
        if (L > PEEK) {
            if (opcode >= 8) { error_msg(c, "control frame of %llu bytes", (unsigned long long)L); drop(c); return; }
            take = PEEK;
        }
        if ((uint64_t)(avail - h) < take) break;
        c->frame_len = L;
        on_frame(c, b0 & 0x80, opcode, data + pos + h, (int)take);
        pos += h + take;
        c->skip = L - take;
    }
    if (c->fd < 0) return;
    int rest = len - pos;
    if (rest > HOLD) { error_msg(c, "carry-over of %d bytes", rest); drop(c); return; }
    memmove(c->hold, data + pos, rest);
    c->hold_len = rest;
}

static unsigned char rbuf[HOLD + READBUF];

static void on_readable(Conn *c) {
    for (;;) {
        int h = c->hold_len;
        memcpy(rbuf, c->hold, h);
        ssize_t n = recv(c->fd, rbuf + h, READBUF, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (c->state != S_CLOSING) error_msg(c, "recv: %s", strerror(errno));
            drop(c);
            return;
        }
        if (n == 0) {
            if (c->state != S_CLOSING) { error_msg(c, "connection closed without a close frame"); closes[1006]++; }
            drop(c);
            return;
        }
        int len = h + n;
        if (c->state == S_HTTP) {
            unsigned char *end = memmem(rbuf, len, "\r\n\r\n", 4);
            if (!end) {
                if (len > HOLD) { error_msg(c, "handshake answer too long"); drop(c); return; }
                memcpy(c->hold, rbuf, len); c->hold_len = len;
                continue;
            }
            if (len < 12 || memcmp(rbuf, "HTTP/1.1 101", 12) != 0) {
                int l = 0;
                while (l < len && rbuf[l] != '\r') l++;
                error_msg(c, "handshake refused: %.*s", l > 60 ? 60 : l, rbuf);
                drop(c);
                return;
            }
            c->state = S_OPEN;
            c->hold_len = 0;
            unsigned char hello[64];
            char name[16];
            int nl = snprintf(name, sizeof name, "c%d", c->index);
            int k = 0;
            /* {"t": "hello", "v": 1, "name": name, "roster_deltas": true}: a join costs one roster entry, not the roster */
            memcpy(hello, "\x84\xa1t\xa5hello\xa1v\x01\xa4name", 17); k = 17;
            hello[k++] = 0xa0 | nl;
            memcpy(hello + k, name, nl); k += nl;
            memcpy(hello + k, "\xadroster_deltas\xc3", 15); k += 15;
            send_frame(c, 2, hello, k);
            if (c->fd < 0) return;
            int off = (int)(end + 4 - rbuf);
            on_ws_bytes(c, rbuf + off, len - off);
        } else {
            on_ws_bytes(c, rbuf, len);
        }
        if (c->fd < 0 || n < READBUF) return; /* drained (level-triggered: no recv just to see EAGAIN) */
    }
}

/* -- io_uring (raw system calls, no liburing): the open connections' reads and writes --
 *
 * Once a connection is open it leaves epoll: one multishot recv per socket fills buffers of a
 * registered buffer ring, and each input is a send queued in the ring. A single io_uring_enter per
 * loop submits every queued send and waits for completions; with DEFER_TASKRUN the kernel does the
 * receives when we enter, all of the ready ones in one batch, and wakes us no earlier than asked.
 * Where the ring cannot be set up (an old kernel, a sandbox that forbids it) or with --io epoll,
 * everything stays on epoll: one recv and one send per update. */
#define RING_ENTRIES 8192
#define CQ_ENTRIES 65536
#define BUFSZ 8192           /* an update of the sweep fits in one (the first 4 KB are all that is read of larger ones) */
enum { TAG_RECV = 0, TAG_SEND = 1, TAG_EPOLL = 2 };

struct getevents_arg { uint64_t sigmask; uint32_t sigmask_sz; uint32_t pad; uint64_t ts; };

static struct {
    int fd;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    unsigned sq_entries, tail;
    struct io_uring_buf_ring *br;
    unsigned char *bufs;
    uint16_t br_tail;
    unsigned nbuf;          /* receive buffers in the ring: a power of 2, two per client (256 to 32768) */
} ring = {.fd = -1};
static int use_uring = 1;                /* --io uring (default) or epoll; 0 also when the ring is unavailable */
static const char *uring_why = "";       /* why it is not used */
static uint64_t uring_rearms;            /* multishot receives that ended and were armed again */

static int ring_setup(void) {
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = CQ_ENTRIES;
    int fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (fd < 0) { uring_why = strerror(errno); return -1; }
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned), cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) { uring_why = "no IORING_FEAT_SINGLE_MMAP"; close(fd); return -1; }
    size_t sz = sq_sz > cq_sz ? sq_sz : cq_sz;
    unsigned char *sq = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    ring.sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                     IORING_OFF_SQES);
    if (sq == MAP_FAILED || ring.sqes == MAP_FAILED) { uring_why = "mmap of the ring failed"; close(fd); return -1; }
    ring.sq_head = (unsigned *)(sq + p.sq_off.head); ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
    ring.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask); ring.sq_array = (unsigned *)(sq + p.sq_off.array);
    ring.cq_head = (unsigned *)(sq + p.cq_off.head); ring.cq_tail = (unsigned *)(sq + p.cq_off.tail);
    ring.cq_mask = (unsigned *)(sq + p.cq_off.ring_mask); ring.cqes = (struct io_uring_cqe *)(sq + p.cq_off.cqes);
    ring.sq_entries = p.sq_entries;
    for (unsigned i = 0; i < p.sq_entries; i++) ring.sq_array[i] = i;
    ring.tail = *ring.sq_tail;
    for (ring.nbuf = 256; ring.nbuf < 2u * (unsigned)n_clients && ring.nbuf < 32768; ring.nbuf *= 2) {}
    ring.br = mmap(NULL, ring.nbuf * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ring.bufs = malloc((size_t)ring.nbuf * BUFSZ);
    if (ring.br == MAP_FAILED || !ring.bufs) { uring_why = "out of memory"; close(fd); return -1; }
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)ring.br, .ring_entries = ring.nbuf, .bgid = 0};
    if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) {
        uring_why = strerror(errno); close(fd); return -1;
    }
    for (unsigned i = 0; i < ring.nbuf; i++) {
        struct io_uring_buf *b = &ring.br->bufs[i];
        b->addr = (uint64_t)(uintptr_t)(ring.bufs + (size_t)i * BUFSZ); b->len = BUFSZ; b->bid = (uint16_t)i;
    }
    ring.br_tail = (uint16_t)ring.nbuf;
    __atomic_store_n(&ring.br->tail, ring.br_tail, __ATOMIC_RELEASE);
    ring.fd = fd;
    return 0;
}

static void buf_recycle(unsigned bid) {
    struct io_uring_buf *b = &ring.br->bufs[ring.br_tail & (ring.nbuf - 1)];
    b->addr = (uint64_t)(uintptr_t)(ring.bufs + (size_t)bid * BUFSZ); b->len = BUFSZ; b->bid = (uint16_t)bid;
    ring.br_tail++;  /* published after the batch of completions (buf_publish) */
}

static void buf_publish(void) { __atomic_store_n(&ring.br->tail, ring.br_tail, __ATOMIC_RELEASE); }

/* Submit what is queued; wait for at least `wait` completions for at most ms milliseconds. */
static uint64_t enter_errors, waits, window_waits; /* waits: io_uring_enter or epoll_wait calls that may sleep */
static int enter_errno;

/* Submit every queued entry the kernel has not taken yet; wait for at least `wait` completions for at
 * most ms milliseconds. An entry refused for now (EAGAIN, EBUSY) stays queued for the next call. */
static void ring_enter(unsigned wait, int ms) {
    __atomic_store_n(ring.sq_tail, ring.tail, __ATOMIC_RELEASE);
    unsigned n = ring.tail - __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE);
    struct __kernel_timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    struct getevents_arg arg = {.ts = (uint64_t)(uintptr_t)&ts};
    waits += wait > 0;
    unsigned flags = wait ? IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG : 0;
    int r = (int)syscall(__NR_io_uring_enter, ring.fd, n, wait, flags, wait ? (void *)&arg : NULL, sizeof arg);
    if (r < 0 && errno != ETIME && errno != EINTR) { enter_errors++; enter_errno = errno; }
}

static struct io_uring_sqe *get_sqe(void) {
    while (ring.tail - __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE) >= ring.sq_entries) ring_enter(0, 0);
    struct io_uring_sqe *e = &ring.sqes[ring.tail & *ring.sq_mask];
    ring.tail++;
    memset(e, 0, sizeof *e);
    return e;
}

static void uring_arm_recv(Conn *c) {
    struct io_uring_sqe *e = get_sqe();
    e->opcode = IORING_OP_RECV;
    e->fd = c->sock;
    e->ioprio = IORING_RECV_MULTISHOT;
    e->flags = IOSQE_BUFFER_SELECT;
    e->buf_group = 0;
    e->user_data = (uint64_t)(uintptr_t)c | TAG_RECV;
}

static void uring_send(Conn *c) {
    struct io_uring_sqe *e = get_sqe();
    e->opcode = IORING_OP_SEND;
    e->fd = c->sock;
    e->addr = (uint64_t)(uintptr_t)c->out;
    e->len = (unsigned)c->out_len;
    e->msg_flags = MSG_NOSIGNAL;
    e->user_data = (uint64_t)(uintptr_t)c | TAG_SEND;
    c->in_flight = c->out_len;
}

/* The connection is gone (drop): its socket ends once nothing of the ring uses it. shutdown ends
 * the armed receive (a last completion of 0 bytes), which lets the ring drop its hold on the file. */
static void uring_close(Conn *c) {
    if (c->sock < 0) return;
    shutdown(c->sock, SHUT_RDWR);
    close(c->sock);
    c->sock = -1;
}

/* An open connection leaves epoll for the ring. */
static void to_uring(Conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->uring = 1;
    c->sock = c->fd;
    uring_arm_recv(c);
    flush(c);
}

static void on_recv_cqe(Conn *c, int res, unsigned flags) {
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && c->fd >= 0) {
            unsigned char *data = ring.bufs + (size_t)bid * BUFSZ;
            if (c->hold_len == 0) on_ws_bytes(c, data, res);
            else {
                int h = c->hold_len;
                memcpy(rbuf, c->hold, h);
                memcpy(rbuf + h, data, res);
                on_ws_bytes(c, rbuf, h + res);
            }
        }
        buf_recycle(bid);
    }
    if (flags & IORING_CQE_F_MORE) return;
    /* the multishot receive ended */
    if (c->fd < 0) { uring_close(c); return; }
    if (res > 0 || res == -ENOBUFS) { uring_rearms++; uring_arm_recv(c); return; }
    if (res == 0) {
        if (c->state != S_CLOSING) { error_msg(c, "connection closed without a close frame"); closes[1006]++; }
    } else if (c->state != S_CLOSING) error_msg(c, "recv: %s", strerror(-res));
    drop(c);
    uring_close(c);
}

static void on_send_cqe(Conn *c, int res) {
    int sent = c->in_flight;
    c->in_flight = 0;
    if (res < 0) {
        if (c->fd >= 0 && c->state != S_CLOSING) error_msg(c, "send: %s", strerror(-res));
        drop(c);
        uring_close(c);
        return;
    }
    if (res > sent) res = sent;
    memmove(c->out, c->out + res, c->out_len - res);
    c->out_len -= res;
    if (c->fd < 0) {
        if (c->out_len > 0) uring_send(c);  /* the rest of a last frame (a close) before the socket ends */
        else uring_close(c);
        return;
    }
    if (c->out_len > 0) uring_send(c);
}

static void on_connected(Conn *c) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) { error_msg(c, "connect: %s", strerror(err)); drop(c); return; }
    c->state = S_HTTP;
    want_out(c, 0);
    unsigned char key[16];
    for (int i = 0; i < 16; i++) key[i] = (unsigned char)(mix(c->rng + i) >> 8);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char k64[25];
    int j = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (key[i] << 16) | (key[i + 1] << 8) | key[i + 2];
        k64[j++] = b64[v >> 18]; k64[j++] = b64[(v >> 12) & 63]; k64[j++] = b64[(v >> 6) & 63]; k64[j++] = b64[v & 63];
    }
    uint32_t v = key[15] << 16;
    k64[j++] = b64[v >> 18]; k64[j++] = b64[(v >> 12) & 63]; k64[j++] = '='; k64[j++] = '='; k64[j] = 0;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, port, k64);
    queue(c, req, n);
}

static void start_connect(Conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) { error_msg(c, "socket: %s", strerror(errno)); c->state = S_DONE; return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->state = S_CONNECTING;
    n_epoll++;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        error_msg(c, "connect: %s", strerror(errno));
        drop(c);
    }
}

static void on_event(Conn *c, uint32_t events) {
    if (c->fd < 0) return;
    if (c->state == S_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
        return;
    }
    if (events & EPOLLOUT) {
        flush(c);
        if (c->fd >= 0 && c->out_len == 0) want_out(c, 0);
    }
    if (c->fd >= 0 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
    if (use_uring && c->fd >= 0 && c->state == S_OPEN) { n_epoll--; to_uring(c); }
}

static void poll_epoll(int ms) {
    struct epoll_event evs[512];
    waits += ms > 0;
    int n = epoll_wait(epfd, evs, 512, ms);
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
}

/* Wait up to ms for something to do and do it: epoll alone, or the ring and (while connections
 * are still being set up) epoll, whose readiness also completes a multishot poll in the ring. */
static void poll_once(int ms) {
    static int epoll_armed;
    if (!use_uring) { poll_epoll(ms); return; }
    if (n_epoll > 0 && !epoll_armed) {
        struct io_uring_sqe *e = get_sqe();
        e->opcode = IORING_OP_POLL_ADD;
        e->fd = epfd;
        e->poll32_events = EPOLLIN;
        e->len = IORING_POLL_ADD_MULTI;
        e->user_data = TAG_EPOLL;
        epoll_armed = 1;
    }
    ring_enter(1, n_epoll > 0 && ms > 1 ? 1 : ms);
    unsigned head = *ring.cq_head, tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
        struct io_uring_cqe *e = &ring.cqes[head & *ring.cq_mask];
        Conn *c = (Conn *)(uintptr_t)(e->user_data & ~(uint64_t)3);
        switch (e->user_data & 3) {
        case TAG_RECV: on_recv_cqe(c, e->res, e->flags); break;
        case TAG_SEND: on_send_cqe(c, e->res); break;
        default: if (!(e->flags & IORING_CQE_F_MORE)) epoll_armed = 0; break;
        }
    }
    __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
    buf_publish();
    if (n_epoll > 0) poll_epoll(0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(const char *msg) {
    fprintf(stderr,
            "loadgen: %s\nusage: loadgen --port N [--clients N (1-%d, default 100)] [--path /ws] [--rate PER_S (default 1000)]\n"
            "               [--warmup S (default 3)] [--duration S (default 10)] [--timeout S (default 60)] [--seed N]\n"
            "               [--io uring|epoll (default uring; epoll where the kernel refuses a ring)]\n"
            "Connects to 127.0.0.1 only.\n", msg, MAX_CLIENTS);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--port")) port = (int)num(a, v, 1, 65535), i++;
        else if (!strcmp(a, "--clients")) n_clients = (int)num(a, v, 1, MAX_CLIENTS), i++;
        else if (!strcmp(a, "--rate")) rate = num(a, v, 1, 1e6), i++;
        else if (!strcmp(a, "--warmup")) warmup = num(a, v, 0, 3600), i++;
        else if (!strcmp(a, "--duration")) duration = num(a, v, 0.1, 3600), i++;
        else if (!strcmp(a, "--timeout")) timeout_s = num(a, v, 1, 3600), i++;
        else if (!strcmp(a, "--seed")) seed = (uint64_t)num(a, v, 0, 1e18), i++;
        else if (!strcmp(a, "--io")) {
            if (!v || (strcmp(v, "uring") && strcmp(v, "epoll"))) usage("--io: expected uring or epoll");
            use_uring = !strcmp(v, "uring"), i++;
        } else if (!strcmp(a, "--path")) {
            if (!v || v[0] != '/' || strlen(v) > 200 || strpbrk(v, " \r\n")) usage("--path: expected a path starting with /");
            path = v, i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage("a load generator for tickserver (tools/loadgen_c/loadgen.c)");
        else { char m[120]; snprintf(m, sizeof m, "unknown argument %.80s", a); usage(m); }
    }
    if (!port) usage("--port is required");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n_clients + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)n_clients + 64 ? rl.rlim_max : (rlim_t)n_clients + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    conns = calloc(n_clients, sizeof(Conn));
    if (!conns) { fprintf(stderr, "loadgen: out of memory\n"); return 1; }
    epfd = epoll_create1(0);
    if (use_uring && ring_setup() < 0) use_uring = 0;

    else if (!use_uring) uring_why = "--io epoll";
    for (int i = 0; i < n_clients; i++) {
        Conn *c = &conns[i];
        c->fd = -1; c->index = i; c->n_inputs = 2;
        c->rng = mix(seed * 0x9E3779B97F4A7C15ULL + i + 1);
        for (int j = 0; j < 4; j++) c->mask[j] = (unsigned char)(c->rng >> (8 * j + 16));
    }
    double t0 = now(), deadline = t0 + timeout_s;
    int started = 0;
    /* connect everyone, paced, until all are welcomed (or gone) or the time-out */
    for (;;) {
        double t = now();
        int due = (int)((t - t0) * rate) + 1;
        while (started < n_clients && started < due) start_connect(&conns[started++]);
        int pending = n_clients - started;
        for (int i = 0; i < started; i++) pending += conns[i].state != S_DONE && !conns[i].welcomed;
        if (!pending || t > deadline) break;
        poll_once(started < n_clients ? 1 : 20);
    }
    double connect_s = now() - t0;
    double tw = now() + warmup;
    while (now() < tw) poll_once(20);
    for (int i = 0; i < n_clients; i++) conns[i].updates_at_start = conns[i].updates;
    double c0 = cpu_self(), w0 = now();
    window_waits = waits;
    printf("{\"event\": \"window_start\"}\n");
    fflush(stdout);
    window_phase = 1;
    while (now() < w0 + duration) poll_once(20);
    double w1 = now(), c1 = cpu_self();
    uint64_t waits_end = waits;
    for (int i = 0; i < n_clients; i++) conns[i].updates_at_end = conns[i].updates;
    window_phase = 2;
    printf("{\"event\": \"window_end\"}\n");
    fflush(stdout);
    int connected = 0, welcomed = 0;
    double *ups = malloc(sizeof(double) * n_clients), sum = 0;
    for (int i = 0; i < n_clients; i++) {
        Conn *c = &conns[i];
        connected += c->state == S_OPEN;
        welcomed += c->welcomed;
        ups[i] = (c->updates_at_end - c->updates_at_start) / (w1 - w0);
        sum += ups[i];
    }
    qsort(ups, n_clients, sizeof(double), cmp_double);
    /* leave: a close 1000 to everyone still open, then up to 2 s for the server's answers */
    for (int i = 0; i < n_clients; i++) {
        Conn *c = &conns[i];
        if (c->state == S_OPEN) {
            c->state = S_CLOSING;
            send_frame(c, 8, (const unsigned char *)"\x03\xe8", 2);
        } else if (c->state != S_DONE) drop(c);
    }
    double tc = now() + 2;
    for (;;) {
        int open = 0;
        for (int i = 0; i < n_clients; i++) open += conns[i].fd >= 0;
        if (!open || now() > tc) break;
        poll_once(20);
    }
    for (int i = 0; i < n_clients; i++) drop(&conns[i]);
    printf("{\"clients\": %d, \"connected\": %d, \"welcomed\": %d, \"connect_s\": %.3f, \"window_s\": %.3f, "
           "\"updates_per_s_min\": %.2f, \"updates_per_s_p1\": %.2f, \"updates_per_s_p50\": %.2f, \"updates_per_s_mean\": %.2f, "
           "\"io\": \"%s\", \"io_note\": \"%s\", \"uring_rearms\": %llu, \"uring_enter_errors\": %llu, \"waits_per_s\": %.1f, \"cpu_per_s\": %.4f, \"cpu_us_per_update\": %.2f, \"bytes_per_update\": %.1f, \"errors\": %ld, \"error_messages\": [",
           n_clients, connected, welcomed, connect_s, w1 - w0, ups[0], ups[n_clients / 100], ups[n_clients / 2],
           sum / n_clients, use_uring ? "uring" : "epoll", uring_why, (unsigned long long)uring_rearms, (unsigned long long)enter_errors, (waits_end - window_waits) / (w1 - w0), (c1 - c0) / (w1 - w0), sum > 0 ? (c1 - c0) * 1e6 / (sum * (w1 - w0)) : 0.0,
           window_updates ? (double)window_bytes / window_updates : 0.0, errors);
    if (enter_errors) fprintf(stderr, "loadgen: io_uring_enter failed %llu times, last: %s\n", (unsigned long long)enter_errors, strerror(enter_errno));
    for (long i = 0; i < errors && i < MAX_ERR_MSGS; i++) printf("%s\"%s\"", i ? ", " : "", err_msgs[i]);
    printf("], \"closes\": {");
    int first = 1;
    for (int i = 0; i < 5000; i++)
        if (closes[i]) { printf("%s\"%d\": %ld", first ? "" : ", ", i, closes[i]); first = 0; }
    printf("}}\n");
    return 0;
}

/* feeder: a server that costs as little as possible, to measure the load generator (build/loadgen) alone.
 *
 * Owns the far side of `python -m tools.genbench`: it must feed thousands of clients 30 updates per
 * second from one core where neither the game server nor `tools.ceiling` (Python) can, so that the
 * generator's own CPU per update is what gets measured. It speaks the server's side of PROTOCOL.md
 * as far as a lean client sees it: the HTTP upgrade (Sec-WebSocket-Accept computed), a `hello`
 * answered with a `welcome` whose ruleset has the drift inputs `dx`, `dy`, then at every tick
 * (TICK_RATE per second, timerfd, absolute) one prebuilt `update`-shaped frame of FRAME_BYTES bytes
 * (the shape of `tools.ceiling.update_frame`: only the uint32 tick changes) to every welcomed
 * client, one send() each. A client still holding part of the previous frame in its socket skips
 * that tick (counted). It checks what the clients send: every `input` must carry `seq` one more
 * than its last and an `ack` no newer than the tick it was sent and not older than its last; pings
 * are answered, a close is echoed. Loopback only; it ends after --lifetime s at most.
 *
 * Prints {"event": "listening", "port": N} once, then one JSON line of counters (ticks, ticks
 * skipped, frames sent, frames skipped, inputs, bad inputs, clients, errors) on SIGUSR1 and at exit
 * (SIGTERM, SIGINT or the lifetime).
 *
 * Build: `make loadgen` (gcc -O2), output in build/feeder.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define MAX_CLIENTS 20000
#define INBUF 4096

typedef struct {
    int fd, welcomed, http_done, index;
    uint32_t last_seq, last_ack, sent_tick;
    int in_len, pending_off, pending_len;
    unsigned char *pending; /* the rest of a frame the socket did not take */
    unsigned char in[INBUF];
} Client;

static Client *clients[MAX_CLIENTS];
static int n_clients, epfd, lfd, tfd;
static unsigned char *frame;
static int frame_len, tick_off;
static uint32_t tick;
static uint64_t ticks_skipped, frames_sent, frames_skipped, inputs, bad_inputs, errors, accepted;
static volatile sig_atomic_t want_stats, want_exit;
static char first_error[160];

static void err(const char *m) {
    errors++;
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", m);
}

/* -- SHA-1 (FIPS 180-1) and base64, for Sec-WebSocket-Accept -- */
static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    unsigned char *m = calloc(total, 1);
    memcpy(m, msg, len);
    m[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) m[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = ((uint32_t)m[off + 4 * i] << 24) | (m[off + 4 * i + 1] << 16) | (m[off + 4 * i + 2] << 8) | m[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    free(m);
    for (int i = 0; i < 20; i++) out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const unsigned char *in, int n, char *out) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int j = 0;
    for (int i = 0; i < n; i += 3) {
        uint32_t v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[j++] = b64[v >> 18];
        out[j++] = b64[(v >> 12) & 63];
        out[j++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[j++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[j] = 0;
}

/* -- clients -- */
static Client *gone[512]; /* dropped while handling one batch of events: freed after it */
static int n_gone;

static void drop(Client *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    clients[c->index] = clients[--n_clients];
    clients[c->index]->index = c->index;
    gone[n_gone++] = c;
}

/* Send all of it now (small control answers; the socket has room for them). */
static int send_all(Client *c, const void *p, size_t n) {
    ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
    if (k != (ssize_t)n) { err("a control answer did not fit in the socket"); return -1; }
    return 0;
}

static int send_frame(Client *c, int opcode, const unsigned char *p, int n) {
    unsigned char f[4 + 125 + 4096];
    int h = 2;
    f[0] = 0x80 | opcode;
    if (n < 126) f[1] = n;
    else { f[1] = 126; f[2] = n >> 8; f[3] = n; h = 4; }
    memcpy(f + h, p, n);
    return send_all(c, f, h + n);
}

static const unsigned char WELCOME[] =
    "\x82\xa1t\xa7welcome\xa7ruleset\x81\xa6inputs\x92"
    "\x83\xa4name\xa2" "dx\xa2lo\xff\xa2hi\x01"
    "\x83\xa4name\xa2" "dy\xa2lo\xff\xa2hi\x01";

static uint32_t uint_at(const unsigned char *p, const unsigned char *end, int *ok) {
    *ok = 1;
    if (p < end && p[0] < 0x80) return p[0];
    if (p + 1 < end && p[0] == 0xcc) return p[1];
    if (p + 2 < end && p[0] == 0xcd) return p[1] << 8 | p[2];
    if (p + 4 < end && p[0] == 0xce) return (uint32_t)p[1] << 24 | p[2] << 16 | p[3] << 8 | p[4];
    *ok = 0;
    return 0;
}

/* One client message (unmasked payload): hello, input, ack, ping; anything else is an error. */
static int on_message(Client *c, const unsigned char *p, int n) {
    const unsigned char *end = p + n;
    if (n >= 8 && (p[0] & 0xf0) == 0x80 && !memcmp(p + 1, "\xa1t\xa5input", 8)) {
        const unsigned char *s = memmem(p, n, "\xa3seq", 4), *a = memmem(p, n, "\xa3" "ack", 4);
        int ok1 = 0, ok2 = 0;
        uint32_t seq = s ? uint_at(s + 4, end, &ok1) : 0, ack = a ? uint_at(a + 4, end, &ok2) : 0;
        inputs++;
        if (!c->welcomed || !ok1 || !ok2 || seq != c->last_seq + 1 || ack > c->sent_tick || ack < c->last_ack) {
            if (!bad_inputs++) {
                char m[160];
                snprintf(m, sizeof m, "bad input: seq %u after %u, ack %u (sent %u, last %u)", seq, c->last_seq, ack,
                         c->sent_tick, c->last_ack);
                err(m);
            }
        }
        c->last_seq = seq;
        c->last_ack = ack;
        return 0;
    }
    if (n >= 8 && (p[0] & 0xf0) == 0x80 && !memcmp(p + 1, "\xa1t\xa5hello", 8)) {
        if (c->welcomed) { err("a second hello"); return -1; }
        c->welcomed = 1;
        return send_frame(c, 2, WELCOME, sizeof WELCOME - 1);
    }
    if (n >= 6 && (p[0] & 0xf0) == 0x80 && !memcmp(p + 1, "\xa1t\xa3" "ack", 6)) return 0;
    err("an unreadable client message");
    return -1;
}

static void on_readable(Client *c) {
    ssize_t k = recv(c->fd, c->in + c->in_len, INBUF - c->in_len, 0);
    if (k <= 0) {
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        drop(c);
        return;
    }
    c->in_len += k;
    int pos = 0;
    if (!c->http_done) {
        unsigned char *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!e) { if (c->in_len == INBUF) { err("handshake too long"); drop(c); } return; }
        char *key = memmem(c->in, e - c->in, "Sec-WebSocket-Key: ", 19);
        if (!key) { err("handshake without a key"); drop(c); return; }
        key += 19;
        char *kend = memchr(key, '\r', (char *)e + 2 - key);
        char buf[128];
        int kl = (int)(kend - key);
        if (kl <= 0 || kl > 60) { err("bad handshake key"); drop(c); return; }
        memcpy(buf, key, kl);
        memcpy(buf + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
        unsigned char digest[20];
        sha1((unsigned char *)buf, kl + 36, digest);
        char acc[32], resp[256];
        base64(digest, 20, acc);
        int rl = snprintf(resp, sizeof resp,
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
        if (send_all(c, resp, rl)) { drop(c); return; }
        c->http_done = 1;
        pos = (int)(e + 4 - c->in);
    }
    while (c->in_len - pos >= 6) {
        unsigned char *h = c->in + pos;
        int op = h[0] & 0x0f, L = h[1] & 0x7f, hl = 6;
        if (!(h[1] & 0x80)) { err("an unmasked client frame"); drop(c); return; }
        if (!(h[0] & 0x80) || L > 125) { err("a fragmented or long client frame"); drop(c); return; }
        if (c->in_len - pos < hl + L) break;
        unsigned char p[125];
        for (int i = 0; i < L; i++) p[i] = h[hl + i] ^ h[2 + (i & 3)];
        pos += hl + L;
        if (op == 2) { if (on_message(c, p, L)) { drop(c); return; } }
        else if (op == 9) { if (send_frame(c, 10, p, L)) { drop(c); return; } }
        else if (op == 8) { send_frame(c, 8, p, L >= 2 ? 2 : 0); drop(c); return; }
        else if (op != 10) { err("an unexpected opcode"); drop(c); return; }
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static void write_rest(Client *c) {
    ssize_t k = send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) c->pending_off += k;
    if (c->pending_off == c->pending_len) {
        c->pending_len = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void on_tick(void) {
    tick++;
    frame[tick_off] = tick >> 24; frame[tick_off + 1] = tick >> 16; frame[tick_off + 2] = tick >> 8; frame[tick_off + 3] = tick;
    for (int i = 0; i < n_clients; i++) {
        Client *c = clients[i];
        if (!c->welcomed) continue;
        if (c->pending_len) { frames_skipped++; continue; }
        ssize_t k = send(c->fd, frame, frame_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) continue; /* its close comes through recv */
        if (k < 0) k = 0;
        if (k == 0) { frames_skipped++; continue; }
        c->sent_tick = tick;
        frames_sent++;
        if (k < frame_len) {
            if (!c->pending) c->pending = malloc(frame_len);
            memcpy(c->pending, frame + k, frame_len - k);
            c->pending_off = 0;
            c->pending_len = frame_len - k;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static void stats(const char *event) {
    int welcomed = 0;
    for (int i = 0; i < n_clients; i++) welcomed += clients[i]->welcomed;
    printf("{\"event\": \"%s\", \"tick\": %u, \"ticks_skipped\": %llu, \"clients\": %d, \"welcomed\": %d, \"accepted\": %llu, "
           "\"frames_sent\": %llu, \"frames_skipped\": %llu, \"inputs\": %llu, \"bad_inputs\": %llu, \"frame_bytes\": %d, "
           "\"cpu_s\": %.4f, \"errors\": %llu, \"first_error\": \"%s\"}\n",
           event, tick, (unsigned long long)ticks_skipped, n_clients, welcomed, (unsigned long long)accepted,
           (unsigned long long)frames_sent, (unsigned long long)frames_skipped, (unsigned long long)inputs,
           (unsigned long long)bad_inputs, frame_len, cpu_self(), (unsigned long long)errors, first_error);
    fflush(stdout);
}

static void on_signal(int sig) {
    if (sig == SIGUSR1) want_stats = 1;
    else want_exit = 1;
}

static void usage(const char *msg) {
    fprintf(stderr,
            "feeder: %s\nusage: feeder [--port N (default 0: a free one)] [--frame-bytes N (32-65535, default 1200)]\n"
            "              [--tick-rate N (1-1000, default 30)] [--lifetime S (default 600)]\n"
            "Listens on 127.0.0.1 only.\n", msg);
    exit(2);
}

int main(int argc, char **argv) {
    int port = 0, frame_bytes = 1200, tick_rate = 30;
    double lifetime = 600;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--port")) port = (int)num(a, v, 0, 65535), i++;
        else if (!strcmp(a, "--frame-bytes")) frame_bytes = (int)num(a, v, 32, 65535), i++;
        else if (!strcmp(a, "--tick-rate")) tick_rate = (int)num(a, v, 1, 1000), i++;
        else if (!strcmp(a, "--lifetime")) lifetime = num(a, v, 1, 86400), i++;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage("a minimal update feeder for measuring build/loadgen");
        else { char m[120]; snprintf(m, sizeof m, "unknown argument %.80s", a); usage(m); }
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max < MAX_CLIENTS + 64 ? rl.rlim_max : MAX_CLIENTS + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
    /* the frame: a websocket header, then {"t": "update", "tick": u32, "base": nil, "pad": bin, "sum": 0, "ack": 0} */
    static const unsigned char head[] = "\x86\xa1t\xa6update\xa4tick\xce", mid[] = "\xa4" "base\xc0\xa3pad", tail[] = "\xa3sum\x00\xa3" "ack\x00";
    int fixed = (sizeof head - 1) + 4 + (sizeof mid - 1) + (sizeof tail - 1);
    int pad = frame_bytes - fixed - 3, padh = 3;
    if (pad < 256) pad = frame_bytes - fixed - 2, padh = 2;
    if (pad < 0) usage("--frame-bytes: too small for an update");
    int wsh = frame_bytes < 126 ? 2 : 4;
    frame_len = wsh + frame_bytes;
    frame = calloc(frame_len, 1);
    frame[0] = 0x82;
    if (wsh == 2) frame[1] = frame_bytes;
    else { frame[1] = 126; frame[2] = frame_bytes >> 8; frame[3] = frame_bytes; }
    unsigned char *q = frame + wsh;
    memcpy(q, head, sizeof head - 1); q += sizeof head - 1;
    tick_off = (int)(q - frame); q += 4;
    memcpy(q, mid, sizeof mid - 1); q += sizeof mid - 1;
    if (padh == 2) { *q++ = 0xc4; *q++ = pad; }
    else { *q++ = 0xc5; *q++ = pad >> 8; *q++ = pad; }
    q += pad;
    memcpy(q, tail, sizeof tail - 1);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096) || getsockname(lfd, (struct sockaddr *)&a, &al)) {
        fprintf(stderr, "feeder: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 2;
    }
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long period = 1000000000L / tick_rate;
    struct itimerspec its = {.it_interval = {0, period}, .it_value = t0};
    its.it_value.tv_nsec += period;
    if (its.it_value.tv_nsec >= 1000000000L) its.it_value.tv_sec++, its.it_value.tv_nsec -= 1000000000L;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    ev.data.ptr = &tfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("{\"event\": \"listening\", \"port\": %d}\n", ntohs(a.sin_port));
    fflush(stdout);
    time_t end = t0.tv_sec + (time_t)lifetime;
    struct epoll_event evs[512];
    while (!want_exit) {
        if (want_stats) { want_stats = 0; stats("stats"); }
        int n = epoll_wait(epfd, evs, 512, 1000);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    if (n_clients == MAX_CLIENTS) { close(fd); continue; }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    Client *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->index = n_clients;
                    clients[n_clients++] = c;
                    accepted++;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
                }
            } else if (p == &tfd) {
                uint64_t expirations = 0;
                if (read(tfd, &expirations, sizeof expirations) == sizeof expirations && expirations > 1)
                    ticks_skipped += expirations - 1;
                on_tick();
            }
        }
        for (int i = 0; i < n; i++) {
            Client *c = evs[i].data.ptr;
            if (c == NULL || (void *)c == &tfd || c->fd < 0) continue;
            if (evs[i].events & EPOLLOUT && c->pending_len) write_rest(c);
            if (c->fd >= 0 && evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        }
        while (n_gone) { Client *c = gone[--n_gone]; free(c->pending); free(c); }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec >= end) break;
    }
    stats("exit");
    return 0;
}

/* openloop: an open-loop HTTP/1.1 load generator for the serving benchmark.
 *
 * Request i is *scheduled* at t0 + i / rate, whatever happened to the earlier ones, and its
 * latency is measured from that scheduled time to the end of its response. A stalled server
 * therefore shows up in the latency of every request that was due during the stall, instead of
 * being hidden because the client politely waited ("coordinated omission", G. Tene). This is
 * what wrk2 does; wrk2 is not packaged by Debian and cannot be fetched here, and wrk (which is)
 * only runs closed loops, so this small generator is written by hand. It is single-threaded
 * (epoll), keeps -c keep-alive connections, sends a due request on any idle connection, and
 * reads responses framed by Content-Length (what uvicorn sends). With -r 0 it runs a closed
 * loop instead: every connection sends its next request as soon as the previous one returns.
 *
 *   openloop -p PORT -r RATE -n REQUESTS -c CONNECTIONS -f REQUESTS_FILE
 *
 * REQUESTS_FILE: one request per line, "PATH" (a GET) or "POST<TAB>PATH<TAB>JSON BODY"; the
 * lines are used in order, cycling. Prints one JSON object: counts, the achieved rate, and
 * latency percentiles (ms) from the scheduled time ("latency") and from the actual send
 * ("service").
 *
 * Build: cc -O2 -o openloop benchmarks/openloop.c -lm
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int busy;
    long req;       /* index of the request in flight */
    int64_t sent;   /* when it was written (ns) */
    char *buf;
    size_t len, cap;
} conn_t;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *msg) {
    perror(msg);
    exit(2);
}

static int port;
static int epfd;

static int connect_one(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double pct(double *sorted, long n, double p) {
    if (n == 0) return NAN;
    long i = (long)ceil(p / 100.0 * n) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return sorted[i];
}

static void print_pcts(const char *name, double *v, long n) {
    qsort(v, n, sizeof *v, cmp_double);
    printf("\"%s\": {\"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, \"p999\": %.4f, \"max\": %.4f}",
           name, pct(v, n, 50), pct(v, n, 90), pct(v, n, 99), pct(v, n, 99.9),
           n ? v[n - 1] : NAN);
}

int main(int argc, char **argv) {
    double rate = 1000;
    long total = 20000;
    int nconn = 32;
    const char *file = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "p:r:n:c:f:")) != -1) {
        switch (opt) {
            case 'p': port = atoi(optarg); break;
            case 'r': rate = atof(optarg); break;
            case 'n': total = atol(optarg); break;
            case 'c': nconn = atoi(optarg); break;
            case 'f': file = optarg; break;
            default: fprintf(stderr, "usage: openloop -p PORT -r RATE -n N -c CONNS -f FILE\n");
                     return 2;
        }
    }
    if (!port || !file || total < 1 || nconn < 1 || rate < 0) {
        fprintf(stderr, "openloop: -p, -f, -n >= 1, -c >= 1 and -r >= 0 are required\n");
        return 2;
    }
    /* the requests, pre-formatted */
    FILE *f = fopen(file, "r");
    if (!f) die(file);
    char **reqs = NULL;
    size_t *reqlen = NULL;
    long nreq = 0, capreq = 0;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t got;
    while ((got = getline(&line, &linecap, f)) > 0) {
        while (got && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (!got) continue;
        if (nreq == capreq) {
            capreq = capreq ? 2 * capreq : 1024;
            reqs = realloc(reqs, capreq * sizeof *reqs);
            reqlen = realloc(reqlen, capreq * sizeof *reqlen);
        }
        char *r = NULL;
        int n;
        if (strncmp(line, "POST\t", 5) == 0) {
            char *path = line + 5, *body = strchr(path, '\t');
            if (!body) { fprintf(stderr, "%s: a POST line needs PATH<TAB>BODY\n", file); return 2; }
            *body++ = 0;
            n = asprintf(&r, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                         path, strlen(body), body);
        } else {
            n = asprintf(&r, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", line);
        }
        if (n < 0) die("asprintf");
        reqs[nreq] = r;
        reqlen[nreq++] = (size_t)n;
    }
    fclose(f);
    if (!nreq) { fprintf(stderr, "%s: no requests\n", file); return 2; }

    epfd = epoll_create1(0);
    conn_t *conns = calloc(nconn, sizeof *conns);
    int *idle = malloc(nconn * sizeof *idle);
    int nidle = 0;
    for (int c = 0; c < nconn; c++) {
        conns[c].fd = connect_one();
        conns[c].cap = 1 << 16;
        conns[c].buf = malloc(conns[c].cap);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, conns[c].fd, &ev);
        idle[nidle++] = c;
    }
    double *lat = malloc(total * sizeof *lat), *svc = malloc(total * sizeof *svc);
    for (long i = 0; i < total; i++) lat[i] = NAN;
    long next = 0, done = 0, ok = 0, non2xx = 0, errors = 0;
    const double gap = rate > 0 ? 1e9 / rate : 0;
    const int64_t t0 = now_ns();
    int64_t *sched = malloc(total * sizeof *sched);
    struct epoll_event evs[256];
    while (done < total) {
        int64_t t = now_ns();
        /* send every due request that has an idle connection */
        while (next < total && nidle > 0) {
            int64_t due = rate > 0 ? t0 + (int64_t)(next * gap) : t;
            if (due > t) break;
            conn_t *c = &conns[idle[--nidle]];
            const char *r = reqs[next % nreq];
            size_t off = 0, want = reqlen[next % nreq];
            while (off < want) { /* loopback: a request fits the socket buffer */
                ssize_t w = write(c->fd, r + off, want - off);
                if (w < 0 && errno != EAGAIN) die("write");
                if (w > 0) off += (size_t)w;
            }
            sched[next] = due;
            c->sent = now_ns();
            c->req = next++;
            c->busy = 1;
            c->len = 0;
        }
        /* wait for a response, or until the next request is due */
        struct timespec to = {0, 0}, *top = NULL;
        if (next < total && nidle > 0 && rate > 0) {
            int64_t wait = t0 + (int64_t)(next * gap) - now_ns();
            if (wait < 0) wait = 0;
            to.tv_sec = wait / 1000000000LL;
            to.tv_nsec = wait % 1000000000LL;
            top = &to;
        }
        int n = epoll_pwait2(epfd, evs, 256, top, NULL);
        if (n < 0 && errno != EINTR) die("epoll_pwait2");
        for (int e = 0; e < n; e++) {
            int ci = (int)evs[e].data.u32;
            conn_t *c = &conns[ci];
            for (;;) {
                if (c->cap - c->len < 4096) {
                    c->cap *= 2;
                    c->buf = realloc(c->buf, c->cap);
                }
                ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
                if (r > 0) { c->len += (size_t)r; continue; }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                /* closed or failed: the request in flight is an error; reconnect */
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = connect_one();
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)ci};
                epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
                if (c->busy) {
                    errors++;
                    done++;
                    c->busy = 0;
                    idle[nidle++] = ci;
                }
                c->len = 0;
                break;
            }
            if (!c->busy) continue;
            c->buf[c->len] = 0;
            char *end = strstr(c->buf, "\r\n\r\n");
            if (!end) continue;
            size_t head = (size_t)(end - c->buf) + 4;
            long body = -1;
            for (char *h = c->buf; h && h < end; h = strstr(h, "\r\n")) {
                h += (h[0] == '\r') ? 2 : 0;
                if (strncasecmp(h, "content-length:", 15) == 0) body = atol(h + 15);
                if (strncasecmp(h, "transfer-encoding:", 18) == 0) {
                    fprintf(stderr, "openloop: chunked responses are not supported\n");
                    return 2;
                }
            }
            if (body < 0) { fprintf(stderr, "openloop: a response without Content-Length\n"); return 2; }
            if (c->len < head + (size_t)body) continue;
            int status = atoi(c->buf + 9);
            int64_t t1 = now_ns();
            lat[c->req] = (double)(t1 - sched[c->req]) / 1e6;
            svc[c->req] = (double)(t1 - c->sent) / 1e6;
            if (status >= 200 && status < 300) ok++; else non2xx++;
            done++;
            c->busy = 0;
            c->len = 0;
            idle[nidle++] = ci;
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    /* latency arrays hold the completed requests only (errors have no response time) */
    long m = 0;
    for (long i = 0; i < total; i++)
        if (!isnan(lat[i])) { lat[m] = lat[i]; svc[m++] = svc[i]; }
    printf("{\"requests\": %ld, \"ok\": %ld, \"non2xx\": %ld, \"errors\": %ld, \"connections\": %d, "
           "\"offered_rate\": %.1f, \"seconds\": %.3f, \"achieved_rate\": %.1f, ",
           total, ok, non2xx, errors, nconn, rate, secs, (double)(ok + non2xx) / secs);
    print_pcts("latency_ms", lat, m);
    printf(", ");
    print_pcts("service_ms", svc, m);
    printf("}\n");
    return errors ? 1 : 0;
}

/*
 * forwarder: a Service's cluster IP, as one small static program.
 *
 * It runs as PID 1 in a Service's forwarder container, listens on the Service's ports and
 * hands every TCP connection, and every UDP client's datagrams, to one of the Service's
 * endpoints, like kube-proxy's userspace mode. One thread, one epoll loop, IPv4 only, libc
 * only (the image holds nothing but this binary). The command line comes from
 * reconciler/services.py (forwarder_args):
 *
 *   forwarder [-t CONNECT_TIMEOUT_SECONDS] [-u UDP_IDLE_SECONDS] [-i TCP_IDLE_SECONDS]
 *             [-d DRAIN_SECONDS] [-e FILE] [-n] SPEC [SPEC...]
 *   SPEC := PROTO ":" LISTEN_PORT "=" [ENDPOINT ("," ENDPOINT)*]
 *   PROTO := "tcp" | "udp"          ENDPOINT := IPv4 ":" PORT
 *
 * -n only checks the arguments: it prints each listener as it was understood and exits 0
 * (2 with a message for bad ones), opening no socket; the test suite fuzzes it.
 *
 * Endpoints change in place: on SIGHUP (and at start, when it exists) FILE is read, one
 * SPEC per line, and each listener takes the endpoints its line gives (none if no line
 * names it). Connections in flight keep their backend; a UDP session whose endpoint is no
 * longer listed ends (its client's next datagram opens a new one). A FILE that cannot be
 * read or parsed changes nothing.
 *
 * TCP: each connection starts at a random endpoint and falls through to the next one when
 * connecting fails or times out; bytes are relayed both ways through a 64 KiB buffer per
 * direction, with half-closes passed on. UDP: each client address is a session with its own
 * socket connected to a random endpoint; replies go back from the service port; a refused
 * endpoint (ICMP port unreachable) moves the session on; idle sessions are closed.
 *
 * It faces the network, so it bounds what a peer can hold: a TCP connection that moves no
 * byte either way for TCP_IDLE_SECONDS (default 3600) is closed, as an idle UDP session is.
 * SIGTERM drains: the listeners close (no new connection is taken), the connections in
 * flight go on until they end or DRAIN_SECONDS (default 10) pass, then it exits; SIGINT,
 * or a second SIGTERM, exits at once.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)   /* per direction of a TCP connection */
#define MAX_EVENTS 256
#define BATCH 64               /* accepts or datagrams per readiness event, so others get a turn */
#define PUMP_BUDGET 16         /* relay steps per connection per turn (up to 1 MiB each way) */
#define ACCEPT_PAUSE_MS 100    /* out of fds: let the listener rest instead of spinning */
#define SESSION_BUCKETS 4096   /* UDP session hash table (a power of two) */

/* Everything epoll's data.ptr points at starts with its kind, so events can be dispatched. */
enum kind { K_SIGNAL, K_TCP_LISTENER, K_UDP_LISTENER, K_CLIENT, K_BACKEND, K_SESSION };

/* A circular doubly linked list; a node that is in no list points at itself. */
struct link { struct link *prev, *next; };
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct listener {
    enum kind kind;
    int fd;
    uint16_t port;
    size_t n_eps;
    struct sockaddr_in *eps;
    int64_t paused_until;  /* tcp: accepting paused after EMFILE until then; 0: not paused */
    struct link sessions;  /* udp: its sessions, least recently active first */
};

/* One socket of a TCP connection; the flags remember edge-triggered readiness. */
struct side {
    enum kind kind;
    int fd;
    bool readable, writable, established;
    struct conn *conn;
};

/* One direction of a TCP connection: bytes read from one side, not yet written to the other. */
struct flow {
    size_t head, tail;     /* unsent bytes are buf[head..tail) */
    bool eof;              /* the source side has no more to send */
    bool shut;             /* ... and that EOF was passed on with shutdown(SHUT_WR) */
    char buf[BUF_SIZE];
};

struct conn {
    struct side client, backend;
    struct flow up, down;  /* up: client to backend; down: backend to client */
    struct listener *lst;
    size_t start, tried;   /* endpoints are tried from eps[start] on, in order, wrapping */
    int64_t deadline;      /* for the connect under way */
    bool dead;
    struct link timer;     /* in loop.connecting while connecting (ordered by deadline) */
    struct link ready;     /* in loop.ready when its turn ended with work left; then graveyard */
    int64_t last_active;   /* when a byte last moved (or it started) */
    struct link idle;      /* in loop.idle, least recently active first */
};

struct session {
    enum kind kind;
    int fd;                /* connected to lst->eps[ep] */
    struct listener *lst;
    struct sockaddr_in client;
    size_t ep, tried;      /* tried: endpoints tried for the client's last datagram */
    int64_t last_active;
    struct link lru;       /* in lst->sessions */
    struct session *bucket_next;
    char *last;            /* the client's last datagram, resent when an endpoint refuses it */
    size_t last_len;
};

/* The event loop's state: the only globals. */
static struct {
    int epfd;
    int64_t now;           /* monotonic ms, read once per loop turn */
    int connect_timeout_ms, udp_idle_ms, tcp_idle_ms, drain_ms;
    struct listener *listeners;
    size_t n_listeners;
    struct link connecting, ready, graveyard, idle;
    size_t n_conns;        /* TCP connections open (connecting or relaying) */
    int64_t drain_until;   /* draining after SIGTERM until then; 0: not draining */
    int sigfd;
    struct session *buckets[SESSION_BUCKETS];
    char dgram[65536];
} loop;

/* -e: where endpoints are re-read on SIGHUP */
static const char *endpoints_file;

/* ---- small helpers ---- */

static void list_init(struct link *l) { l->prev = l->next = l; }
static bool list_empty(const struct link *head) { return head->next == head; }

static void list_remove(struct link *l) {
    l->prev->next = l->next;
    l->next->prev = l->prev;
    list_init(l);
}

static void list_append(struct link *head, struct link *l) {
    *l = (struct link){.prev = head->prev, .next = head};
    head->prev->next = l;
    head->prev = l;
}

static int64_t clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* op: EPOLL_CTL_ADD or EPOLL_CTL_MOD; obj: what the events will point at */
static int watch(int op, int fd, void *obj, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = obj};
    return epoll_ctl(loop.epfd, op, fd, &ev);
}

static void set_nodelay(int fd) {
    /* we write what we just read: Nagle would only add latency to small exchanges */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static size_t pick(size_t n) { return (size_t)rand() % n; }

/* ---- command line ---- */

__attribute__((noreturn, format(printf, 1, 2))) static void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("forwarder: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* A number from 1 to max written as text[0..len), digits only; -1 if it is not one. */
static long parse_number(const char *text, size_t len, long max) {
    long value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9' || value > max)
            return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value >= 1 && value <= max ? value : -1;
}

static bool parse_endpoint(const char *text, size_t len, struct sockaddr_in *out) {
    char ip[INET_ADDRSTRLEN];
    const char *colon = memrchr(text, ':', len);
    size_t ip_len = colon ? (size_t)(colon - text) : sizeof ip;
    if (ip_len >= sizeof ip)
        return false;
    memcpy(ip, text, ip_len);
    ip[ip_len] = '\0';
    long port = parse_number(colon + 1, len - ip_len - 1, 65535);
    *out = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    return port > 0 && inet_pton(AF_INET, ip, &out->sin_addr) == 1;
}

static void parse_spec(const char *arg, struct listener *l) {
    const char *colon = strchr(arg, ':'), *eq = strchr(arg, '=');
    if (!colon || !eq || colon > eq)
        usage_error("bad listener \"%s\" (want PROTO:PORT=[IP:PORT,...])", arg);
    if (strncmp(arg, "tcp:", 4) == 0)
        l->kind = K_TCP_LISTENER;
    else if (strncmp(arg, "udp:", 4) == 0)
        l->kind = K_UDP_LISTENER;
    else
        usage_error("bad protocol \"%.*s\" in \"%s\"", (int)(colon - arg), arg, arg);
    long port = parse_number(colon + 1, (size_t)(eq - colon - 1), 65535);
    if (port < 0)
        usage_error("bad port \"%.*s\" in \"%s\"", (int)(eq - colon - 1), colon + 1, arg);
    l->port = (uint16_t)port;
    l->fd = -1;
    list_init(&l->sessions);
    if (!eq[1])
        return;  /* no endpoint: TCP clients are closed, datagrams dropped */
    size_t n = 1;
    for (const char *c = eq + 1; *c; c++)
        n += *c == ',';
    if (!(l->eps = calloc(n, sizeof *l->eps)))
        usage_error("out of memory");
    for (const char *item = eq + 1; item; l->n_eps++) {
        const char *comma = strchr(item, ',');
        int len = comma ? (int)(comma - item) : (int)strlen(item);
        if (!parse_endpoint(item, (size_t)len, &l->eps[l->n_eps]))
            usage_error("bad endpoint \"%.*s\" in \"%s\" (want IPv4:PORT)", len, item, arg);
        item = comma ? comma + 1 : NULL;
    }
}

/* Returns true for -n (check the arguments only). */
static bool parse_args(int argc, char **argv) {
    loop.connect_timeout_ms = 3000;
    loop.udp_idle_ms = 60000;
    loop.tcp_idle_ms = 3600 * 1000;
    loop.drain_ms = 10000;
    bool check_only = false;
    int opt;
    opterr = 0;
    while ((opt = getopt(argc, argv, "+t:u:i:d:e:n")) != -1) {
        if (opt == '?')
            usage_error("bad option -%c", optopt);
        if (opt == 'e') {
            endpoints_file = optarg;
            continue;
        }
        if (opt == 'n') {
            check_only = true;
            continue;
        }
        long seconds = parse_number(optarg, strlen(optarg), 86400);
        if (seconds < 0)
            usage_error("bad option -%c \"%s\" (want whole seconds)", opt, optarg);
        if (opt == 't')
            loop.connect_timeout_ms = (int)seconds * 1000;
        else if (opt == 'u')
            loop.udp_idle_ms = (int)seconds * 1000;
        else if (opt == 'i')
            loop.tcp_idle_ms = (int)seconds * 1000;
        else
            loop.drain_ms = (int)seconds * 1000;
    }
    if (optind >= argc)
        usage_error("no listener; usage: forwarder [-t SECONDS] [-u SECONDS] "
                    "PROTO:PORT=[IP:PORT,...]...");
    loop.n_listeners = (size_t)(argc - optind);
    loop.listeners = calloc(loop.n_listeners, sizeof *loop.listeners);
    if (!loop.listeners)
        usage_error("out of memory");
    for (size_t i = 0; i < loop.n_listeners; i++) {
        struct listener *l = &loop.listeners[i];
        parse_spec(argv[optind + (int)i], l);
        for (size_t j = 0; j < i; j++)
            if (loop.listeners[j].kind == l->kind && loop.listeners[j].port == l->port)
                usage_error("port given twice: \"%s\"", argv[optind + (int)i]);
    }
    return check_only;
}

/* -n: each listener as understood, one line each ("tcp:80=10.0.0.1:8080,10.0.0.2:8080"). */
static void print_listeners(void) {
    for (size_t i = 0; i < loop.n_listeners; i++) {
        const struct listener *l = &loop.listeners[i];
        printf("%s:%u=", l->kind == K_TCP_LISTENER ? "tcp" : "udp", l->port);
        for (size_t e = 0; e < l->n_eps; e++) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &l->eps[e].sin_addr, ip, sizeof ip);
            printf("%s%s:%u", e ? "," : "", ip, ntohs(l->eps[e].sin_port));
        }
        putchar('\n');
    }
    printf("connect-timeout=%d udp-idle=%d tcp-idle=%d drain=%d\n", loop.connect_timeout_ms / 1000,
           loop.udp_idle_ms / 1000, loop.tcp_idle_ms / 1000, loop.drain_ms / 1000);
}

/* ---- TCP ---- */

static void connect_next(struct conn *c);

/* Closes both sockets now; the memory waits for the end of this batch of events, which may
 * still name the connection (it is marked dead, so they are ignored). */
static void conn_close(struct conn *c) {
    close(c->client.fd);
    if (c->backend.fd >= 0)
        close(c->backend.fd);
    c->dead = true;
    list_remove(&c->timer);
    list_remove(&c->ready);
    list_remove(&c->idle);
    list_append(&loop.graveyard, &c->ready);
    loop.n_conns--;
}

/* A byte moved: the connection goes to the back of the idle list. */
static void conn_touch(struct conn *c) {
    c->last_active = loop.now;
    list_remove(&c->idle);
    list_append(&loop.idle, &c->idle);
}

static void conn_start(struct listener *l, int fd) {
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->client = (struct side){.kind = K_CLIENT, .fd = fd, .established = true, .conn = c};
    c->backend = (struct side){.kind = K_BACKEND, .fd = -1, .conn = c};
    c->lst = l;
    c->start = pick(l->n_eps);
    list_init(&c->timer);
    list_init(&c->ready);
    list_init(&c->idle);
    set_nodelay(fd);
    /* edge-triggered and never modified: readiness is tracked in the side's flags */
    if (watch(EPOLL_CTL_ADD, fd, &c->client, EPOLLIN | EPOLLOUT | EPOLLET) < 0) {
        close(fd);
        free(c);
        return;
    }
    loop.n_conns++;
    conn_touch(c);
    connect_next(c);
}

/* Starts connecting to the next endpoint not yet tried; when none is left, gives up on the
 * client. Bytes the client sent meanwhile stay in the up buffer for whichever one answers. */
static void connect_next(struct conn *c) {
    struct side *b = &c->backend;
    while (c->tried < c->lst->n_eps) {
        const struct sockaddr_in *ep = &c->lst->eps[(c->start + c->tried++) % c->lst->n_eps];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        bool started = connect(fd, (const struct sockaddr *)ep, sizeof *ep) == 0 ||
                       errno == EINPROGRESS;
        /* watched after connect(): an unconnected socket would report a hang-up at once */
        if (started && watch(EPOLL_CTL_ADD, fd, b, EPOLLIN | EPOLLOUT | EPOLLET) == 0) {
            *b = (struct side){.kind = K_BACKEND, .fd = fd, .conn = c};
            c->deadline = loop.now + loop.connect_timeout_ms;
            list_append(&loop.connecting, &c->timer);  /* same timeout for all: stays ordered */
            return;
        }
        close(fd);
    }
    conn_close(c);
}

static void connect_failed(struct conn *c) {
    close(c->backend.fd);
    c->backend.fd = -1;
    list_remove(&c->timer);
    connect_next(c);
}

/* Moves one direction on by at most one read and one write: 1 if anything moved,
 * 0 if it is stuck (waiting for readiness), -1 on an error that ends the connection. */
static int flow_step(struct flow *f, struct side *src, struct side *dst) {
    int moved = 0;
    if (!f->eof && src->readable && f->tail < BUF_SIZE) {
        ssize_t n = recv(src->fd, f->buf + f->tail, BUF_SIZE - f->tail, 0);
        if (n > 0)
            f->tail += (size_t)n;
        else if (n == 0)
            f->eof = true;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            src->readable = false;
        else if (errno != EINTR)
            return -1;
        moved = n >= 0;
    }
    if (!dst->established)
        return moved;  /* still connecting: keep what the client sends */
    if (f->head < f->tail && dst->writable) {
        ssize_t n = send(dst->fd, f->buf + f->head, f->tail - f->head, MSG_NOSIGNAL);
        if (n > 0) {
            f->head += (size_t)n;
            if (f->head == f->tail)
                f->head = f->tail = 0;
            moved = 1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            dst->writable = false;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    /* half-close: the source is done and everything it sent is delivered */
    if (f->eof && !f->shut && f->head == f->tail) {
        if (shutdown(dst->fd, SHUT_WR) < 0 && errno != ENOTCONN)
            return -1;
        f->shut = true;
        moved = 1;
    }
    return moved;
}

/* Relays both directions until both are stuck, the connection ends, or its turn is used up:
 * then it goes to the ready list to continue after the others (edge-triggered epoll will not
 * report the readiness it still has). */
static void pump(struct conn *c) {
    for (int budget = PUMP_BUDGET; budget > 0; budget--) {
        int up = flow_step(&c->up, &c->client, &c->backend);
        int down = up < 0 ? -1 : flow_step(&c->down, &c->backend, &c->client);
        if (up < 0 || down < 0 || (c->up.shut && c->down.shut)) {
            conn_close(c);
            return;
        }
        if (!up && !down)
            return;
        if (budget == PUMP_BUDGET)
            conn_touch(c);
    }
    list_remove(&c->ready);
    list_append(&loop.ready, &c->ready);
}

static void connect_event(struct conn *c, uint32_t events) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->backend.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err || (events & (EPOLLERR | EPOLLHUP))) {
        connect_failed(c);
        return;
    }
    if (!(events & EPOLLOUT))
        return;
    c->backend.established = true;
    list_remove(&c->timer);
    set_nodelay(c->backend.fd);
    pump(c);
}

static void side_event(struct side *s, uint32_t events) {
    struct conn *c = s->conn;
    if (c->dead)
        return;
    /* a hang-up or error shows up as readiness: the next recv/send reports it */
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        s->readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->writable = true;
    if (!s->established)
        connect_event(c, events);
    else if (events & EPOLLERR)
        conn_close(c);  /* reset: nothing more can be delivered either way */
    else
        pump(c);
}

static void pause_listener(struct listener *l) {
    watch(EPOLL_CTL_MOD, l->fd, l, 0);
    l->paused_until = loop.now + ACCEPT_PAUSE_MS;
}

static void tcp_accept(struct listener *l) {
    for (int i = 0; i < BATCH; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                continue;  /* that client gave up: the next one may be there */
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                pause_listener(l);  /* the pending connection would wake us again at once */
            return;
        }
        if (l->n_eps == 0)
            close(fd);  /* no ready backend: refuse quickly rather than hang the client */
        else
            conn_start(l, fd);
    }
}

/* ---- UDP ---- */

static size_t bucket_of(const struct listener *l, const struct sockaddr_in *client) {
    uint64_t key = (uint64_t)(uintptr_t)l ^ ((uint64_t)client->sin_addr.s_addr << 16) ^
                   client->sin_port;
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (SESSION_BUCKETS - 1);
}

static struct session *session_find(const struct listener *l, const struct sockaddr_in *client) {
    for (struct session *s = loop.buckets[bucket_of(l, client)]; s; s = s->bucket_next)
        if (s->lst == l && s->client.sin_addr.s_addr == client->sin_addr.s_addr &&
            s->client.sin_port == client->sin_port)
            return s;
    return NULL;
}

static struct session *session_open(struct listener *l, const struct sockaddr_in *client) {
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->kind = K_SESSION;
    s->lst = l;
    s->client = *client;
    s->ep = pick(l->n_eps);  /* random per client: clients spread over the endpoints */
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* connected: the kernel filters replies to this endpoint and reports its ICMP errors */
    if (s->fd < 0 ||
        connect(s->fd, (const struct sockaddr *)&l->eps[s->ep], sizeof l->eps[s->ep]) < 0 ||
        watch(EPOLL_CTL_ADD, s->fd, s, EPOLLIN) < 0) {
        if (s->fd >= 0)
            close(s->fd);
        free(s);
        return NULL;
    }
    size_t b = bucket_of(l, client);
    s->bucket_next = loop.buckets[b];
    loop.buckets[b] = s;
    list_init(&s->lru);
    return s;
}

static void session_close(struct session *s) {
    struct session **p = &loop.buckets[bucket_of(s->lst, &s->client)];
    while (*p != s)
        p = &(*p)->bucket_next;
    *p = s->bucket_next;
    list_remove(&s->lru);
    close(s->fd);
    free(s->last);
    free(s);
}

static void session_touch(struct session *s) {
    s->last_active = loop.now;
    list_remove(&s->lru);
    list_append(&s->lst->sessions, &s->lru);
}

static bool endpoint_refused(int err) {
    return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH;
}

/* The current endpoint refused the last datagram: on to the next, unless all were tried. */
static bool session_next_endpoint(struct session *s) {
    struct listener *l = s->lst;
    if (s->tried >= l->n_eps)
        return false;
    s->ep = (s->ep + 1) % l->n_eps;
    s->tried++;
    return connect(s->fd, (const struct sockaddr *)&l->eps[s->ep], sizeof l->eps[s->ep]) == 0;
}

/* Sends the client's last datagram. A send fails when an earlier one was refused (the ICMP
 * error is pending on the socket): the session moves on and sends again. */
static void session_send_last(struct session *s) {
    while (send(s->fd, s->last, s->last_len, 0) < 0)
        if (!endpoint_refused(errno) || !session_next_endpoint(s))
            return;  /* all endpoints refused, or a transient error: the datagram is lost */
}

static bool session_keep(struct session *s, const char *data, size_t len) {
    char *copy = realloc(s->last, len ? len : 1);
    if (!copy)
        return false;
    s->last = memcpy(copy, data, len);
    s->last_len = len;
    return true;
}

static void udp_from_clients(struct listener *l) {
    for (int i = 0; i < BATCH; i++) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(l->fd, loop.dgram, sizeof loop.dgram, 0, (struct sockaddr *)&from,
                             &len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;  /* drained */
        }
        if (l->n_eps == 0 || from.sin_family != AF_INET)
            continue;  /* nowhere to send it: dropped */
        struct session *s = session_find(l, &from);
        if (!s && !(s = session_open(l, &from)))
            continue;
        session_touch(s);
        if (!session_keep(s, loop.dgram, (size_t)n))
            continue;
        s->tried = 1;  /* each datagram may go through all endpoints, from the current one */
        session_send_last(s);
    }
}

static void udp_from_backend(struct session *s) {
    for (int i = 0; i < BATCH; i++) {
        ssize_t n = recv(s->fd, loop.dgram, sizeof loop.dgram, 0);
        if (n >= 0) {
            /* from the listening socket: the client sees the reply come from the service */
            sendto(s->lst->fd, loop.dgram, (size_t)n, 0, (const struct sockaddr *)&s->client,
                   sizeof s->client);
            session_touch(s);
        } else if (endpoint_refused(errno)) {
            if (session_next_endpoint(s))
                session_send_last(s);
        } else if (errno != EINTR) {
            return;  /* drained */
        }
    }
}

static void expire_sessions(struct listener *l) {
    while (!list_empty(&l->sessions)) {
        struct session *s = container_of(l->sessions.next, struct session, lru);
        if (s->last_active + loop.udp_idle_ms > loop.now)
            break;
        session_close(s);
    }
}

/* ---- reloading endpoints ---- */

/* "EP,EP,..." (or nothing) as a fresh array; false if an endpoint is malformed. */
static bool parse_endpoint_list(const char *list, struct sockaddr_in **eps, size_t *n) {
    *eps = NULL;
    *n = 0;
    if (!*list)
        return true;
    size_t count = 1;
    for (const char *c = list; *c; c++)
        count += *c == ',';
    struct sockaddr_in *out = calloc(count, sizeof *out);
    if (!out)
        return false;
    for (const char *item = list; item; (*n)++) {
        const char *comma = strchr(item, ',');
        size_t len = comma ? (size_t)(comma - item) : strlen(item);
        if (!parse_endpoint(item, len, &out[*n])) {
            free(out);
            *n = 0;
            return false;
        }
        item = comma ? comma + 1 : NULL;
    }
    *eps = out;
    return true;
}

static bool same_endpoint(const struct sockaddr_in *a, const struct sockaddr_in *b) {
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

/* The listener takes eps[0..n) (it owns the array from now on). TCP connections hold their
 * own sockets and are left alone; a UDP session follows its endpoint or ends. */
static void set_endpoints(struct listener *l, struct sockaddr_in *eps, size_t n) {
    struct link *next;
    for (struct link *it = l->sessions.next; it != &l->sessions; it = next) {
        next = it->next;
        struct session *s = container_of(it, struct session, lru);
        size_t k = 0;
        while (k < n && !same_endpoint(&eps[k], &l->eps[s->ep]))
            k++;
        if (k < n)
            s->ep = k;
        else
            session_close(s);
    }
    free(l->eps);
    l->eps = eps;
    l->n_eps = n;
}

/* Reads the endpoints file; all or nothing: one bad line and every listener keeps its own. */
static void load_endpoints(bool at_start) {
    FILE *f = fopen(endpoints_file, "r");
    if (!f) {
        if (!at_start || errno != ENOENT)
            fprintf(stderr, "forwarder: %s: %s\n", endpoints_file, strerror(errno));
        return;
    }
    struct sockaddr_in **fresh = calloc(loop.n_listeners, sizeof *fresh);
    size_t *counts = calloc(loop.n_listeners, sizeof *counts);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool ok = fresh && counts;
    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *colon = strchr(line, ':'), *eq = strchr(line, '=');
        if (!len)
            continue;
        ok = colon && eq && colon < eq;
        enum kind kind = strncmp(line, "tcp:", 4) == 0 ? K_TCP_LISTENER : K_UDP_LISTENER;
        long port = ok ? parse_number(colon + 1, (size_t)(eq - colon - 1), 65535) : -1;
        ok = ok && port > 0 && (kind == K_TCP_LISTENER || strncmp(line, "udp:", 4) == 0);
        for (size_t i = 0; ok && i < loop.n_listeners; i++) {
            struct listener *l = &loop.listeners[i];
            if (l->kind == kind && l->port == port) {
                free(fresh[i]);
                ok = parse_endpoint_list(eq + 1, &fresh[i], &counts[i]);
            }
        }
        if (!ok)
            fprintf(stderr, "forwarder: %s: bad line \"%s\": endpoints unchanged\n",
                    endpoints_file, line);
    }
    free(line);
    fclose(f);
    for (size_t i = 0; i < loop.n_listeners; i++) {
        if (ok) {
            struct listener *l = &loop.listeners[i];
            set_endpoints(l, fresh[i], counts[i]);
            fprintf(stderr, "forwarder: %s :%u -> %zu endpoint%s (reloaded)\n",
                    l->kind == K_TCP_LISTENER ? "tcp" : "udp", l->port, l->n_eps,
                    l->n_eps == 1 ? "" : "s");
        } else if (fresh) {
            free(fresh[i]);
        }
    }
    free(fresh);
    free(counts);
}

/* ---- the loop ---- */

static void open_listener(struct listener *l) {
    bool tcp = l->kind == K_TCP_LISTENER;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(l->port)};
    int one = 1;
    l->fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0 || setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(l->fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        (tcp && listen(l->fd, 1024) < 0) || watch(EPOLL_CTL_ADD, l->fd, l, EPOLLIN) < 0) {
        fprintf(stderr, "forwarder: %s :%u: %s\n", tcp ? "tcp" : "udp", l->port, strerror(errno));
        exit(1);
    }
    fprintf(stderr, "forwarder: %s :%u -> %zu endpoint%s\n", tcp ? "tcp" : "udp", l->port,
            l->n_eps, l->n_eps == 1 ? "" : "s");
}

/* Milliseconds until the next deadline (connect timeout, paused listener, idle session);
 * -1 if there is none: an idle forwarder sleeps in epoll_wait. */
static int next_timeout(void) {
    if (!list_empty(&loop.ready))
        return 0;
    int64_t next = INT64_MAX;
    if (!list_empty(&loop.connecting))
        next = container_of(loop.connecting.next, struct conn, timer)->deadline;
    if (!list_empty(&loop.idle)) {
        int64_t idle = container_of(loop.idle.next, struct conn, idle)->last_active;
        if (idle + loop.tcp_idle_ms < next)
            next = idle + loop.tcp_idle_ms;
    }
    if (loop.drain_until && loop.drain_until < next)
        next = loop.drain_until;
    for (size_t i = 0; i < loop.n_listeners; i++) {
        struct listener *l = &loop.listeners[i];
        if (l->paused_until && l->paused_until < next)
            next = l->paused_until;
        if (!list_empty(&l->sessions)) {
            struct session *s = container_of(l->sessions.next, struct session, lru);
            if (s->last_active + loop.udp_idle_ms < next)
                next = s->last_active + loop.udp_idle_ms;
        }
    }
    if (next == INT64_MAX)
        return -1;
    int64_t wait = next - clock_ms();
    return wait < 0 ? 0 : wait > INT_MAX ? INT_MAX : (int)wait;
}

static void run_timers(void) {
    while (!list_empty(&loop.connecting)) {
        struct conn *c = container_of(loop.connecting.next, struct conn, timer);
        if (c->deadline > loop.now)
            break;
        connect_failed(c);  /* requeues it with a later deadline, or closes it */
    }
    while (!list_empty(&loop.idle)) {
        struct conn *c = container_of(loop.idle.next, struct conn, idle);
        if (c->last_active + loop.tcp_idle_ms > loop.now)
            break;
        conn_close(c);  /* idle too long: its descriptors go back to the others */
    }
    for (size_t i = 0; i < loop.n_listeners; i++) {
        struct listener *l = &loop.listeners[i];
        if (l->paused_until && l->paused_until <= loop.now) {
            l->paused_until = 0;
            watch(EPOLL_CTL_MOD, l->fd, l, EPOLLIN);
        }
        expire_sessions(l);
    }
}

/* Connections whose last turn ended with work left get another, in order. */
static void run_ready(void) {
    struct link turn;
    if (list_empty(&loop.ready))
        return;
    turn = loop.ready;  /* take the whole list: those that requeue wait for the next round */
    turn.next->prev = turn.prev->next = &turn;
    list_init(&loop.ready);
    while (!list_empty(&turn)) {
        struct conn *c = container_of(turn.next, struct conn, ready);
        list_remove(&c->ready);
        pump(c);
    }
}

static void bury_dead(void) {
    while (!list_empty(&loop.graveyard)) {
        struct conn *c = container_of(loop.graveyard.next, struct conn, ready);
        list_remove(&c->ready);
        free(c);
    }
}

/* SIGTERM: stop taking work and drain (the listeners close; connections in flight go on
 * until they end or drain_ms pass). SIGINT, or SIGTERM while draining: stop now. SIGHUP:
 * read the endpoints file again (load_endpoints).
 * Returns true when the loop must end at once. */
static bool on_signal(void) {
    struct signalfd_siginfo info;
    while (read(loop.sigfd, &info, sizeof info) == (ssize_t)sizeof info) {
        if (info.ssi_signo == SIGHUP) {  /* not a stop: new endpoints (-e) */
            if (endpoints_file)
                load_endpoints(false);
            continue;
        }
        if (info.ssi_signo != SIGTERM || loop.drain_until)
            return true;
        fprintf(stderr, "forwarder: SIGTERM: draining %zu connection%s\n", loop.n_conns,
                loop.n_conns == 1 ? "" : "s");
        loop.drain_until = loop.now + loop.drain_ms;
        for (size_t i = 0; i < loop.n_listeners; i++) {
            struct listener *l = &loop.listeners[i];
            while (!list_empty(&l->sessions))
                session_close(container_of(l->sessions.next, struct session, lru));
            if (l->fd >= 0)
                close(l->fd);
            l->fd = -1;
            l->paused_until = 0;
        }
    }
    return false;
}

/* Returns true when the loop must end: a stop signal, or a drain that is over. */
static bool dispatch(struct epoll_event *ev) {
    enum kind *kind = ev->data.ptr;
    switch (*kind) {
    case K_SIGNAL:
        return on_signal();
    case K_TCP_LISTENER:
        tcp_accept((struct listener *)kind);
        break;
    case K_UDP_LISTENER:
        udp_from_clients((struct listener *)kind);
        break;
    case K_CLIENT:
    case K_BACKEND:
        side_event((struct side *)kind, ev->events);
        break;
    case K_SESSION:
        udp_from_backend((struct session *)kind);
        break;
    }
    return false;
}

int main(int argc, char **argv) {
    if (parse_args(argc, argv)) {
        print_listeners();
        return 0;
    }
    list_init(&loop.connecting);
    list_init(&loop.ready);
    list_init(&loop.graveyard);
    list_init(&loop.idle);
    signal(SIGPIPE, SIG_IGN);

    /* As PID 1 we get no default actions: SIGTERM/SIGINT are blocked and read from a
     * signalfd, so `docker stop` ends the loop cleanly. */
    static enum kind signal_kind = K_SIGNAL;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);  /* not a stop: reload the endpoints (on_signal) */
    sigprocmask(SIG_BLOCK, &stop, NULL);
    loop.epfd = epoll_create1(EPOLL_CLOEXEC);
    loop.sigfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    if (loop.epfd < 0 || loop.sigfd < 0 ||
        watch(EPOLL_CTL_ADD, loop.sigfd, &signal_kind, EPOLLIN) < 0) {
        perror("forwarder: epoll/signalfd");
        return 1;
    }
    if (endpoints_file)
        load_endpoints(true);  /* a restarted forwarder starts from its last reload */
    for (size_t i = 0; i < loop.n_listeners; i++)
        open_listener(&loop.listeners[i]);
    struct timespec seed;
    clock_gettime(CLOCK_REALTIME, &seed);  /* nanoseconds: forwarders are all PID 1 */
    srand((unsigned)(seed.tv_sec ^ seed.tv_nsec ^ getpid()));

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(loop.epfd, events, MAX_EVENTS, next_timeout());
        if (n < 0 && errno != EINTR) {
            perror("forwarder: epoll_wait");
            return 1;
        }
        loop.now = clock_ms();
        for (int i = 0; i < n; i++)
            if (dispatch(&events[i]))
                return 0;
        run_ready();
        run_timers();
        bury_dead();
        if (loop.drain_until && (loop.n_conns == 0 || loop.now >= loop.drain_until))
            return 0;  /* drained, or out of time: what is left is cut */
    }
}

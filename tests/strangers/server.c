/* A ping/pong server written from SPEC.md alone (udsping protocol, version 1).
 *
 * Build: gcc -O2 -Wall -pthread -o server server.c          (the careful server)
 *        gcc -O2 -Wall -pthread -DMUTANT=N -o server_mN server.c   (one-edit mutants)
 *
 * Usage: server [-d] [--mode OCTAL] [PATH]     (PATH defaults to "udsocket", TRN-PATH-1)
 *   -d  daemonize (fork, parent exits 0, child keeps serving): used by a wrapper fixture.
 *
 * Single-threaded poll loop, non-blocking sockets. Every connection holds a decoder state
 * (which token, how many bytes into it) and a count of pong bytes still owed, so memory per
 * connection is constant (WIRE-DECODE-1).
 *
 * Mutants (each a single small deviation; see manifest.json for the requirement each breaks):
 *   1  unlink the path unconditionally at start (the seed's os.unlink)
 *   2  bind with the process umask, then chmod 0600 (a window with a wider mode)
 *   3  forget to ignore SIGPIPE
 *   4  no SIGINT handler (only SIGTERM)
 *   5  answer "pong\0"
 *   6  close a connection that holds a partial token for 20 ms
 *   7  serve one client at a time (the listener is not polled while a connection is open)
 *   8  at shutdown, unlink the path without checking it is still our socket
 *   9  ignore `end` (keep answering pings after it, close only at EOF)
 *  10  compare bytes case-insensitively
 *  11  exit(1) on a non-ASCII byte
 *  12  on SIGTERM, leave the socket file behind
 *  13  socket file mode 0666
 *  14  on an invalid byte, drop the pongs still owed and close at once
 *  15  at EOF, answer a partial "p", "pi", "pin" with a pong (lenient)
 *  16  on EMFILE, retry accept at once (no back-off)
 *  17  any probe failure (not only ECONNREFUSED) is taken as "stale"
 *  18  blocking writes to clients (accepted sockets not set O_NONBLOCK)
 *  19  on SIGINT/SIGTERM, stop accepting but keep serving open connections until they end
 *  20  no length check: a long path is silently truncated into sun_path
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <ctype.h>

#ifndef MUTANT
#define MUTANT 0
#endif

#define MAX_CONNS 1024
#define IDLE_TIMEOUT_MS 120000
#define WRITE_TIMEOUT_MS 10000
#define ACCEPT_BACKOFF_MS 50
#define MAX_OWED (1u << 20) /* stop reading while this many pong bytes are owed */

static const char *prog = "server";
static int sigpipe_fds[2] = {-1, -1};

static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void logmsg(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(sigpipe_fds[1], &b, 1);
    (void)r;
    errno = saved;
}

static void set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static const char *kind_name(mode_t m)
{
    if (S_ISREG(m)) return "a regular file";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISLNK(m)) return "a symbolic link";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "an unknown kind of file";
}

/* ---- connections ---- */

enum { ST_OPEN, ST_CLOSING };
enum { END_NONE, END_END, END_INVALID, END_EOF, END_IO, END_TIMEOUT };

struct conn {
    int fd;
    int state;
    int why;          /* END_* once closing */
    int tok;          /* 0 none, 1 ping, 2 end */
    int pos;          /* bytes of tok received */
    uint64_t owed;    /* pong bytes still to write */
    int phase;        /* bytes of the current pong already written */
    int64_t last_rx;
    int64_t wblock;   /* when the current write started to block (0: not blocked) */
};

static struct conn conns[MAX_CONNS];
static int nconns;
static uint64_t c_accepted, c_end, c_invalid, c_eof, c_timeout, c_io;

#if MUTANT == 5
#define PONG "pong\0"
#define PONGLEN 5
#else
#define PONG "pong"
#define PONGLEN 4
#endif
static char pongbuf[PONGLEN * 1024];

static void conn_close(int i)
{
    struct conn *c = &conns[i];
    switch (c->why) {
    case END_END: c_end++; break;
    case END_INVALID: c_invalid++; break;
    case END_EOF: c_eof++; logmsg("connection ended by EOF before end (abnormal)"); break;
    case END_TIMEOUT: c_timeout++; break;
    default: c_io++; break;
    }
    close(c->fd);
    conns[i] = conns[--nconns];
}

static void begin_close(struct conn *c, int why)
{
    if (c->state == ST_CLOSING) return;
    c->state = ST_CLOSING;
    c->why = why;
}

/* Write what is owed. Returns -1 if the connection must be dropped now. */
static int conn_flush(struct conn *c, int64_t t)
{
    while (c->owed > 0) {
        size_t len = sizeof pongbuf - (size_t)c->phase;
        if (len > c->owed) len = (size_t)c->owed;
        ssize_t n = write(c->fd, pongbuf + c->phase, len);
        if (n > 0) {
            c->owed -= (uint64_t)n;
            c->phase = (int)((c->phase + n) % PONGLEN);
            c->wblock = 0;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->wblock == 0) c->wblock = t;
            return 0;
        }
        /* EPIPE, ECONNRESET, ...: only this connection ends (SRV-ERRNO-1) */
        c->why = END_IO;
        return -1;
    }
    c->wblock = 0;
    return 0;
}

static const char TOK_PING[] = "ping";
static const char TOK_END[] = "end";

/* Decode bytes greedily (WIRE-DECODE-1, WIRE-INVALID-1). */
static void conn_decode(struct conn *c, const unsigned char *buf, ssize_t n)
{
    for (ssize_t i = 0; i < n; i++) {
        unsigned char b = buf[i];
#if MUTANT == 10
        b = (unsigned char)tolower(b);
#endif
#if MUTANT == 11
        if (b >= 0x80) { logmsg("non-ASCII byte 0x%02x, giving up", b); exit(1); }
#endif
        if (c->pos == 0) {
            if (b == 'p') c->tok = 1;
            else if (b == 'e') c->tok = 2;
            else { begin_close(c, END_INVALID); return; }
            c->pos = 1;
            continue;
        }
        const char *t = c->tok == 1 ? TOK_PING : TOK_END;
        size_t tl = c->tok == 1 ? 4 : 3;
        if (b != (unsigned char)t[c->pos]) { begin_close(c, END_INVALID); return; }
        if (++c->pos == (int)tl) {
            c->pos = 0;
            if (c->tok == 1) {
                c->owed += PONGLEN;
            } else {
#if MUTANT == 9
                c->tok = 0;
                continue;
#endif
                begin_close(c, END_END);
                return;
            }
            c->tok = 0;
        }
    }
}

/* ---- the socket file ---- */

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static void fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
#if MUTANT == 20
    strncpy(sa->sun_path, path, sizeof sa->sun_path - 1);
#else
    memcpy(sa->sun_path, path, strlen(path) + 1);
#endif
}

/* SPEC 7.1: inspect the path; returns only when the path is free to bind. */
static void prepare_path(const char *path)
{
    struct stat st, held, again;
#if MUTANT == 1
    unlink(path);
#endif
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) return;                    /* LIFE-BIND-1 */
        die("cannot inspect %s: %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))                           /* LIFE-FOREIGN-1 */
        die("refusing to start: %s is %s, not a socket; leaving it alone", path, kind_name(st.st_mode));

    int ref = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (ref < 0) die("refusing to start: cannot open %s: %s", path, strerror(errno));
    if (fstat(ref, &held) < 0 || !same_file(&st, &held) || !S_ISSOCK(held.st_mode))
        die("refusing to start: %s changed while it was inspected", path);

    /* The probe never blocks (LIFE-PROBE-1): a blocking connect to a live server whose backlog
     * is full waits for ever; non-blocking, that is EAGAIN, which counts as live. (Fixed after
     * the gate's busy-socket case found the blocking probe of the first version.) */
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) die("socket: %s", strerror(errno));
    struct sockaddr_un sa;
    fill_addr(&sa, path);
    int r;
    do r = connect(s, (struct sockaddr *)&sa, sizeof sa); while (r < 0 && errno == EINTR);
    int err = errno;
    close(s);                                            /* probe: closed without a byte */
    if (r == 0 || err == EAGAIN)                         /* LIFE-LIVE-1 */
        die("refusing to start: another server is live at %s", path);
#if MUTANT == 17
    if (0)
#else
    if (err != ECONNREFUSED)                             /* LIFE-PROBE-1 */
#endif
        die("refusing to start: probing the socket at %s failed: %s", path, strerror(err));

    /* LIFE-STALE-1 with LIFE-RACE-1: the same file, while we hold a reference to it */
    if (lstat(path, &again) < 0 || !same_file(&again, &held))
        die("refusing to start: %s changed between probe and removal", path);
    if (unlink(path) < 0) die("cannot remove stale socket %s: %s", path, strerror(errno));
    close(ref);
    logmsg("removed stale socket %s", path);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    unsigned mode = 0600;
    int daemonize = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-d") == 0) daemonize = 1;
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) mode = (unsigned)strtoul(argv[++i], NULL, 8) & 0777;
        else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) path = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) { fprintf(stderr, "usage: %s [-d] [--mode OCTAL] [PATH]\n", prog); return 2; }
        else path = argv[i];
    }
    if (!path) path = "udsocket";                        /* TRN-PATH-1 */
#if MUTANT == 13
    mode = 0666;
#endif

#if MUTANT != 20
    {   /* TRN-PATH-2 */
        struct sockaddr_un probe;
        size_t len = strlen(path);
        if (len + 1 > sizeof probe.sun_path)
            die("socket path %s is %zu bytes long; at most %zu fit", path, len, sizeof probe.sun_path - 1);
        if (len == 0) die("empty socket path");
    }
#endif

    for (size_t i = 0; i < sizeof pongbuf; i += PONGLEN) memcpy(pongbuf + i, PONG, PONGLEN);

    if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) die("pipe: %s", strerror(errno));
    struct sigaction sa_sig;
    memset(&sa_sig, 0, sizeof sa_sig);
    sa_sig.sa_handler = on_signal;
    sigemptyset(&sa_sig.sa_mask);
    sigaction(SIGTERM, &sa_sig, NULL);
#if MUTANT != 4
    sigaction(SIGINT, &sa_sig, NULL);
#endif
    sigaction(SIGUSR1, &sa_sig, NULL);
#if MUTANT != 3
    signal(SIGPIPE, SIG_IGN);                            /* SRV-ERRNO-1 */
#endif

    prepare_path(path);

    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0) die("socket: %s", strerror(errno));
    struct sockaddr_un addr;
    fill_addr(&addr, path);
#if MUTANT == 2
    int br = bind(ls, (struct sockaddr *)&addr, sizeof addr);
    int berr = errno;
    if (br == 0) chmod(path, mode);
#else
    mode_t old = umask(0777 & ~mode);                    /* LIFE-PERM-1: no window */
    int br = bind(ls, (struct sockaddr *)&addr, sizeof addr);
    int berr = errno;
    umask(old);
#endif
    if (br < 0) {
        if (berr == EADDRINUSE)                          /* LIFE-RACE-2: never remove and retry */
            die("refusing to start: %s appeared while starting (address in use)", path);
        die("cannot bind %s: %s", path, strerror(berr));
    }
    /* LIFE-SHUT-2: a reference to our socket file, held until shutdown */
    int own = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat own_st;
    if (own < 0 || fstat(own, &own_st) < 0 || !S_ISSOCK(own_st.st_mode))
        die("%s was replaced right after bind", path);
    if (listen(ls, 128) < 0) die("listen: %s", strerror(errno));
    set_nonblock_cloexec(ls);

    if (daemonize) {
        if (daemon(1, 1) < 0) die("daemon: %s", strerror(errno));
    }

    logmsg("listening on %s", path);

    struct pollfd *pfd = calloc(MAX_CONNS + 2, sizeof *pfd);
    if (!pfd) die("out of memory");
    int64_t accept_resume = 0;
    int shut_sig = 0;
#if MUTANT == 19
    int drain_sig = 0;
#endif

    while (!shut_sig) {
#if MUTANT == 19
        if (drain_sig && nconns == 0) { shut_sig = drain_sig; break; }
#endif
        int64_t t = now_ms();
        /* deadlines */
        int64_t next = t + 1000;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            int64_t d = c->last_rx + IDLE_TIMEOUT_MS;
#if MUTANT == 6
            if (c->pos != 0 && c->last_rx + 20 < d) d = c->last_rx + 20;
#endif
            if (c->wblock && c->wblock + WRITE_TIMEOUT_MS < d) d = c->wblock + WRITE_TIMEOUT_MS;
            if (d < next) next = d;
        }
        if (accept_resume > t && accept_resume < next) next = accept_resume;

        int np = 0;
        pfd[np].fd = sigpipe_fds[0]; pfd[np].events = POLLIN; np++;
        int listen_slot = -1;
        int want_accept = nconns < MAX_CONNS && accept_resume <= t;
#if MUTANT == 19
        if (drain_sig) want_accept = 0;
#endif
#if MUTANT == 7
        want_accept = want_accept && nconns == 0;
#endif
        if (want_accept) { listen_slot = np; pfd[np].fd = ls; pfd[np].events = POLLIN; np++; }
        int base = np;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            pfd[np].fd = c->fd;
            pfd[np].events = 0;
            if (c->state == ST_OPEN && c->owed < MAX_OWED) pfd[np].events |= POLLIN;
            if (c->owed > 0) pfd[np].events |= POLLOUT;
            pfd[np].revents = 0;
            np++;
        }
        int timeout = next > t ? (int)(next - t) : 0;
        int pr = poll(pfd, (nfds_t)np, timeout);
        if (pr < 0) {
            if (errno == EINTR) continue;                /* SRV-ERRNO-1 */
            die("poll: %s", strerror(errno));
        }
        t = now_ms();

        if (pfd[0].revents & POLLIN) {
            unsigned char sb[16];
            ssize_t n;
            while ((n = read(sigpipe_fds[0], sb, sizeof sb)) > 0) {
                for (ssize_t k = 0; k < n; k++) {
                    if (sb[k] == SIGUSR1)
                        logmsg("accepted %llu refused 0 end %llu invalid %llu eof %llu timeout %llu io %llu open %d",
                               (unsigned long long)c_accepted, (unsigned long long)c_end,
                               (unsigned long long)c_invalid, (unsigned long long)c_eof,
                               (unsigned long long)c_timeout, (unsigned long long)c_io, nconns);
                    else shut_sig = sb[k];
                }
            }
#if MUTANT == 19
            if (shut_sig && nconns > 0) { drain_sig = shut_sig; shut_sig = 0; }
#endif
            if (shut_sig) break;
        }

        /* connections: iterate from the end so conn_close's swap is safe */
        int polled = nconns; /* connections accepted below are not in pfd yet */
        for (int i = polled - 1; i >= 0; i--) {
            struct conn *c = &conns[i];
            short re = pfd[base + i].revents;
            if (c->state == ST_OPEN && (re & (POLLIN | POLLHUP | POLLERR))) {
                unsigned char buf[4096];
                ssize_t n;
                do n = read(c->fd, buf, sizeof buf); while (n < 0 && errno == EINTR);
                if (n > 0) {
                    c->last_rx = t;
                    conn_decode(c, buf, n);
                } else if (n == 0 || errno == ECONNRESET) {   /* WIRE-CLOSE-1 */
#if MUTANT == 15
                    if (c->tok == 1 && c->pos > 0) c->owed += PONGLEN;
#endif
                    begin_close(c, END_EOF);              /* SRV-EOF-1 */
                } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    c->why = END_IO;
                    conn_close(i);
                    continue;
                }
            }
#if MUTANT == 14
            if (c->state == ST_CLOSING && c->why == END_INVALID) c->owed = 0;
#endif
            if (c->owed > 0 && conn_flush(c, t) < 0) { conn_close(i); continue; }
            if (c->state == ST_CLOSING && c->owed == 0) { conn_close(i); continue; }
            if (c->wblock && t - c->wblock >= WRITE_TIMEOUT_MS) {    /* SRV-WRITE-1 */
                c->why = END_TIMEOUT; conn_close(i); continue;
            }
            if (c->state == ST_OPEN && t - c->last_rx >= IDLE_TIMEOUT_MS) {  /* SRV-IDLE-1 */
                c->why = END_TIMEOUT; conn_close(i); continue;
            }
#if MUTANT == 6
            if (c->state == ST_OPEN && c->pos != 0 && t - c->last_rx >= 20) {
                c->why = END_TIMEOUT; conn_close(i); continue;
            }
#endif
        }

        if (listen_slot >= 0 && (pfd[listen_slot].revents & POLLIN)) {
            while (nconns < MAX_CONNS) {
                int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EINTR || errno == ECONNABORTED) continue;
                    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
#if MUTANT != 16
                        accept_resume = t + ACCEPT_BACKOFF_MS;    /* SRV-ACCEPT-1 */
#endif
                    }
                    break;
                }
#if MUTANT != 18
                set_nonblock_cloexec(fd);
#endif
                c_accepted++;
                struct conn *c = &conns[nconns++];
                memset(c, 0, sizeof *c);
                c->fd = fd;
                c->state = ST_OPEN;
                c->last_rx = t;
#if MUTANT == 7
                break;
#endif
            }
        }
    }

    /* LIFE-SHUT-1: stop accepting, close connections, remove our socket file, exit 0 */
    close(ls);
    while (nconns > 0) { conns[nconns - 1].why = END_IO; close(conns[nconns - 1].fd); nconns--; }
    struct stat now_st;
#if MUTANT == 12
    if (shut_sig == SIGTERM) { logmsg("shutting down (signal %d)", shut_sig); return 0; }
#endif
#if MUTANT == 8
    unlink(path);
#else
    if (lstat(path, &now_st) == 0 && same_file(&now_st, &own_st))   /* LIFE-SHUT-2 */
        unlink(path);
    else
        logmsg("%s is no longer our socket; leaving it alone", path);
#endif
    close(own);
    logmsg("shutting down (signal %d)", shut_sig);
    return 0;
}

/* A ping/pong client written from SPEC.md alone (udsping protocol, version 1).
 *
 * Build: gcc -O2 -Wall -pthread -o client client.c
 *        gcc -O2 -Wall -pthread -DMUTANT=N -o client_mN client.c
 * Usage: client [--socket PATH] [--rounds N] [PATH]
 *        PATH defaults to "udsocket" (TRN-PATH-1), rounds to 100 (CLT-ROUNDS-1).
 *
 * Mutants:
 *   1  sends "end" after a wrong reply before exiting non-zero
 *   2  reads up to 16 bytes per reply and checks only that they start with "pong"
 *   3  connect failure message does not name the path
 *   4  exits 0 after a protocol error
 *   5  the wrong-reply / early-EOF message does not say what arrived
 *   6  no reassembly: a reply must arrive in one read of 4 bytes
 *   7  pipelines: sends all pings before reading any reply
 *   8  after the rounds, closes without sending "end"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <ctype.h>

#ifndef MUTANT
#define MUTANT 0
#endif

static const char *prog = "client";

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

static void show(char *out, size_t outsz, const unsigned char *b, size_t n)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && o + 5 < outsz; i++) {
        if (isprint(b[i]) && b[i] != '"' && b[i] != '\\') out[o++] = (char)b[i];
        else o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", b[i]);
    }
    out[o] = 0;
}

static int fail_exit(void)
{
#if MUTANT == 4
    return 0;
#else
    return 1;
#endif
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long rounds = 100;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) path = argv[++i];
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            char *end;
            rounds = strtol(argv[++i], &end, 10);
            if (*end || rounds < 0) { fprintf(stderr, "%s: bad --rounds %s\n", prog, argv[i]); return 2; }
        } else if (argv[i][0] == '-') { fprintf(stderr, "usage: %s [--socket PATH] [--rounds N] [PATH]\n", prog); return 2; }
        else path = argv[i];
    }
    if (!path) path = "udsocket";
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len + 1 > sizeof sa.sun_path) {                  /* TRN-PATH-2 */
        fprintf(stderr, "%s: socket path %s is %zu bytes long; at most %zu fit\n", prog, path, len, sizeof sa.sun_path - 1);
        return 1;
    }
    memcpy(sa.sun_path, path, len + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) { fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno)); return 1; }
    int r;
    do r = connect(s, (struct sockaddr *)&sa, sizeof sa); while (r < 0 && errno == EINTR);
    if (r < 0) {                                          /* CLT-CONNECT-1 */
#if MUTANT == 3
        fprintf(stderr, "%s: connect failed\n", prog);
#else
        fprintf(stderr, "%s: cannot connect to %s: %s\n", prog, path, strerror(errno));
#endif
        return 1;
    }

#if MUTANT == 7
    for (long k = 0; k < rounds; k++)
        if (write_all(s, "ping", 4) < 0) { fprintf(stderr, "%s: write: %s\n", prog, strerror(errno)); return 1; }
#endif
    for (long k = 0; k < rounds; k++) {
#if MUTANT != 7
        if (write_all(s, "ping", 4) < 0) {
            fprintf(stderr, "%s: sending ping %ld failed: %s\n", prog, k + 1, strerror(errno));
            close(s);
            return fail_exit();
        }
#endif
        unsigned char got[16];
        size_t have = 0;
#if MUTANT == 2
        {
            ssize_t n;
            do n = read(s, got, sizeof got); while (n < 0 && errno == EINTR);
            if (n >= 4 && memcmp(got, "pong", 4) == 0) continue;
            if (n < 0) n = 0;
            have = (size_t)n;
            char txt[80]; show(txt, sizeof txt, got, have);
            fprintf(stderr, "%s: round %ld: expected \"pong\", received \"%s\"\n", prog, k + 1, txt);
            close(s);
            return 1;
        }
#endif
        while (have < 4) {                                /* CLT-REPLY-1 */
#if MUTANT == 6
            ssize_t n;
            do n = read(s, got, 4); while (n < 0 && errno == EINTR);
            if (n == 4 && memcmp(got, "pong", 4) == 0) { have = 4; break; }
            if (n > 0) {
                char txt[80]; show(txt, sizeof txt, got, (size_t)n);
                fprintf(stderr, "%s: round %ld: expected \"pong\", received \"%s\"\n", prog, k + 1, txt);
                close(s);
                return 1;
            }
#else
            ssize_t n;
            do n = read(s, got + have, 4 - have); while (n < 0 && errno == EINTR);
#endif
            if (n == 0 || (n < 0 && errno == ECONNRESET)) {   /* CLT-EOF-1 */
                char txt[80]; show(txt, sizeof txt, got, have);
#if MUTANT == 5
                fprintf(stderr, "%s: protocol error\n", prog);
#else
                fprintf(stderr, "%s: round %ld: server closed the connection after %zu byte(s) of the reply (\"%s\")\n",
                        prog, k + 1, have, txt);
#endif
                close(s);
                return fail_exit();
            }
            if (n < 0) {
                fprintf(stderr, "%s: round %ld: read: %s\n", prog, k + 1, strerror(errno));
                close(s);
                return fail_exit();
            }
            /* CLT-REPLY-2: every byte must continue "pong" */
            for (size_t j = have; j < have + (size_t)n; j++) {
                if (got[j] != (unsigned char)"pong"[j]) {
                    char txt[80]; show(txt, sizeof txt, got, have + (size_t)n);
#if MUTANT == 5
                    fprintf(stderr, "%s: protocol error\n", prog);
#else
                    fprintf(stderr, "%s: round %ld: expected \"pong\", received \"%s\"\n", prog, k + 1, txt);
#endif
#if MUTANT == 1
                    write_all(s, "end", 3);
#endif
                    close(s);
                    return fail_exit();
                }
            }
            have += (size_t)n;
        }
    }
#if MUTANT != 8
    if (write_all(s, "end", 3) < 0) {                    /* CLT-END-1 */
        fprintf(stderr, "%s: sending end failed: %s\n", prog, strerror(errno));
        close(s);
        return 1;
    }
#endif
    close(s);
    return 0;                                            /* CLT-EXIT-1 */
}

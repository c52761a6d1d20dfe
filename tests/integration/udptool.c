/*
 * udptool: a UDP echo server and client for the integration tests (busybox has no UDP nc).
 *
 *   udptool serve PORT NAME        answer every datagram with "NAME <datagram>"
 *   udptool ask IP PORT MESSAGE    send MESSAGE, print the answer and the address it came
 *                                  from as "FROM-IP:FROM-PORT ANSWER"; exit 1 after 3
 *                                  tries of 2 s without one
 *
 * Static and dependency-free, so it runs in the busybox-only test images. IPv4 only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void on_signal(int sig) {
    (void)sig;
    _exit(0); /* PID 1 in a container: without a handler SIGTERM would be ignored */
}

static int parse_port(const char *text) {
    char *end;
    long port = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "udptool: bad port %s\n", text);
        exit(2);
    }
    return (int)port;
}

static int serve(int port, const char *name) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("udptool: bind");
        return 1;
    }
    fprintf(stderr, "udptool: %s serving udp :%d\n", name, port);
    char in[2048], out[2300];
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(fd, in, sizeof in - 1, 0, (struct sockaddr *)&peer, &len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("udptool: recvfrom");
            return 1;
        }
        in[n] = '\0';
        int size = snprintf(out, sizeof out, "%s %s", name, in);
        sendto(fd, out, (size_t)size, 0, (struct sockaddr *)&peer, len);
    }
}

static int ask(const char *ip, int port, const char *message) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, ip, &to.sin_addr) != 1) {
        fprintf(stderr, "udptool: bad IPv4 address %s\n", ip);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval wait = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char answer[2048];
    for (int attempt = 0; attempt < 3; attempt++) {
        sendto(fd, message, strlen(message), 0, (struct sockaddr *)&to, sizeof to);
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, answer, sizeof answer - 1, 0, (struct sockaddr *)&from, &len);
        if (n >= 0) {
            answer[n] = '\0';
            char text[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
            printf("%s:%d %s\n", text, ntohs(from.sin_port), answer);
            return 0;
        }
    }
    fprintf(stderr, "udptool: no answer from %s:%d\n", ip, port);
    return 1;
}

int main(int argc, char **argv) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (argc == 4 && strcmp(argv[1], "serve") == 0)
        return serve(parse_port(argv[2]), argv[3]);
    if (argc == 5 && strcmp(argv[1], "ask") == 0)
        return ask(argv[2], parse_port(argv[3]), argv[4]);
    fprintf(stderr, "usage: udptool serve PORT NAME | udptool ask IP PORT MESSAGE\n");
    return 2;
}

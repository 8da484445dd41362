/* An HTTP/echo server in C on the listening socket Enarx hands over (wasi-libc accept/recv/send).
 *
 * The listening fd is the position of the file named "web" in FD_NAMES (':'-separated, fd order).
 * GET / answers "hello from c"; any other request line is echoed back. One request per connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEAD 8192

static int listen_fd(void) {
    const char *names = getenv("FD_NAMES");
    int fd = 0;
    if (names == NULL) return 3;
    for (const char *p = names; *p; fd++) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 3 && strncmp(p, "web", 3) == 0) return fd;
        if (!end) break;
        p = end + 1;
    }
    return 3;
}

static int send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void reply(int fd, const char *status, const char *body, size_t len) {
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, len);
    if (send_all(fd, head, (size_t)n) == 0) send_all(fd, body, len);
}

static void serve(int fd) {
    char buf[MAX_HEAD + 1];
    size_t have = 0;
    while (have < MAX_HEAD) {
        ssize_t n = recv(fd, buf + have, MAX_HEAD - have, 0);
        if (n <= 0) return;
        have += (size_t)n;
        buf[have] = 0;
        if (strstr(buf, "\r\n\r\n")) break;
    }
    if (strncmp(buf, "GET / ", 6) == 0) {
        reply(fd, "200 OK", "hello from c\n", 13);
    } else {
        size_t line = strcspn(buf, "\r\n");
        reply(fd, "200 OK", buf, line);
    }
}

int main(void) {
    int lfd = listen_fd();
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            perror("accept");
            continue;
        }
        serve(fd);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
}

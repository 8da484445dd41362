/* Hello in C (zig cc, wasm32-wasi): prints a greeting, its arguments and FD_NAMES. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("Hello from C in an Enarx keep!\n");
    for (int i = 1; i < argc; i++)
        printf("arg: %s\n", argv[i]);
    const char *names = getenv("FD_NAMES");
    printf("FD_NAMES=%s\n", names ? names : "(unset)");
    const char *code = getenv("EXIT_CODE");
    return code ? atoi(code) : 0;
}

// Hello in C++ (zig c++, wasm32-wasi, no exceptions): greeting, arguments and FD_NAMES.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::cout << "Hello from C++ in an Enarx keep!" << std::endl;
    for (const auto &a : args)
        std::cout << "arg: " << a << std::endl;
    const char *names = std::getenv("FD_NAMES");
    std::cout << "FD_NAMES=" << (names ? names : "(unset)") << std::endl;
    return 0;
}

// An HTTP server in Go (net/http) on the listening socket Enarx hands over as a file descriptor.
//
// GOOS=wasip1 turns the fd into a net.Listener with net.FileListener(os.NewFile(fd, ...)); the fd
// is the position of the file named "web" in FD_NAMES (':'-separated, fd order).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

func listenFd() uintptr {
	for i, name := range strings.Split(os.Getenv("FD_NAMES"), ":") {
		if name == "web" {
			return uintptr(i)
		}
	}
	return 3
}

func main() {
	l, err := net.FileListener(os.NewFile(listenFd(), "web"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listener:", err)
		os.Exit(1)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from go")
	})
	if err := http.Serve(l, nil); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

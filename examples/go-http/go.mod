module example.com/hellohttp

go 1.21

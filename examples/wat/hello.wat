;; Hello in WebAssembly text: prints a greeting, its arguments and its environment.
;; Written against WASI preview 1 only, so it shows exactly what the runtime hands a workload.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0..7: iovec, 8..15: counts, 16..: strings, 1024..: pointer tables, 8192..: string buffers
  (data (i32.const 16) "Hello from WAT in an Enarx keep!\n")  ;; 33 bytes
  (data (i32.const 64) "arg: ")
  (data (i32.const 72) "env: ")
  (data (i32.const 80) "\n")

  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12))))

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; print "<label><string>\n" for entries [first, count) of the pointer table at $table
  (func $print_all (param $label i32) (param $table i32) (param $first i32) (param $count i32)
    (local $i i32) (local $s i32)
    (local.set $i (local.get $first))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $s (i32.load (i32.add (local.get $table) (i32.mul (local.get $i) (i32.const 4)))))
        (call $print (local.get $label) (i32.const 5))
        (call $print (local.get $s) (call $strlen (local.get $s)))
        (call $print (i32.const 80) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  (func (export "_start")
    (call $print (i32.const 16) (i32.const 33))
    (drop (call $args_sizes_get (i32.const 8) (i32.const 12)))
    (drop (call $args_get (i32.const 1024) (i32.const 8192)))
    (call $print_all (i32.const 64) (i32.const 1024) (i32.const 1) (i32.load (i32.const 8)))
    (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
    (drop (call $environ_get (i32.const 2048) (i32.const 16384)))
    (call $print_all (i32.const 72) (i32.const 2048) (i32.const 0) (i32.load (i32.const 8)))))

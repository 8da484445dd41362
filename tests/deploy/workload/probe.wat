;; Test workload for deploy: prints a marker, its args and env, echoes stdin, exits with argc - 1.
;; The marker is also what the confidentiality test looks for on the wire and in the registry.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  ;; 0..7 iovec, 8..15 counts, 16.. text, 1024.. pointer tables, 8192.. strings, 65536.. stdin buffer
  (data (i32.const 16) "PROBE-MARKER-7f3a9c1e\n")  ;; 22 bytes
  (data (i32.const 64) "arg=")
  (data (i32.const 72) "env=")
  (data (i32.const 80) "\n")

  (func $write (param $ptr i32) (param $len i32)
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

  (func $lines (param $label i32) (param $first i32) (param $count i32)
    (local $i i32) (local $s i32)
    (local.set $i (local.get $first))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $s (i32.load (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 4)))))
        (call $write (local.get $label) (i32.const 4))
        (call $write (local.get $s) (call $strlen (local.get $s)))
        (call $write (i32.const 80) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  (func (export "_start")
    (local $argc i32) (local $n i32)
    (call $write (i32.const 16) (i32.const 22))
    (drop (call $args_sizes_get (i32.const 8) (i32.const 12)))
    (local.set $argc (i32.load (i32.const 8)))
    (drop (call $args_get (i32.const 1024) (i32.const 8192)))
    (call $lines (i32.const 64) (i32.const 1) (local.get $argc))
    (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
    (drop (call $environ_get (i32.const 1024) (i32.const 8192)))
    (call $lines (i32.const 72) (i32.const 0) (i32.load (i32.const 8)))
    ;; echo stdin
    (block $eof
      (loop $more
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 12)))
        (local.set $n (i32.load (i32.const 12)))
        (br_if $eof (i32.eqz (local.get $n)))
        (call $write (i32.const 65536) (local.get $n))
        (br $more)))
    (call $proc_exit (i32.sub (local.get $argc) (i32.const 1)))))

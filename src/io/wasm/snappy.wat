;; Snappy compression, the Parquet writer's own algorithm (the reference implementation's fast path as the writer
;; ports it: a hash table of up to 2^14 positions, the skip heuristic, copies of at most 64 bytes), so the output is
;; byte for byte the writer's. Built by scripts/build-wasm.sh into snappy.wasm; src/io/snappy.ts loads it.
;;
;; Memory: the hash table at 0 (64 KiB), then the caller's input, 16 bytes of slack, and the output. The search reads
;; a few bytes past the input's end for a hash it never uses (the loop stops first, as the writer's does); those
;; reads land in the slack or the output area, which is always longer than the distance read.
(module
  (memory (export "memory") 2)

  (func $hash (param $key i32) (param $shift i32) (result i32)
    (i32.shr_u (i32.mul (local.get $key) (i32.const 0x1e35a7bd)) (local.get $shift)))

  ;; A literal of $len bytes from $src, at $op; returns the new $op.
  (func $literal (param $op i32) (param $src i32) (param $len i32) (result i32)
    (local $value i32) (local $bytes i32) (local $i i32)
    (if (i32.le_u (local.get $len) (i32.const 60))
      (then
        (i32.store8 (local.get $op) (i32.shl (i32.sub (local.get $len) (i32.const 1)) (i32.const 2)))
        (local.set $op (i32.add (local.get $op) (i32.const 1))))
      (else
        (local.set $value (i32.sub (local.get $len) (i32.const 1)))
        (local.set $bytes
          (select (i32.const 1)
            (select (i32.const 2) (select (i32.const 3) (i32.const 4) (i32.lt_u (local.get $value) (i32.const 0x1000000)))
              (i32.lt_u (local.get $value) (i32.const 0x10000)))
            (i32.lt_u (local.get $value) (i32.const 0x100))))
        (i32.store8 (local.get $op) (i32.shl (i32.add (i32.const 59) (local.get $bytes)) (i32.const 2)))
        (local.set $op (i32.add (local.get $op) (i32.const 1)))
        (local.set $i (i32.const 0))
        (loop $each
          (i32.store8 (local.get $op) (i32.shr_u (local.get $value) (i32.shl (local.get $i) (i32.const 3))))
          (local.set $op (i32.add (local.get $op) (i32.const 1)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $each (i32.lt_u (local.get $i) (local.get $bytes))))))
    (memory.copy (local.get $op) (local.get $src) (local.get $len))
    (i32.add (local.get $op) (local.get $len)))

  ;; One copy of 4..64 bytes at $offset back.
  (func $copyShort (param $op i32) (param $offset i32) (param $len i32) (result i32)
    (if (result i32) (i32.and (i32.lt_u (local.get $len) (i32.const 12)) (i32.lt_u (local.get $offset) (i32.const 2048)))
      (then
        (i32.store8 (local.get $op)
          (i32.add (i32.add (i32.const 1) (i32.shl (i32.sub (local.get $len) (i32.const 4)) (i32.const 2)))
            (i32.shl (i32.shr_u (local.get $offset) (i32.const 8)) (i32.const 5))))
        (i32.store8 offset=1 (local.get $op) (local.get $offset))
        (i32.add (local.get $op) (i32.const 2)))
      (else
        (i32.store8 (local.get $op) (i32.add (i32.const 2) (i32.shl (i32.sub (local.get $len) (i32.const 1)) (i32.const 2))))
        (i32.store8 offset=1 (local.get $op) (local.get $offset))
        (i32.store8 offset=2 (local.get $op) (i32.shr_u (local.get $offset) (i32.const 8)))
        (i32.add (local.get $op) (i32.const 3)))))

  (func $copy (param $op i32) (param $offset i32) (param $len i32) (result i32)
    (block $done
      (loop $sixtyFours
        (br_if $done (i32.lt_u (local.get $len) (i32.const 68)))
        (local.set $op (call $copyShort (local.get $op) (local.get $offset) (i32.const 64)))
        (local.set $len (i32.sub (local.get $len) (i32.const 64)))
        (br $sixtyFours)))
    (if (i32.gt_u (local.get $len) (i32.const 64))
      (then
        (local.set $op (call $copyShort (local.get $op) (local.get $offset) (i32.const 60)))
        (local.set $len (i32.sub (local.get $len) (i32.const 60)))))
    (call $copyShort (local.get $op) (local.get $offset) (local.get $len)))

  ;; Compresses $n bytes at $in into $out; returns the output's length.
  (func (export "compress") (param $in i32) (param $n i32) (param $out i32) (result i32)
    (local $op i32) (local $value i32) (local $bits i32) (local $shift i32)
    (local $nextEmit i32) (local $ipLimit i32) (local $ip i32) (local $nextIp i32) (local $nextHash i32)
    (local $skip i32) (local $h i32) (local $candidate i32) (local $base i32) (local $matched i32)
    (local.set $op (local.get $out))
    ;; the uncompressed length, as a varint
    (local.set $value (local.get $n))
    (block $varint
      (loop $byte
        (if (i32.eqz (i32.and (local.get $value) (i32.const -128)))
          (then
            (i32.store8 (local.get $op) (local.get $value))
            (local.set $op (i32.add (local.get $op) (i32.const 1)))
            (br $varint)))
        (i32.store8 (local.get $op) (i32.or (i32.and (local.get $value) (i32.const 0x7f)) (i32.const 0x80)))
        (local.set $op (i32.add (local.get $op) (i32.const 1)))
        (local.set $value (i32.shr_u (local.get $value) (i32.const 7)))
        (br $byte)))
    ;; the table: the largest power of two ≤ n, at most 2^14
    (local.set $bits (i32.const 1))
    (block $sized
      (loop $grow
        (br_if $sized (i32.gt_u (i32.shl (i32.const 1) (local.get $bits)) (local.get $n)))
        (br_if $sized (i32.gt_u (local.get $bits) (i32.const 14)))
        (local.set $bits (i32.add (local.get $bits) (i32.const 1)))
        (br $grow)))
    (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
    (local.set $shift (i32.sub (i32.const 32) (local.get $bits)))
    (memory.fill (i32.const 0) (i32.const 0) (i32.shl (i32.const 4) (local.get $bits)))

    (block $tail
      (br_if $tail (i32.lt_u (local.get $n) (i32.const 15)))
      (local.set $ipLimit (i32.sub (local.get $n) (i32.const 15)))
      (local.set $ip (i32.const 1))
      (local.set $nextHash (call $hash (i32.load offset=1 align=1 (local.get $in)) (local.get $shift)))
      (loop $outer
        (local.set $skip (i32.const 32))
        (local.set $nextIp (local.get $ip))
        ;; find a 4-byte match within 64 KiB back
        (loop $search
          (local.set $ip (local.get $nextIp))
          (local.set $h (local.get $nextHash))
          (local.set $nextIp (i32.add (local.get $ip) (i32.shr_u (local.get $skip) (i32.const 5))))
          (local.set $skip (i32.add (local.get $skip) (i32.const 1)))
          (br_if $tail (i32.gt_u (local.get $ip) (local.get $ipLimit)))
          (local.set $nextHash
            (call $hash (i32.load align=1 (i32.add (local.get $in) (local.get $nextIp))) (local.get $shift)))
          (local.set $candidate (i32.load (i32.shl (local.get $h) (i32.const 2))))
          (i32.store (i32.shl (local.get $h) (i32.const 2)) (local.get $ip))
          (br_if $search (i32.gt_u (i32.sub (local.get $ip) (local.get $candidate)) (i32.const 0xffff)))
          (br_if $search
            (i32.ne (i32.load align=1 (i32.add (local.get $in) (local.get $ip)))
              (i32.load align=1 (i32.add (local.get $in) (local.get $candidate))))))
        (local.set $op
          (call $literal (local.get $op) (i32.add (local.get $in) (local.get $nextEmit)) (i32.sub (local.get $ip) (local.get $nextEmit))))
        ;; copies, as long as the next position matches too
        (loop $copies
          (local.set $base (local.get $ip))
          (local.set $matched (i32.const 4))
          (block $extended
            (loop $eight
              (br_if $extended (i32.gt_u (i32.add (i32.add (local.get $ip) (local.get $matched)) (i32.const 8)) (local.get $n)))
              (br_if $extended
                (i64.ne (i64.load align=1 (i32.add (local.get $in) (i32.add (local.get $ip) (local.get $matched))))
                  (i64.load align=1 (i32.add (local.get $in) (i32.add (local.get $candidate) (local.get $matched))))))
              (local.set $matched (i32.add (local.get $matched) (i32.const 8)))
              (br $eight)))
          (block $matchEnd
            (loop $one
              (br_if $matchEnd (i32.ge_u (i32.add (local.get $ip) (local.get $matched)) (local.get $n)))
              (br_if $matchEnd
                (i32.ne (i32.load8_u (i32.add (local.get $in) (i32.add (local.get $ip) (local.get $matched))))
                  (i32.load8_u (i32.add (local.get $in) (i32.add (local.get $candidate) (local.get $matched))))))
              (local.set $matched (i32.add (local.get $matched) (i32.const 1)))
              (br $one)))
          (local.set $ip (i32.add (local.get $ip) (local.get $matched)))
          (local.set $op (call $copy (local.get $op) (i32.sub (local.get $base) (local.get $candidate)) (local.get $matched)))
          (local.set $nextEmit (local.get $ip))
          (br_if $tail (i32.ge_u (local.get $ip) (local.get $ipLimit)))
          (i32.store
            (i32.shl
              (call $hash (i32.load align=1 (i32.add (local.get $in) (i32.sub (local.get $ip) (i32.const 1)))) (local.get $shift))
              (i32.const 2))
            (i32.sub (local.get $ip) (i32.const 1)))
          (local.set $h (call $hash (i32.load align=1 (i32.add (local.get $in) (local.get $ip))) (local.get $shift)))
          (local.set $candidate (i32.load (i32.shl (local.get $h) (i32.const 2))))
          (i32.store (i32.shl (local.get $h) (i32.const 2)) (local.get $ip))
          (br_if $copies
            (i32.and
              (i32.le_u (i32.sub (local.get $ip) (local.get $candidate)) (i32.const 0xffff))
              (i32.eq (i32.load align=1 (i32.add (local.get $in) (local.get $ip)))
                (i32.load align=1 (i32.add (local.get $in) (local.get $candidate)))))))
        (local.set $ip (i32.add (local.get $ip) (i32.const 1)))
        (local.set $nextHash (call $hash (i32.load align=1 (i32.add (local.get $in) (local.get $ip))) (local.get $shift)))
        (br $outer)))
    (if (i32.lt_u (local.get $nextEmit) (local.get $n))
      (then
        (local.set $op
          (call $literal (local.get $op) (i32.add (local.get $in) (local.get $nextEmit)) (i32.sub (local.get $n) (local.get $nextEmit))))))
    (i32.sub (local.get $op) (local.get $out)))
)

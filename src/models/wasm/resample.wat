;; PIL's bicubic resampler passes (Resample.c, 8 bits per channel, 22-bit fixed-point weights) in WebAssembly SIMD.
;; The same integer arithmetic as src/models/preprocess.ts's horizontalPass/verticalPass: the results are the same
;; bytes. Built with `wat2wasm` (SIMD is on by default from wabt 1.0.30) by scripts/build-wasm.sh; the .wasm beside it is what runs.
;;
;; Buffers live in this module's memory at offsets the caller chooses; every buffer that is read or written a vector
;; at a time has 16 bytes of slack after it (a pixel is stored as 4 bytes, a row of the vertical pass in 16-byte
;; steps: the bytes past the end are overwritten by what comes next, or fall in the slack).
(module
  (memory (export "memory") 1)

  ;; Horizontal pass: for rows y in [0, rows) of the source (row bytes `rowBytes`, starting at row `rowFirst`), and
  ;; output pixels x in [0, outW): sum over k < counts[x] of pixel(starts[x] + 3k) · weights[x · stride + k].
  (func (export "horizontal")
    (param $src i32) (param $rowBytes i32) (param $rowFirst i32) (param $rows i32)
    (param $mid i32) (param $outW i32)
    (param $starts i32) (param $counts i32) (param $weights i32) (param $stride i32)
    (local $y i32) (local $x i32) (local $row i32) (local $d i32) (local $p i32) (local $k i32) (local $n i32)
    (local $wp i32) (local $acc v128)
    (local.set $y (i32.const 0))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $y) (local.get $rows)))
        (local.set $row
          (i32.add (local.get $src) (i32.mul (i32.add (local.get $rowFirst) (local.get $y)) (local.get $rowBytes))))
        (local.set $d (i32.add (local.get $mid) (i32.mul (local.get $y) (i32.mul (local.get $outW) (i32.const 3)))))
        (local.set $x (i32.const 0))
        (block $pixelsDone
          (loop $pixelLoop
            (br_if $pixelsDone (i32.ge_u (local.get $x) (local.get $outW)))
            (local.set $p (i32.add (local.get $row) (i32.load (i32.add (local.get $starts) (i32.shl (local.get $x) (i32.const 2))))))
            (local.set $n (i32.load (i32.add (local.get $counts) (i32.shl (local.get $x) (i32.const 2)))))
            (local.set $wp (i32.add (local.get $weights) (i32.shl (i32.mul (local.get $x) (local.get $stride)) (i32.const 2))))
            (local.set $acc (i32x4.splat (i32.const 2097152)))
            (local.set $k (i32.const 0))
            (block $tapsDone
              (loop $tapLoop
                (br_if $tapsDone (i32.ge_u (local.get $k) (local.get $n)))
                (local.set $acc
                  (i32x4.add (local.get $acc)
                    (i32x4.mul
                      (i32x4.extend_low_i16x8_u (i16x8.extend_low_i8x16_u (v128.load32_zero (local.get $p))))
                      (i32x4.splat (i32.load (local.get $wp))))))
                (local.set $p (i32.add (local.get $p) (i32.const 3)))
                (local.set $wp (i32.add (local.get $wp) (i32.const 4)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $tapLoop)))
            (i32.store (local.get $d) (i32x4.extract_lane 0 (call $clip8 (local.get $acc))))
            (local.set $d (i32.add (local.get $d) (i32.const 3)))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $pixelLoop)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rowLoop))))

  ;; Vertical pass: output row y, byte j in [0, rowOut): sum over k < counts[y] of
  ;; source[src + starts[y] + k · rowBytes + j] · weights[y · stride + k], 16 bytes at a time.
  (func (export "vertical")
    (param $src i32) (param $out i32) (param $rowOut i32) (param $outH i32)
    (param $starts i32) (param $counts i32) (param $weights i32) (param $stride i32) (param $rowBytes i32)
    (local $y i32) (local $j i32) (local $first i32) (local $p i32) (local $k i32) (local $n i32) (local $wp i32)
    (local $d i32) (local $w v128) (local $v v128) (local $lo v128) (local $hi v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $y (i32.const 0))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $y) (local.get $outH)))
        (local.set $first (i32.add (local.get $src) (i32.load (i32.add (local.get $starts) (i32.shl (local.get $y) (i32.const 2))))))
        (local.set $n (i32.load (i32.add (local.get $counts) (i32.shl (local.get $y) (i32.const 2)))))
        (local.set $d (i32.add (local.get $out) (i32.mul (local.get $y) (local.get $rowOut))))
        (local.set $j (i32.const 0))
        (block $bytesDone
          (loop $byteLoop
            (br_if $bytesDone (i32.ge_u (local.get $j) (local.get $rowOut)))
            (local.set $a0 (i32x4.splat (i32.const 2097152)))
            (local.set $a1 (local.get $a0))
            (local.set $a2 (local.get $a0))
            (local.set $a3 (local.get $a0))
            (local.set $p (i32.add (local.get $first) (local.get $j)))
            (local.set $wp (i32.add (local.get $weights) (i32.shl (i32.mul (local.get $y) (local.get $stride)) (i32.const 2))))
            (local.set $k (i32.const 0))
            (block $tapsDone
              (loop $tapLoop
                (br_if $tapsDone (i32.ge_u (local.get $k) (local.get $n)))
                (local.set $w (i32x4.splat (i32.load (local.get $wp))))
                (local.set $v (v128.load (local.get $p)))
                (local.set $lo (i16x8.extend_low_i8x16_u (local.get $v)))
                (local.set $hi (i16x8.extend_high_i8x16_u (local.get $v)))
                (local.set $a0 (i32x4.add (local.get $a0) (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $lo)) (local.get $w))))
                (local.set $a1 (i32x4.add (local.get $a1) (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $lo)) (local.get $w))))
                (local.set $a2 (i32x4.add (local.get $a2) (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $hi)) (local.get $w))))
                (local.set $a3 (i32x4.add (local.get $a3) (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $hi)) (local.get $w))))
                (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
                (local.set $wp (i32.add (local.get $wp) (i32.const 4)))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $tapLoop)))
            (v128.store (local.get $d)
              (i8x16.narrow_i16x8_u
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a0) (i32.const 22)) (i32x4.shr_s (local.get $a1) (i32.const 22)))
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a2) (i32.const 22)) (i32x4.shr_s (local.get $a3) (i32.const 22)))))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $byteLoop)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rowLoop))))

  ;; PIL's clip8 of each lane's sum: >> 22, then saturated to 0…255 (lane bytes in lane 0's low 4 bytes).
  (func $clip8 (param $acc v128) (result v128)
    (local $s v128)
    (local.set $s (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $acc) (i32.const 22)) (local.get $acc)))
    (i8x16.narrow_i16x8_u (local.get $s) (local.get $s))))

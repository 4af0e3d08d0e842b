#!/usr/bin/env bash
# Writes examples/firmware/FOOTPRINT.md: flash, RAM and instructions per
# denoising step of the smallest sampling application (footprint.cpp) on the
# Cortex-M4F (QEMU mps2-an386) and the Cortex-M55 (mps3-an547), for the
# tutorial model (model.mdw) and the default one (weights/swissroll.mdw), each
# with f32, f16 and int8 weight matrices, at batch 1 and 16: 24 images per
# build type, each run under qemu-system-arm -icount shift=0.
#
#   bash examples/firmware/footprint_table.sh             # build, run, write FOOTPRINT.md
#   bash examples/firmware/footprint_table.sh --no-build  # use the existing builds
#   bash examples/firmware/footprint_table.sh --stdout    # print instead of writing the file
#
# Environment: BUILD_TYPE (default MinSizeRel; the build directories are
# build/footprint-m4f and build/footprint-m55, with a -release suffix for
# Release), JOBS (default 2), CLI (default build/release/tools/microdiffusion:
# `cmake --preset release && cmake --build build/release --target microdiffusion_cli`).
# Needs arm-none-eabi-gcc and qemu-system-arm. About 2 minutes from scratch on
# two cores. CI (.ci/cross.sh) runs it with --stdout and fails on any "not met" target.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=1 out=examples/firmware/FOOTPRINT.md
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --stdout) out=/dev/stdout ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "footprint_table.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
BUILD_TYPE=${BUILD_TYPE:-MinSizeRel}
JOBS=${JOBS:-2}
CLI=${CLI:-build/release/tools/microdiffusion}
SIZE=arm-none-eabi-size NM=arm-none-eabi-nm
if [ ! -x "$CLI" ]; then
  echo "footprint_table.sh: no host CLI at $CLI; build it with" >&2
  echo "  cmake --preset release && cmake --build build/release -j2 --target microdiffusion_cli" >&2
  exit 1
fi
suffix=""
[ "$BUILD_TYPE" = MinSizeRel ] || suffix="-$(echo "$BUILD_TYPE" | tr 'A-Z' 'a-z')"

cores=("cortex-m4f m4f mps2-an386 Cortex-M4F" "cortex-m55 m55 mps3-an547 Cortex-M55")
models=(tutorial default)
dtypes=(f32 f16 int8)
batches=(1 16)

if [ $build = 1 ]; then
  targets=()
  for m in "${models[@]}"; do for d in "${dtypes[@]}"; do for b in "${batches[@]}"; do
    targets+=("footprint_${m}_${d}_b${b}")
  done; done; done
  for c in "${cores[@]}"; do
    read -r preset short board name <<<"$c"
    dir=build/footprint-$short$suffix
    echo "footprint_table.sh: building $name ($BUILD_TYPE) in $dir" >&2
    cmake --preset "$preset" -B "$dir" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DMD_FIRMWARE_FOOTPRINT=ON \
      -DMD_HOST_CLI="$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")" >/dev/null
    cmake --build "$dir" -j"$JOBS" --target "${targets[@]}" >/dev/null
  done
fi

HEX='function hex(s,  i, n) { n = 0; s = tolower(s); sub(/^0x/, "", s); for (i = 1; i <= length(s); ++i) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }'
section() {  # section ELF NAME -> size in bytes (0 if absent)
  $SIZE -A "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}
# text_split MAP -> "runtime clib app helium libm libgcc libc": .text bytes from
# libmicrodiffusion.a, from the C libraries (libm, libgcc, libc_nano, ...) and
# from the application's own objects, summed over the input sections the
# linker kept (alignment fill aside); then the runtime's Helium kernels and the
# three C libraries one by one.
text_split() {
  awk "$HEX"'
    function add(size, file) {
      if (out != ".text" && out != ".vectors") return
      if (file ~ /libmicrodiffusion\.a\(/) { rt += size; if (file ~ /\(helium\.cpp/) he += size }
      else if (file ~ /lib[a-z_+]*\.a\(/) {
        lib += size
        if (file ~ /\/libm\.a\(/) lm += size
        else if (file ~ /\/libgcc\.a\(/) lg += size
        else if (file ~ /\/libc(_nano)?\.a\(/) lc += size
      }
      else app += size
    }
    /^Linker script and memory map/ { on = 1; next }
    !on { next }
    /^[^ \t]/ { out = $1; pending = 0; next }
    pending && /^[ \t]+0x[0-9a-f]+[ \t]+0x[0-9a-f]+[ \t]+[^ \t]/ { add(hex($2), $3); pending = 0; next }
    /^ [^ *]/ {
      if (NF == 1) { pending = 1; next }
      if (NF >= 4 && $2 ~ /^0x/ && $3 ~ /^0x/) add(hex($3), $4)
      pending = 0
    }
    END { printf "%d %d %d %d %d %d %d\n", rt, lib, app, he, lm, lg, lc }' "$1"
}
group() {  # 1234567 -> 1,234,567
  echo "$1" | awk '{ s = $1; r = ""; while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } print s r }'
}

declare -A R  # results, keyed short_model_dtype_batch_field
fail=0
for c in "${cores[@]}"; do
  read -r preset short board name <<<"$c"
  dir=build/footprint-$short$suffix/examples/firmware
  for m in "${models[@]}"; do for d in "${dtypes[@]}"; do for b in "${batches[@]}"; do
    image=footprint_${m}_${d}_b${b}
    elf=$dir/$image.elf
    if [ ! -f "$elf" ]; then echo "footprint_table.sh: $elf not built" >&2; exit 1; fi
    echo "footprint_table.sh: running $image on $board" >&2
    log=$(timeout 900 qemu-system-arm -M "$board" -icount shift=0 -nographic -monitor none -serial none \
          -semihosting-config enable=on,target=native -kernel "$elf" 2>&1) || true
    if ! grep -q "footprint: ok" <<<"$log"; then
      echo "footprint_table.sh: $image failed on $board:" >&2; echo "$log" >&2; fail=1; continue
    fi
    k=${short}_${m}_${d}_${b}
    R[${k}_text]=$(( $(section "$elf" .vectors) + $(section "$elf" .text) ))
    read -r "R[${k}_rt]" "R[${k}_lib]" "R[${k}_app]" "R[${k}_helium]" "R[${k}_libm]" "R[${k}_libgcc]" "R[${k}_libc]" <<<"$(text_split "$dir/$image.map")"
    model=$($NM -S "$elf" | awk "$HEX"' ($4 == "md_model" || $4 == "_ZL8md_model") && !seen++ { print hex($2) }')
    R[${k}_rodata]=$(( $(section "$elf" .rodata) - model ))
    R[${k}_data]=$(section "$elf" .data)
    R[${k}_bss]=$(section "$elf" .bss)
    R[${k}_arena]=$(sed -n 's/^arena: \([0-9]*\) bytes.*/\1/p' <<<"$log")
    R[${k}_stack]=$(sed -n 's/^stack: \([0-9]*\) of.*/\1/p' <<<"$log")
    R[${k}_instr]=$(sed -n 's/^instructions per denoising step[^:]*: \([0-9]*\).*/\1/p' <<<"$log")
    R[${k}_kernels]=$(sed -n 's/.*, kernels \([a-z0-9]*\)$/\1/p' <<<"$log" | head -1)
    R[${k}_objects]=$(sed -n 's/^objects: //p' <<<"$log")
  done; done; done
done
[ $fail = 0 ] || { echo "footprint_table.sh: some images failed" >&2; exit 1; }

# Weights in flash: `microdiffusion inspect`'s figure for the files the build embedded.
declare -A W
for m in "${models[@]}"; do for d in "${dtypes[@]}"; do
  W[${m}_$d]=$("$CLI" inspect "build/footprint-m4f$suffix/examples/firmware/footprint/${m}_$d/model.mdw" |
             sed -n 's/^flash bytes: \([0-9]*\).*/\1/p')
done; done

three() {  # three FIELD short model batch -> "a / b / c" over f32, f16, int8
  local f=$1 s=$2 m=$3 b=$4
  echo "$(group "${R[${s}_${m}_f32_${b}_$f]}") / $(group "${R[${s}_${m}_f16_${b}_$f]}") / $(group "${R[${s}_${m}_int8_${b}_$f]}")"
}

{
cat <<EOF
# Firmware footprint: flash, RAM and instructions per denoising step

Generated by \`bash examples/firmware/footprint_table.sh\` (build type
$BUILD_TYPE; $(arm-none-eabi-gcc --version | head -1 | sed 's/ *$//'); $(qemu-system-arm --version | head -1)).
Do not edit by hand: rerun the script.

The program measured is \`footprint.cpp\`, the smallest useful sampling
application: it binds a weight file kept in flash (\`md::load_weights\`, in
place), draws one batch with \`md::Sampler\` (DDPM, every timestep, seed 42) in
a static arena of exactly \`md::sampling_arena_bytes(desc, batch)\`, and reports
over semihosting. One image per core, model, weight precision and batch:

* tutorial: \`examples/firmware/model.mdw\` (\`--model tutorial --hidden 32\`,
  T = 100, 11,874 parameters, softplus);
* default: \`weights/swissroll.mdw\` (\`--model default\`, hidden 128, T = 200,
  62,210 parameters, sinusoidal embeddings, GELU);
* weights f32 as trained, f16 and int8 from \`microdiffusion convert --dtype\`.

Built as $BUILD_TYPE (MinSizeRel is \`-Os\`). The cortex-m presets build
Release (\`-O3\`), whose code is larger (the M55's Helium kernels most) and
takes somewhat fewer instructions per step:
\`BUILD_TYPE=Release bash examples/firmware/footprint_table.sh --stdout\`
prints that table. Each image runs as

    qemu-system-arm -M mps2-an386 (or mps3-an547) -icount shift=0 -nographic \\
        -semihosting-config enable=on,target=native -kernel footprint_<model>_<dtype>_b<batch>.elf

## Flash (bytes)

| core | model | batch | sampling code: runtime + C library = total | whole image code | rodata (no weights) | .data | weights f32 / f16 / int8 |
|---|---|---|---|---|---|---|---|
EOF
for c in "${cores[@]}"; do
  read -r preset short board name <<<"$c"
  for m in "${models[@]}"; do for b in "${batches[@]}"; do
    k=${short}_${m}_f32_${b}
    total=$(( ${R[${k}_rt]} + ${R[${k}_lib]} ))
    helium=""
    [ "${R[${k}_helium]}" = 0 ] || helium=" (Helium $(group "${R[${k}_helium]}"))"
    echo "| $name | $m | $b | $(group "${R[${k}_rt]}")$helium + $(group "${R[${k}_lib]}") = **$(group $total)** | $(group "${R[${k}_text]}") | $(group "${R[${k}_rodata]}") | $(group "${R[${k}_data]}") | $(group "${W[${m}_f32]}") / $(group "${W[${m}_f16]}") / $(group "${W[${m}_int8]}") |"
  done; done
done
cat <<EOF

## RAM (bytes) and instructions per denoising step

| core | kernels | model | batch | arena | .bss (incl. arena) | stack high-water f32 / f16 / int8 | RAM total (f32) | instructions per step f32 / f16 / int8 |
|---|---|---|---|---|---|---|---|---|
EOF
for c in "${cores[@]}"; do
  read -r preset short board name <<<"$c"
  for m in "${models[@]}"; do for b in "${batches[@]}"; do
    k=${short}_${m}_f32_${b}
    ram=$(( ${R[${k}_data]} + ${R[${k}_bss]} + ${R[${k}_stack]} ))
    echo "| $name | ${R[${k}_kernels]} | $m | $b | $(group "${R[${k}_arena]}") | $(group "${R[${k}_bss]}") | $(three stack "$short" "$m" "$b") | **$(group $ram)** | $(three instr "$short" "$m" "$b") |"
  done; done
done

# The targets of the issue, on the Cortex-M4F: the sampling code (runtime plus
# the C library code it pulls in, no weights) within 16 KiB, and the RAM to
# sample the tutorial model at batch 1 with weights in flash within 8 KiB.
k=m4f_tutorial_f32_1
code=$(( ${R[${k}_rt]} + ${R[${k}_lib]} ))
ram=$(( ${R[${k}_data]} + ${R[${k}_bss]} + ${R[${k}_stack]} ))
verdict() {  # verdict VALUE LIMIT
  if [ "$1" -le "$2" ]; then echo "**met** ($(group $(( $2 - $1 ))) bytes to spare)"
  else echo "**not met**: $(group $(( $1 - $2 ))) bytes over"; fi
}
cat <<EOF

## Targets (Cortex-M4F, tutorial model, batch 1, f32 weights)

* **Sampling code at most 16 KiB (16,384 bytes) of flash**: $(group $code) bytes,
  $(verdict $code 16384). Of these, $(group "${R[${k}_rt]}") are the runtime's own
  code ($(verdict "${R[${k}_rt]}" 16384) on its own) and $(group "${R[${k}_lib]}") the C library code it
  pulls in: libm $(group "${R[${k}_libm]}"), libgcc $(group "${R[${k}_libgcc]}") (soft-float double
  arithmetic: the M4F's FPU is single precision), libc $(group "${R[${k}_libc]}") (memcpy and
  friends). The runtime computes its transcendentals itself
  (\`runtime/src/scalar_math.cpp\`), so no libm is linked; libgcc's double
  routines stay because the schedule is built and the per-step coefficients
  and the portable Gaussian noise (\`md::gaussian_fill\`, bit for bit the same
  on every target) are formed in double. The samplers are selected at link
  time: \`footprint.cpp\` calls the DDPM-only
  \`md::Sampler::init(model, schedule, variance, batch, arena)\`, which names
  only the ancestral step, so DDIM, DPM-Solver++(2M), the ODE sampler, the
  timestep spacings, x0 clipping / thresholding and the zero-terminal-SNR
  rescale are not linked (the \`md::SamplerConfig\` init links them all). What
  the weight file chooses at run time stays: every schedule kind, activation,
  embedding and weight precision (f16 and int8 GEMMs), learned variances, and
  \`md::load_weights\` with its checks.
* **RAM at most 8 KiB (8,192 bytes)** to sample with weights in flash:
  $(group $ram) bytes, $(verdict $ram 8192). The arena is $(group "${R[${k}_arena]}") bytes
  (\`md::sampling_arena_bytes\`; $(group $(( 100 * 4 ))) of it the alpha_bar table of T = 100
  floats, all the schedule a sampler keeps); the rest of .bss and .data is $(group $(( ${R[${k}_bss]} + ${R[${k}_data]} - ${R[${k}_arena]} )))
  bytes, mostly the \`md::Sampler\` (it holds a copy of the \`md::Model\`:
  ${R[${k}_objects]}); the stack high-water mark is $(group "${R[${k}_stack]}") bytes,
  reached while binding the weights (the \`md::LoadedWeights\` on the caller's
  stack, which \`md::load_weights\` fills in place), not while sampling.

## Columns

* **sampling code**: the \`.text\` input sections the linker kept (with
  \`-ffunction-sections -fdata-sections -Wl,--gc-sections\`) from
  \`libmicrodiffusion.a\` (runtime) and from newlib's libm and libc and libgcc
  (C library: soft-float double arithmetic, memcpy and friends; libm, if
  anything pulled it in), read from the linker map. No weights, no
  application code.
* **whole image code**: \`.vectors\` + \`.text\` of the image: the above plus the
  startup code, the semihosting output and the float formatter, and
  \`footprint.cpp\` itself.
* **rodata (no weights)**: \`.rodata\` without the embedded weight file
  (strings, the 64-byte CRC table, constants); **.data**: initialised data, stored
  in flash as well as in RAM.
* **weights**: \`microdiffusion inspect\`'s "flash bytes" of the file the image
  embeds: the whole file, used in place (f16 and int8 store the weight
  matrices only in reduced precision; biases and per-timestep tables stay f32).
* **arena**: \`md::sampling_arena_bytes(desc, batch)\`, the static arena the
  sampler works in (alpha_bar, timesteps, the batch's buffers).
* **.bss**: zeroed RAM: the arena, the \`md::Sampler\` object, the output.
* **stack high-water**: the deepest stack byte written, measured by painting:
  the reset handler fills the stack with a pattern (\`startup.cpp\`) and the
  program finds the deepest overwritten word at the end of \`main\`
  (\`stack_usage.h\`). Words a frame reserves but never writes do not count.
  The deepest point is binding the weights (\`md::load_weights\` and the
  \`md::LoadedWeights\` it fills), except on the M55 with f32 weights, where
  the Helium GEMM's packing buffer (about 4 KB, \`kernels/simd.h\`) goes
  deeper; the f16 / int8 GEMMs are plain C++ with a 512-byte row buffer.
* **RAM total**: .data + .bss + stack high-water, f32 weights.
* **instructions per step**: QEMU's \`-icount shift=0\` makes the virtual clock
  advance 1 ns per executed instruction and SysTick follows it; the program
  reads SysTick after every denoising step (the sampler's step observer) and
  converts ticks to instructions with a 2,000,000-instruction loop. A step is
  one network evaluation for the whole batch plus the DDPM update and its
  Gaussian noise. These are instructions, not cycles: an MVE instruction (4
  lanes) counts as one, like a scalar one, and memory and pipeline timing are
  not modelled. **kernels** is what \`auto\` picked: helium (MVE) on the M55,
  the reference C++ on the M4F (f16 and int8 GEMMs are plain C++ on both).
EOF
} > "$out"
[ "$out" = /dev/stdout ] || echo "footprint_table.sh: wrote $out" >&2

#!/usr/bin/env bash
# Flash and RAM footprint of the firmware images: the sampler-only build
# (firmware_sampler.elf: load weights + sample) and the full one (firmware.elf:
# + on-device training), for the Cortex-M4F and Cortex-M55 presets.
#
#   bash examples/firmware/footprint.sh            # configure + build, then report
#   bash examples/firmware/footprint.sh --no-build # report on existing builds
#   bash examples/firmware/footprint.sh --minsize  # also MinSizeRel (-Os) builds
#
# Columns (bytes): text = vectors + code (flash); rodata = constants in flash,
# of which `model` is the embedded weight file; data = initialised RAM (also
# stored in flash); bss = zeroed RAM (the arena is here); stack = the main
# stack reserved by the linker script; md code = the runtime's own functions
# (symbols in namespace md). The smallest sampler's table -- per model, weight
# precision and batch, with the stack high-water mark and instructions per
# step -- is footprint_table.sh's FOOTPRINT.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=1 minsize=0
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --minsize) minsize=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "footprint.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
JOBS=${JOBS:-$(nproc)}
SIZE=arm-none-eabi-size NM=arm-none-eabi-nm

configs=("cortex-m4f build/m4f Release" "cortex-m55 build/m55 Release")
[ $minsize = 1 ] && configs+=("cortex-m4f build/m4f-os MinSizeRel" "cortex-m55 build/m55-os MinSizeRel")

if [ $build = 1 ]; then
  for c in "${configs[@]}"; do
    read -r preset dir type <<<"$c"
    cmake --preset "$preset" -B "$dir" -DCMAKE_BUILD_TYPE="$type" >/dev/null
    cmake --build "$dir" -j"$JOBS" --target firmware firmware_sampler >/dev/null
  done
fi

# awk has no portable hex parsing: a small function for nm's sizes.
HEX='function hex(s,  i, n) { n = 0; s = tolower(s); for (i = 1; i <= length(s); ++i) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }'

section() {  # section ELF NAME -> size in bytes (0 if absent)
  $SIZE -A "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}

printf '%-12s %-10s %-18s %8s %8s %8s %8s %8s %8s %8s\n' preset build image text rodata model data bss stack "md code"
for c in "${configs[@]}"; do
  read -r preset dir type <<<"$c"
  for image in firmware_sampler firmware; do
    elf="$dir/examples/firmware/$image.elf"
    if [ ! -f "$elf" ]; then
      printf '%-12s %-10s %-18s (not built)\n' "$preset" "$type" "$image.elf"
      continue
    fi
    text=$(( $(section "$elf" .vectors) + $(section "$elf" .text) ))
    rodata=$(section "$elf" .rodata)
    model=$($NM -S "$elf" | awk "$HEX"' ($4 == "md_model" || $4 == "_ZL8md_model") && !seen++ { print hex($2) }')
    data=$(section "$elf" .data)
    bss=$(section "$elf" .bss)
    stack=$(section "$elf" .stack)
    mdcode=$($NM -S -C "$elf" | awk "$HEX"' tolower($3) == "t" && $4 ~ /^md::/ { n += hex($2) } END { print n + 0 }')
    printf '%-12s %-10s %-18s %8d %8d %8s %8d %8d %8d %8d\n' "$preset" "$type" "$image.elf" \
      "$text" "$rodata" "${model:-?}" "$data" "$bss" "$stack" "$mdcode"
  done
done

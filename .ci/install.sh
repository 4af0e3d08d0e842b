#!/usr/bin/env bash
# The installed package (cmake --install), used from outside the source tree:
#   1. configure and build the runtime alone (Release; no CLI, tests,
#      benchmarks or examples) in build/install-tree and install it into
#      build/install-prefix: lib/libmicrodiffusion.a, include/microdiffusion/,
#      lib/cmake/microdiffusion/ (find_package) and lib/pkgconfig/microdiffusion.pc;
#   2. build examples/installed against that prefix twice: with CMake
#      (find_package, -DCMAKE_PREFIX_PATH) in build/installed-cmake and with
#      its Makefile (pkg-config --cflags --libs, PKG_CONFIG_PATH) in
#      build/installed-pkgconfig;
#   3. run both on weights/swissroll.mdw: each must exit 0 and print the same
#      8 samples.
# Environment: JOBS (default 2), INSTALL_DIR (build/install-tree), PREFIX
# (build/install-prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
JOBS=${JOBS:-2}
INSTALL_DIR=${INSTALL_DIR:-build/install-tree}
PREFIX=${PREFIX:-build/install-prefix}
case $PREFIX in /*) ;; *) PREFIX="$root/$PREFIX" ;; esac
step() { echo; echo "== $* ($(( $(date +%s) - start ))s) =="; }

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v pkg-config >/dev/null || need+=(pkgconf)  # bookworm: pkgconf provides pkg-config
if [ ${#need[@]} -gt 0 ]; then
  echo "install: installing ${need[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "build the runtime alone ($INSTALL_DIR) and cmake --install it into $PREFIX"
rm -rf build/installed-cmake build/installed-pkgconfig
case $PREFIX in "$root"/build/*) rm -rf "$PREFIX" ;; esac  # a fresh prefix, if it is ours to clear
cmake -S . -B "$INSTALL_DIR" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DMD_BUILD_TOOLS=OFF -DMD_BUILD_TESTS=OFF -DMD_BUILD_BENCH=OFF -DMD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$INSTALL_DIR" -j"$JOBS"
cmake --install "$INSTALL_DIR" --prefix "$PREFIX"
# Exactly the library, its headers and the two package descriptions.
unexpected=$(cd "$PREFIX" && find . -type f | grep -Ev '^\./lib[^/]*(/[^/]+)?/(libmicrodiffusion\.a|cmake/microdiffusion/[^/]+\.cmake|pkgconfig/microdiffusion\.pc)$|^\./include/microdiffusion/[^/]+\.h$' || true)
if [ -n "$unexpected" ]; then echo "install: unexpected files under $PREFIX:" >&2; echo "$unexpected" >&2; exit 1; fi
for f in libmicrodiffusion.a microdiffusionConfig.cmake microdiffusionConfigVersion.cmake microdiffusionTargets.cmake microdiffusion.pc microdiffusion.h; do
  [ -n "$(find "$PREFIX" -name "$f")" ] || { echo "install: $f is not under $PREFIX" >&2; exit 1; }
done
pc_dir=$(dirname "$(find "$PREFIX" -name microdiffusion.pc)")

step "examples/installed with CMake: find_package(microdiffusion) (build/installed-cmake)"
cmake -S examples/installed -B build/installed-cmake -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX"
cmake --build build/installed-cmake -j"$JOBS"

step "examples/installed with pkg-config --cflags --libs microdiffusion (build/installed-pkgconfig)"
echo "pkg-config: $(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs microdiffusion)"
PKG_CONFIG_PATH="$pc_dir" make -C examples/installed OUT="$root/build/installed-pkgconfig"

step "both print the same 8 samples from weights/swissroll.mdw"
build/installed-cmake/md_installed weights/swissroll.mdw >build/installed-cmake/samples.txt
build/installed-pkgconfig/md_installed weights/swissroll.mdw >build/installed-pkgconfig/samples.txt
cat build/installed-cmake/samples.txt
lines=$(wc -l <build/installed-cmake/samples.txt)
[ "$lines" = 8 ] || { echo "install: expected 8 samples, got $lines" >&2; exit 1; }
if ! cmp -s build/installed-cmake/samples.txt build/installed-pkgconfig/samples.txt; then
  echo "install: the CMake and pkg-config builds print different samples:" >&2
  diff build/installed-cmake/samples.txt build/installed-pkgconfig/samples.txt >&2 || true
  exit 1
fi
echo; echo "install: package installed and used both ways in $(( $(date +%s) - start ))s"

# 64-bit ARM Linux (Raspberry Pi 3/4/5 with a 64-bit OS, Jetson, Graviton...).
#   cmake --preset aarch64 && cmake --build --preset aarch64 && ctest --preset aarch64
# Needs g++-aarch64-linux-gnu; tests run under qemu-aarch64 (qemu-user).
# AArch64 always has Advanced SIMD (NEON) and FMA; no extra flags needed.
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(MD_CROSS_TRIPLE aarch64-linux-gnu)
set(MD_QEMU_USER qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross-common.cmake)

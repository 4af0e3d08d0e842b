# 32-bit ARMv7-A Linux, hard-float ABI, NEON + VFPv4 (Raspberry Pi 2/3 with a
# 32-bit OS, Cortex-A7/A9/A15 boards).
#   cmake --preset armhf && cmake --build --preset armhf && ctest --preset armhf
# Needs g++-arm-linux-gnueabihf; tests run under qemu-arm (qemu-user).
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(MD_CROSS_TRIPLE arm-linux-gnueabihf)
set(MD_QEMU_USER qemu-arm)
set(CMAKE_C_FLAGS_INIT "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard")
# -Wno-psabi: silence GCC's notes that a GCC 7.1 ABI change affects std::vector iterators.
set(CMAKE_CXX_FLAGS_INIT "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard -Wno-psabi")
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross-common.cmake)

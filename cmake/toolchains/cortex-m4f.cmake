# Cortex-M4 with the single-precision FPU (FPv4-SP), hard-float ABI.
#   cmake --preset cortex-m4f && cmake --build --preset cortex-m4f && ctest --preset cortex-m4f
# Firmware example board: QEMU mps2-an386 (Arm MPS2 + AN386, Cortex-M4).
set(CMAKE_SYSTEM_PROCESSOR cortex-m4)
set(MD_CPU_FLAGS "-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard")
set(MD_QEMU_MACHINE mps2-an386)
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi-common.cmake)

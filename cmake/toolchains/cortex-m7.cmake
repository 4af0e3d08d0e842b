# Cortex-M7 with the double-precision FPU (FPv5-D16), hard-float ABI.
#   cmake --preset cortex-m7 && cmake --build --preset cortex-m7 && ctest --preset cortex-m7
# Firmware example board: QEMU mps2-an500 (Arm MPS2 + AN500, Cortex-M7).
set(CMAKE_SYSTEM_PROCESSOR cortex-m7)
set(MD_CPU_FLAGS "-mcpu=cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard")
set(MD_QEMU_MACHINE mps2-an500)
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi-common.cmake)

# Cortex-M55 (Armv8.1-M) with Helium: MVE integer + float (-mcpu=cortex-m55
# enables +mve.fp and the double-precision FPU), hard-float ABI.
#   cmake --preset cortex-m55 && cmake --build --preset cortex-m55 && ctest --preset cortex-m55
# Firmware example board: QEMU mps3-an547 (Arm MPS3 + AN547, Cortex-M55).
set(CMAKE_SYSTEM_PROCESSOR cortex-m55)
set(MD_CPU_FLAGS "-mcpu=cortex-m55 -mfpu=auto -mfloat-abi=hard")
set(MD_QEMU_MACHINE mps3-an547)
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi-common.cmake)

# Shared by the Cortex-M toolchain files (arm-none-eabi GCC + newlib). Expects
# MD_CPU_FLAGS (the -mcpu/-mfpu/-mfloat-abi set), MD_QEMU_MACHINE (the
# qemu-system-arm board the firmware example targets, or empty) to be set first.
#
# Bare metal: CMAKE_SYSTEM_NAME Generic. Only the runtime and
# examples/firmware are built (the presets turn tools, tests and bench off);
# the firmware links with its own startup code and linker script, no heap.
set(CMAKE_SYSTEM_NAME Generic)

find_program(MD_ARM_NONE_EABI_GCC arm-none-eabi-gcc)
if(NOT MD_ARM_NONE_EABI_GCC)
  message(FATAL_ERROR "arm-none-eabi-gcc not found (apt install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)")
endif()
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_NM arm-none-eabi-nm)
set(CMAKE_OBJCOPY arm-none-eabi-objcopy)
set(CMAKE_SIZE arm-none-eabi-size)
# Compiler checks cannot link a program without a startup file and linker script.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# Every object (runtime, firmware, newlib's multilib choice) uses the same flags.
# Sections per function/object so the firmware link drops what it does not use.
# -fno-math-errno: nothing here reads errno after a math call, so GCC may use
# the FPU's square root (and, on FPv5, its rounding instructions) inline
# instead of calling newlib's errno-setting wrappers -- the same IEEE results
# in less code (176 bytes on the Cortex-M4F sampler, 384 on the M55).
set(CMAKE_C_FLAGS_INIT "${MD_CPU_FLAGS} -mthumb -ffunction-sections -fdata-sections -fno-math-errno")
set(CMAKE_CXX_FLAGS_INIT "${MD_CPU_FLAGS} -mthumb -ffunction-sections -fdata-sections -fno-math-errno -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit")
set(CMAKE_ASM_FLAGS_INIT "${MD_CPU_FLAGS} -mthumb")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${MD_CPU_FLAGS} -mthumb -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# CTest runs the firmware image on QEMU's model of the board: semihosting
# carries its output and exit status back to the host.
set(MD_QEMU_MACHINE "${MD_QEMU_MACHINE}" CACHE STRING "qemu-system-arm -M board the firmware example is linked for")
find_program(MD_QEMU_SYSTEM_ARM qemu-system-arm)
if(MD_QEMU_SYSTEM_ARM AND MD_QEMU_MACHINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR
      "${MD_QEMU_SYSTEM_ARM};-M;${MD_QEMU_MACHINE};-nographic;-monitor;none;-serial;none;-semihosting-config;enable=on,target=native;-kernel")
endif()

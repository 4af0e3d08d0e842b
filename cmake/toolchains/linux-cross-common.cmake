# Shared by the ARM Linux toolchain files: expects MD_CROSS_TRIPLE (e.g.
# aarch64-linux-gnu) and MD_QEMU_USER (e.g. qemu-aarch64) to be set first.
#
# Target libraries, headers and CMake packages are looked up only under the
# cross sysroot (/usr/<triple>), programs only on the host. So find_package(GTest)
# does not pick up the host's x86-64 GoogleTest; tests/CMakeLists.txt then builds
# GoogleTest from /usr/src/googletest for the target.
set(CMAKE_SYSTEM_NAME Linux)

set(MD_CROSS_SYSROOT "/usr/${MD_CROSS_TRIPLE}" CACHE PATH "Target root (libraries and the dynamic loader for qemu-user)")

find_program(MD_CROSS_CC ${MD_CROSS_TRIPLE}-gcc)
find_program(MD_CROSS_CXX ${MD_CROSS_TRIPLE}-g++)
if(NOT MD_CROSS_CC OR NOT MD_CROSS_CXX)
  message(FATAL_ERROR "${MD_CROSS_TRIPLE}-gcc/g++ not found (apt install g++-${MD_CROSS_TRIPLE})")
endif()
set(CMAKE_C_COMPILER ${MD_CROSS_CC})
set(CMAKE_CXX_COMPILER ${MD_CROSS_CXX})

set(CMAKE_FIND_ROOT_PATH ${MD_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Target programs (tests, test discovery, the CLI launched by tests) run under
# qemu-user with the target's loader and libraries.
find_program(MD_QEMU_USER_PATH ${MD_QEMU_USER})
if(MD_QEMU_USER_PATH)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${MD_QEMU_USER_PATH};-L;${MD_CROSS_SYSROOT}")
else()
  message(WARNING "${MD_QEMU_USER} not found (apt install qemu-user): cross-built tests cannot run here")
endif()

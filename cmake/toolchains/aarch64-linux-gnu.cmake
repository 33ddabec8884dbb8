# Cross-compiling for linux-aarch64 with Debian's gcc-aarch64-linux-gnu.
#   cmake -S . -B build/cross-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
# Tests run under qemu-user: CMAKE_CROSSCOMPILING_EMULATOR makes ctest call
# `qemu-aarch64 -L /usr/aarch64-linux-gnu <test>` (the sysroot holds the aarch64 libc/libgomp).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(PT_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${PT_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${PT_CROSS_TRIPLE}-g++)
set(CMAKE_FIND_ROOT_PATH /usr/${PT_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(PT_QEMU_AARCH64 qemu-aarch64)
  if(PT_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${PT_QEMU_AARCH64} -L /usr/${PT_CROSS_TRIPLE})
  endif()
endif()

# Finds ember's dependencies and sets EMBER_WITH_{CUDA,CUDNN,NCCL,MPI,GLOO,DNNL}.
# AUTO: on when found. ON: a configure error naming the package to install when missing.
include(CheckLanguage)

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS)
if(NOT BLAS_FOUND)
  message(FATAL_ERROR "ember needs OpenBLAS for CPU matmul: run scripts/setup.sh or `apt-get install libopenblas-dev`")
endif()
find_path(EMBER_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu x86_64-linux-gnu/openblas-pthread aarch64-linux-gnu)
if(NOT EMBER_CBLAS_INCLUDE)
  message(FATAL_ERROR "cblas.h not found: `apt-get install libopenblas-dev`")
endif()
find_package(ZLIB REQUIRED)
find_package(nlohmann_json 3 QUIET)
# train/: TensorBoard event files (protobuf) and PNG pictures (stb_image_write).
find_package(Protobuf QUIET)
if(NOT Protobuf_FOUND OR NOT Protobuf_PROTOC_EXECUTABLE OR NOT TARGET protobuf::libprotobuf)
  message(FATAL_ERROR "ember needs protobuf (libprotobuf and protoc) for TensorBoard event files: run scripts/setup.sh or `apt-get install libprotobuf-dev protobuf-compiler`")
endif()
find_path(EMBER_STB_INCLUDE stb/stb_image_write.h)
if(NOT EMBER_STB_INCLUDE)
  message(FATAL_ERROR "stb/stb_image_write.h not found: `apt-get install libstb-dev`")
endif()
find_package(yaml-cpp QUIET)
# train/: the trainer's console and file log.
find_package(spdlog REQUIRED)

function(ember_option_error name what)
  message(FATAL_ERROR "${name}=ON but ${what}")
endfunction()

# ---- CUDA
set(EMBER_WITH_CUDA OFF)
if(NOT EMBER_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Never `native` by default: a machine with nvcc but no GPU has none to detect.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures")
    endif()
    enable_language(CUDA)
    # CMake 3.25 does not know nvcc 12+'s C++20 flag: teach it.
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    # CMake 3.25.1's FindCUDAToolkit (Debian 12's) sets a property on CUDA::nvToolsExt without
    # checking that the target exists, and CUDA 13 has no libnvToolsExt (NVTX 3 is header-only):
    # configure stops. An empty stand-in target lets it pass; nothing links it.
    if(CMAKE_VERSION VERSION_LESS 3.26 AND NOT TARGET CUDA::nvToolsExt)
      get_filename_component(_ember_cuda_bin "${CMAKE_CUDA_COMPILER}" DIRECTORY)
      find_library(_ember_nvtoolsext nvToolsExt HINTS "${_ember_cuda_bin}/../lib64" "${_ember_cuda_bin}/../lib" NO_DEFAULT_PATH)
      if(NOT _ember_nvtoolsext)
        add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
      endif()
    endif()
    find_package(CUDAToolkit REQUIRED)
    set(EMBER_WITH_CUDA ON)
  elseif(EMBER_CUDA STREQUAL "ON")
    ember_option_error(EMBER_CUDA "no CUDA compiler (nvcc) was found: install the CUDA toolkit or set CMAKE_CUDA_COMPILER")
  endif()
endif()

# ---- cuDNN and NCCL outside the toolkit: EMBER_CUDNN_ROOT / EMBER_NCCL_ROOT (cache variables
# or environment) name a folder with include/ and lib/ (or lib64/), e.g. the nvidia/cudnn and
# nvidia/nccl folders of the nvidia-cudnn-cu13 / nvidia-nccl-cu13 Python wheels, which ship only
# versioned libraries (libcudnn.so.9, libnccl.so.2): those names are looked for too, after
# the unversioned ones. Empty (the default): the toolkit's folders, as before.
# EMBER_CUDNN_INCLUDE / EMBER_CUDNN_LIBRARY (and the NCCL pair) can also be set directly.
foreach(_dep CUDNN NCCL)
  if(NOT DEFINED EMBER_${_dep}_ROOT AND DEFINED ENV{EMBER_${_dep}_ROOT})
    set(EMBER_${_dep}_ROOT "$ENV{EMBER_${_dep}_ROOT}")
  endif()
  set(EMBER_${_dep}_ROOT "${EMBER_${_dep}_ROOT}" CACHE PATH "Folder with include/ and lib/ of ${_dep} (empty: the CUDA toolkit's)")
  string(TOLOWER ${_dep} _dep_lower)
  set(_ember_${_dep_lower}_lib_hints)
  set(_ember_${_dep_lower}_inc_hints)
  if(EMBER_${_dep}_ROOT)
    set(_ember_${_dep_lower}_lib_hints ${EMBER_${_dep}_ROOT}/lib ${EMBER_${_dep}_ROOT}/lib64)
    set(_ember_${_dep_lower}_inc_hints ${EMBER_${_dep}_ROOT}/include)
  endif()
endforeach()

# ---- cuDNN
set(EMBER_WITH_CUDNN OFF)
if(EMBER_WITH_CUDA AND NOT EMBER_CUDNN STREQUAL "OFF")
  find_library(EMBER_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
               HINTS ${_ember_cudnn_lib_hints} ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  find_path(EMBER_CUDNN_INCLUDE cudnn.h
            HINTS ${_ember_cudnn_inc_hints} ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  if(EMBER_CUDNN_LIBRARY AND EMBER_CUDNN_INCLUDE)
    set(EMBER_WITH_CUDNN ON)
  endif()
endif()
if(EMBER_CUDNN STREQUAL "ON" AND NOT EMBER_WITH_CUDNN)
  ember_option_error(EMBER_CUDNN "cuDNN (cudnn.h, libcudnn) was not found (library: '${EMBER_CUDNN_LIBRARY}', header folder: '${EMBER_CUDNN_INCLUDE}'): install cuDNN 9 for your CUDA, set EMBER_CUDNN_ROOT to a folder with include/ and lib/ (e.g. the nvidia/cudnn folder of the nvidia-cudnn-cu13 wheel), or build with EMBER_CUDA on")
endif()

# ---- NCCL
set(EMBER_WITH_NCCL OFF)
if(EMBER_WITH_CUDA AND NOT EMBER_NCCL STREQUAL "OFF")
  find_library(EMBER_NCCL_LIBRARY NAMES nccl libnccl.so.2
               HINTS ${_ember_nccl_lib_hints} ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  find_path(EMBER_NCCL_INCLUDE nccl.h
            HINTS ${_ember_nccl_inc_hints} ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  if(EMBER_NCCL_LIBRARY AND EMBER_NCCL_INCLUDE)
    set(EMBER_WITH_NCCL ON)
  endif()
endif()
if(EMBER_NCCL STREQUAL "ON" AND NOT EMBER_WITH_NCCL)
  ember_option_error(EMBER_NCCL "NCCL (nccl.h, libnccl) was not found (library: '${EMBER_NCCL_LIBRARY}', header folder: '${EMBER_NCCL_INCLUDE}'): install libnccl-dev, set EMBER_NCCL_ROOT to a folder with include/ and lib/ (e.g. the nvidia/nccl folder of the nvidia-nccl-cu13 wheel), or build with EMBER_CUDA on")
endif()

# ---- MPI
set(EMBER_WITH_MPI OFF)
if(NOT EMBER_MPI STREQUAL "OFF")
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(EMBER_WITH_MPI ON)
  elseif(EMBER_MPI STREQUAL "ON")
    ember_option_error(EMBER_MPI "MPI was not found: `apt-get install libopenmpi-dev openmpi-bin`")
  endif()
endif()

# ---- Gloo (Debian libgloo-dev: headers, libgloo.so; its TCP transport needs nothing else)
set(EMBER_WITH_GLOO OFF)
if(NOT EMBER_GLOO STREQUAL "OFF")
  find_library(EMBER_GLOO_LIBRARY NAMES gloo libgloo.so.0)
  find_path(EMBER_GLOO_INCLUDE gloo/rendezvous/context.h)
  if(EMBER_GLOO_LIBRARY AND EMBER_GLOO_INCLUDE)
    set(EMBER_WITH_GLOO ON)
  elseif(EMBER_GLOO STREQUAL "ON")
    ember_option_error(EMBER_GLOO "Gloo was not found (library: '${EMBER_GLOO_LIBRARY}', header folder: '${EMBER_GLOO_INCLUDE}'): `apt-get install libgloo-dev` (scripts/setup.sh), or set EMBER_GLOO_LIBRARY and EMBER_GLOO_INCLUDE")
  endif()
endif()

# ---- oneDNN (Debian libdnnl-dev 2.6: the CPU convolutions of kernels/cpu/dnnl/; its OpenMP
# build runs on ember's own OpenMP team)
set(EMBER_WITH_DNNL OFF)
if(NOT EMBER_DNNL STREQUAL "OFF")
  find_library(EMBER_DNNL_LIBRARY NAMES dnnl libdnnl.so.2)
  find_path(EMBER_DNNL_INCLUDE oneapi/dnnl/dnnl.hpp)
  if(EMBER_DNNL_LIBRARY AND EMBER_DNNL_INCLUDE)
    set(EMBER_WITH_DNNL ON)
  elseif(EMBER_DNNL STREQUAL "ON")
    ember_option_error(EMBER_DNNL "oneDNN was not found (library: '${EMBER_DNNL_LIBRARY}', header folder: '${EMBER_DNNL_INCLUDE}'): `apt-get install libdnnl-dev` (scripts/setup.sh), or set EMBER_DNNL_LIBRARY and EMBER_DNNL_INCLUDE")
  endif()
endif()

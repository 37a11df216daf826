# CTest script: installs ember into a scratch prefix, builds examples/tiny_regression
# against it with find_package(ember), and runs it.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${WORK}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE}/examples/tiny_regression -B ${WORK}/build
                -G Ninja -DCMAKE_PREFIX_PATH=${WORK}/prefix -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the example against the installed ember failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the example failed (${rc})")
endif()
execute_process(COMMAND ${WORK}/build/tiny_regression RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the example ran but its loss did not fall 100x (${rc})")
endif()

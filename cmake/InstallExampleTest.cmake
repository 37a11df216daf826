# CTest script: installs ember into a scratch prefix, builds each example (examples/tiny_regression,
# examples/custom_trainer) against it with find_package(ember), and runs it.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${WORK}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()
foreach(example tiny_regression custom_trainer)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE}/examples/${example} -B ${WORK}/build-${example}
                  -G Ninja -DCMAKE_PREFIX_PATH=${WORK}/prefix -DCMAKE_BUILD_TYPE=Release
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "configuring examples/${example} against the installed ember failed (${rc})")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/build-${example} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "building examples/${example} failed (${rc})")
  endif()
  execute_process(COMMAND ${WORK}/build-${example}/${example} ${WORK}/out-${example} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "examples/${example} ran but did not reach its goal (${rc})")
  endif()
endforeach()
if(NOT EXISTS ${WORK}/out-custom_trainer/metrics.jsonl OR NOT EXISTS ${WORK}/out-custom_trainer/tb)
  message(FATAL_ERROR "examples/custom_trainer wrote no metrics.jsonl or TensorBoard folder")
endif()

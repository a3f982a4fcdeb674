# libFuzzer targets: built only with -DZWRM_FUZZ=ON and clang, into
# <build>/fuzz/, and collected by the `fuzz-targets` target that
# scripts/run-fuzzers.sh builds.
add_custom_target(fuzz-targets)

function(zwrm_add_fuzz_target name source)
  add_executable(${name} ${source})
  target_link_libraries(${name} PRIVATE ${ARGN})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  add_dependencies(fuzz-targets ${name})
endfunction()

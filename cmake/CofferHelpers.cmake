include(GoogleTest)

# coffer_unit_test(<name> SOURCES a.cpp ... LIBS lib ...)
# One gtest executable; each TEST becomes one ctest entry (labels: unit).
function(coffer_unit_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
  # A list inside PROPERTIES must keep its ';' escaped, or its second item becomes a property name.
  set(labels unit ${ARG_LABELS})
  string(REPLACE ";" "\\;" labels "${labels}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30 PROPERTIES LABELS "${labels}" TIMEOUT 120)
endfunction()

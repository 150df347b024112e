# The fuzz targets, each tests/fuzz/NAME_fuzzer.cc with its corpus in tests/fuzz/corpus/NAME
# and its dictionary tests/fuzz/NAME.dict. Included by tests/CMakeLists.txt (the corpus
# replay, Fuzz.NAME in ctest) and tests/fuzz/CMakeLists.txt (the libFuzzer build).
# One line: scripts/fuzz reads it.
set(LK_FUZZ_TARGETS lane_spec handler_config cycle_file redis_url duration status_request kubeconfig)

// sanitizer_options.cpp: the sanitizer settings every fuzz target runs with, so that running one by hand
// behaves as in CI: any undefined behaviour stops the run (halt_on_error) but for the library fault
// that tests/fuzz/ubsan.supp suppresses, and ASan reports leaks.
extern "C" const char* __ubsan_default_options() {
    return "halt_on_error=1:print_stacktrace=1:suppressions=" CRUDCAST_FUZZ_DIR "/ubsan.supp";
}

extern "C" const char* __asan_default_options() { return "detect_leaks=1"; }

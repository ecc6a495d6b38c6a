# Run by the build (cmake -P) before cd::util compiles: writes OUT, a one-line
# C++ file holding `git describe`, but only when the text changed, so an
# unchanged commit costs no recompilation and a new one is never missed.
execute_process(
  COMMAND git describe --always --dirty --abbrev=12
  WORKING_DIRECTORY "${SOURCE_DIR}"
  OUTPUT_VARIABLE commit
  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT commit)
  set(commit "unknown")
endif()
set(text "namespace cd { extern const char* const k_git_commit; const char* const k_git_commit = \"${commit}\"; }\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE "${OUT}" "${text}")
endif()

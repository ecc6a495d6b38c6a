#include "util/version.h"

#include "version_info.h"  // generated at configure time: CD_VERSION, CD_TORCH_VERSION

namespace cd {

// Defined in git_commit.cpp, which the build rewrites whenever HEAD or the
// tree's dirtiness changes.
extern const char* const k_git_commit;

std::string version_string(const std::string& tool) {
  return tool + " " + CD_VERSION + " (commit " + k_git_commit + ", LibTorch " + CD_TORCH_VERSION +
         ")";
}

std::string git_commit() { return k_git_commit; }

std::string catdog_version() { return CD_VERSION; }

}  // namespace cd
